package chart_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestHelmLint(t *testing.T) {
	for _, f := range ciValuesFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, errOut, err := runHelm(t, "lint", "--strict", chartDir, "--namespace", namespace, "--kube-version", minKubeVersion, "-f", f)
			if err != nil {
				t.Fatalf("helm lint --strict -f %s: %v\n%s%s", f, err, out, errOut)
			}
		})
	}
}

func TestTemplateCIValues(t *testing.T) {
	for _, f := range ciValuesFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := renderDecoded(t, "-f", f)
			checkWorkload(t, r)
		})
	}
}

// checkWorkload asserts the invariants every install must keep, whatever the values file.
func checkWorkload(t *testing.T, r *rendered) {
	t.Helper()
	if len(r.deployments) != 1 {
		t.Fatalf("want exactly 1 Deployment, got %d", len(r.deployments))
	}
	d := r.deployments[0]
	pod := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
	if !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
	}

	// Pod-level security.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext.runAsNonRoot must be true: %+v", psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile must be RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("pod must not automount a ServiceAccount token")
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("want 1 container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" || strings.HasSuffix(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("image must be pinned, got %q", c.Image)
	}

	// Container-level security.
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("container has no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("allowPrivilegeEscalation must be false")
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities must drop ALL and add none: %+v", sc.Capabilities)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Errorf("container runAsNonRoot must be true")
	case sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("container must run with a non-zero UID")
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("container must not be privileged")
	}
	if !hasMount(c, "/tmp") {
		t.Errorf("read-only rootfs needs a writable /tmp mount")
	}

	// Resources.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("missing resources.requests.%s", res)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("missing resources.limits.memory")
	}

	// Probes.
	portNames := map[string]int32{}
	for _, p := range c.Ports {
		portNames[p.Name] = p.ContainerPort
	}
	checkProbe(t, "readiness", c.ReadinessProbe, "/readyz", portNames)
	checkProbe(t, "liveness", c.LivenessProbe, "/healthz", portNames)
	checkProbe(t, "startup", c.StartupProbe, "", portNames)

	// Graceful shutdown: preStop sleep, then SIGTERM + drain must fit in the grace period.
	env := envMap(c)
	drain, err := time.ParseDuration(env["PUSHD_DRAIN_TIMEOUT"].Value)
	if err != nil {
		t.Fatalf("PUSHD_DRAIN_TIMEOUT %q: %v", env["PUSHD_DRAIN_TIMEOUT"].Value, err)
	}
	var preStop time.Duration
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		t.Errorf("container needs a preStop sleep so endpoints update before SIGTERM")
	} else {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatalf("terminationGracePeriodSeconds not set")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if grace <= drain+preStop {
		t.Errorf("terminationGracePeriodSeconds %v must exceed drain %v + preStop %v", grace, drain, preStop)
	}

	// Identity and runtime env.
	if e := env["PUSHD_NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("PUSHD_NODE_NAME must come from the downward API metadata.name: %+v", e)
	}
	// Secure default: joining a doc needs authorization unless the values say otherwise.
	if e := env["PUSHD_JOIN_AUTHORIZATION"]; e.Value != "required" && e.Value != "off" {
		t.Errorf("PUSHD_JOIN_AUTHORIZATION %q: want required (default) or off", e.Value)
	}
	if e, ok := env["PUSHD_ALLOWED_ORIGINS"]; ok && e.Value == "" {
		t.Errorf("PUSHD_ALLOWED_ORIGINS rendered empty")
	}
	if e, ok := env["GOMEMLIMIT"]; !ok {
		t.Errorf("GOMEMLIMIT not set")
	} else if e.Value == "" && (e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.memory") {
		t.Errorf("GOMEMLIMIT must be a value or a resourceFieldRef to limits.memory: %+v", e)
	}
	if addr, ok := env["PUSHD_CONSUL_ADDR"]; ok && strings.Contains(addr.Value, "$(HOST_IP)") {
		if e := env["HOST_IP"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.hostIP" {
			t.Errorf("PUSHD_CONSUL_ADDR uses $(HOST_IP) but HOST_IP is not status.hostIP")
		}
	}
	checkEnvReferences(t, c)
	checkFilePathsMounted(t, c, env, "PUSHD_NATS_CREDS", "PUSHD_JWT_PUBLIC_KEY")
	if env["PUSHD_DEV"].Value != "true" {
		_, pub := env["PUSHD_JWT_PUBLIC_KEY"]
		_, sec := env["PUSHD_JWT_SECRET"]
		if !pub && !sec {
			t.Errorf("non-dev install without a JWT key")
		}
		if _, ok := env["PUSHD_NATS_URL"]; !ok {
			t.Errorf("non-dev install without PUSHD_NATS_URL")
		}
		// pushd refuses to start without Consul and without a node number.
		if _, consul := env["PUSHD_CONSUL_ADDR"]; !consul && env["PUSHD_NODE_ID"].Value == "" {
			t.Errorf("non-dev install without Consul sets no PUSHD_NODE_ID")
		}
	}
	// `kubectl exec deploy/pushd -- pushctl nodes` works as documented: the
	// image is distroless, so the pod itself must point pushctl at NATS.
	want := "nats://127.0.0.1:4222" // a dev node's embedded server
	if e, ok := env["PUSHD_NATS_URL"]; ok {
		want = e.Value
	}
	if got := env["PUSHCTL_NATS_URL"].Value; got != want {
		t.Errorf("PUSHCTL_NATS_URL = %q, want the node's NATS %q", got, want)
	}
	if env["PUSHCTL_SUBJECT_PREFIX"].Value != env["PUSHD_SUBJECT_PREFIX"].Value {
		t.Errorf("PUSHCTL_SUBJECT_PREFIX %q differs from the node's %q", env["PUSHCTL_SUBJECT_PREFIX"].Value, env["PUSHD_SUBJECT_PREFIX"].Value)
	}
	if (env["PUSHCTL_NATS_CREDS"].Value == "") != (env["PUSHD_NATS_CREDS"].Value == "") {
		t.Errorf("PUSHCTL_NATS_CREDS %q but PUSHD_NATS_CREDS %q", env["PUSHCTL_NATS_CREDS"].Value, env["PUSHD_NATS_CREDS"].Value)
	}

	// Volumes referenced by mounts exist.
	vols := map[string]bool{}
	for _, v := range pod.Volumes {
		vols[v.Name] = true
	}
	for _, m := range c.VolumeMounts {
		if !vols[m.Name] {
			t.Errorf("volumeMount %q has no volume", m.Name)
		}
	}

	// Spread across zones by default.
	zone := false
	for _, tsc := range pod.TopologySpreadConstraints {
		if tsc.TopologyKey == "topology.kubernetes.io/zone" {
			zone = true
			if tsc.LabelSelector == nil || !labels.SelectorFromSet(tsc.LabelSelector.MatchLabels).Matches(podLabels) {
				t.Errorf("zone topologySpreadConstraint selector does not match the pods")
			}
		}
	}
	if !zone {
		t.Errorf("no topologySpreadConstraint across topology.kubernetes.io/zone")
	}

	// Rolling updates never drop below desired capacity.
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Errorf("rolling update must use maxUnavailable 0, got %+v", d.Spec.Strategy.RollingUpdate)
	}

	// PDB protects the same pods.
	if len(r.pdbs) != 1 {
		t.Fatalf("want 1 PodDisruptionBudget, got %d", len(r.pdbs))
	}
	if !labels.SelectorFromSet(r.pdbs[0].Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("PDB selector does not match the pods")
	}
	if r.pdbs[0].Spec.MaxUnavailable == nil && r.pdbs[0].Spec.MinAvailable == nil {
		t.Errorf("PDB sets neither maxUnavailable nor minAvailable")
	}

	// Services route to declared ports of these pods; the public one is not sticky.
	svcByName := map[string]*corev1.Service{}
	for _, s := range r.services {
		svcByName[s.Name] = s
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selector does not match the pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type == intstr.String {
				if _, ok := portNames[p.TargetPort.StrVal]; !ok {
					t.Errorf("Service %s targets port %q which the container does not declare", s.Name, p.TargetPort.StrVal)
				}
			}
		}
	}
	public := svcByName[d.Name]
	if public == nil {
		t.Fatalf("no Service named %s", d.Name)
	}
	if public.Spec.SessionAffinity != corev1.ServiceAffinityNone {
		t.Errorf("public Service sessionAffinity = %q, want None", public.Spec.SessionAffinity)
	}
	for _, p := range public.Spec.Ports {
		if p.TargetPort.StrVal == "metrics" {
			t.Errorf("public Service must not expose the admin/metrics port")
		}
	}
	if admin := env["PUSHD_ADMIN_LISTEN"].Value; !strings.HasPrefix(admin, "127.0.0.1:") {
		if _, ok := portNames["metrics"]; !ok {
			t.Errorf("admin listener %q is on the pod network but no named 'metrics' port", admin)
		}
	}

	// HPA and fixed replicas are exclusive.
	switch len(r.hpas) {
	case 0:
		if d.Spec.Replicas == nil {
			t.Errorf("no HPA and no replicas")
		}
	case 1:
		h := r.hpas[0]
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas while an HPA manages it (every upgrade would reset the scale)")
		}
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("HPA targets %+v, want Deployment %s", h.Spec.ScaleTargetRef, d.Name)
		}
		if len(h.Spec.Metrics) == 0 {
			t.Errorf("HPA has no metrics")
		}
	default:
		t.Errorf("want at most 1 HPA, got %d", len(r.hpas))
	}

	// ServiceMonitor scrapes a named port of a Service it selects.
	for _, sm := range r.serviceMonitors {
		smSel := labels.SelectorFromSet(sm.Spec.Selector.MatchLabels)
		matched := 0
		for _, s := range r.services {
			if !smSel.Matches(labels.Set(s.Labels)) {
				continue
			}
			matched++
			for _, ep := range sm.Spec.Endpoints {
				if !servicePortNamed(s, ep.Port) {
					t.Errorf("ServiceMonitor endpoint port %q not on Service %s", ep.Port, s.Name)
				}
			}
		}
		if matched != 1 {
			t.Errorf("ServiceMonitor selects %d Services, want exactly the metrics Service", matched)
		}
	}

	// Ingress and HTTPRoute go to the public Service and only route the WebSocket path.
	for _, ing := range r.ingresses {
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				if b == nil || b.Name != public.Name || !servicePortNamed(public, b.Port.Name) {
					t.Errorf("Ingress path %s backend %+v is not the public Service http port", p.Path, b)
				}
				if p.Path == "/" || p.Path == "/metrics" {
					t.Errorf("Ingress exposes %s; only the WebSocket path should be public", p.Path)
				}
			}
		}
	}
	for _, hr := range r.httpRoutes {
		if len(hr.Spec.ParentRefs) == 0 {
			t.Errorf("HTTPRoute without parentRefs attaches to nothing")
		}
		for _, rule := range hr.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if b.Name != public.Name || !servicePortNumber(public, b.Port) {
					t.Errorf("HTTPRoute backend %s:%d is not the public Service", b.Name, b.Port)
				}
			}
		}
	}

	// Dashboard ConfigMap carries the chart's dashboard file verbatim for the Grafana sidecar.
	for _, cm := range r.configMaps {
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap %s lacks label grafana_dashboard=1", cm.Name)
		}
		want, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "pushd.json"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(cm.Data["pushd.json"]) != strings.TrimSpace(string(want)) {
			t.Errorf("dashboard ConfigMap content differs from dashboards/pushd.json")
		}
	}
}

func checkProbe(t *testing.T, name string, p *corev1.Probe, wantPath string, ports map[string]int32) {
	t.Helper()
	if p == nil {
		t.Errorf("%s probe missing", name)
		return
	}
	if p.HTTPGet == nil {
		t.Errorf("%s probe is not an httpGet probe", name)
		return
	}
	if wantPath != "" && p.HTTPGet.Path != wantPath {
		t.Errorf("%s probe path %q, want %q", name, p.HTTPGet.Path, wantPath)
	}
	if p.HTTPGet.Port.Type == intstr.String {
		if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
			t.Errorf("%s probe port %q is not a declared container port", name, p.HTTPGet.Port.StrVal)
		}
	}
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// Kubernetes only expands $(VAR) when VAR is defined earlier in the list; otherwise the literal
// string reaches the process (e.g. a Consul address of "$(HOST_IP):8500").
func checkEnvReferences(t *testing.T, c corev1.Container) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range c.Env {
		for _, m := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !seen[m[1]] {
				t.Errorf("env %s references $(%s) which is not defined before it", e.Name, m[1])
			}
		}
		seen[e.Name] = true
	}
}

func checkFilePathsMounted(t *testing.T, c corev1.Container, env map[string]corev1.EnvVar, names ...string) {
	t.Helper()
	for _, n := range names {
		e, ok := env[n]
		if !ok {
			continue
		}
		dir := filepath.Dir(e.Value)
		found := false
		for _, m := range c.VolumeMounts {
			if filepath.Clean(m.MountPath) == dir {
				found = true
			}
		}
		if !found {
			t.Errorf("%s=%s is not inside any volumeMount", n, e.Value)
		}
	}
}

func hasMount(c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return true
		}
	}
	return false
}

func servicePortNamed(s *corev1.Service, name string) bool {
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func servicePortNumber(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

func deployment(t *testing.T, r *rendered) *appsv1.Deployment {
	t.Helper()
	if len(r.deployments) != 1 {
		t.Fatalf("want 1 Deployment, got %d", len(r.deployments))
	}
	return r.deployments[0]
}

func minimal() string { return filepath.Join(chartDir, "ci", "minimal-values.yaml") }

func TestGracePeriodFollowsDrainTimeout(t *testing.T) {
	r := renderDecoded(t, "-f", minimal(),
		"--set", "pushd.drainTimeoutSeconds=60",
		"--set", "lifecycle.preStopSleepSeconds=7",
		"--set", "lifecycle.terminationGraceMarginSeconds=11")
	d := deployment(t, r)
	if got := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 78 {
		t.Errorf("terminationGracePeriodSeconds = %d, want 60+7+11", got)
	}
	if got := envMap(d.Spec.Template.Spec.Containers[0])["PUSHD_DRAIN_TIMEOUT"].Value; got != "60s" {
		t.Errorf("PUSHD_DRAIN_TIMEOUT = %q, want 60s", got)
	}
}

func TestConsulDefaultsToHostAgent(t *testing.T) {
	d := deployment(t, renderDecoded(t, "-f", minimal()))
	env := envMap(d.Spec.Template.Spec.Containers[0])
	if got := env["PUSHD_CONSUL_ADDR"].Value; got != "$(HOST_IP):8500" {
		t.Errorf("PUSHD_CONSUL_ADDR = %q, want $(HOST_IP):8500", got)
	}
	d = deployment(t, renderDecoded(t, "-f", minimal(), "--set", "consul.address=consul-server.consul.svc:8500"))
	if got := envMap(d.Spec.Template.Spec.Containers[0])["PUSHD_CONSUL_ADDR"].Value; got != "consul-server.consul.svc:8500" {
		t.Errorf("explicit consul.address not used: %q", got)
	}
}

func TestMetricsDisabledKeepsAdminOnLoopback(t *testing.T) {
	r := renderDecoded(t, "-f", minimal(), "--set", "metrics.enabled=false")
	c := deployment(t, r).Spec.Template.Spec.Containers[0]
	if got := envMap(c)["PUSHD_ADMIN_LISTEN"].Value; !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("PUSHD_ADMIN_LISTEN = %q with metrics disabled; pprof would be on the pod network", got)
	}
	if len(r.services) != 1 {
		t.Errorf("want only the public Service with metrics disabled, got %d", len(r.services))
	}
}

// Bad values must fail at install time (schema or template validation), not at runtime.
func TestBadValuesRejected(t *testing.T) {
	cases := []struct {
		name    string
		values  string
		wantErr string
	}{
		{"replicaCount string", "replicaCount: three\n", "replicaCount"},
		{"unknown top-level key", "replicas: 3\n", "replicas"},
		{"unknown nested key", "service:\n  sessionAfinity: None\n", "sessionAfinity"},
		{"sticky sessions", "service:\n  sessionAffinity: Sticky\n", "sessionAffinity"},
		{"bad log format", "pushd:\n  logFormat: xml\n", "logFormat"},
		{"bad join authorization", "pushd:\n  joinAuthorization: maybe\n", "joinAuthorization"},
		{"empty allowed origin", "pushd:\n  allowedOrigins: [\"\"]\n", "allowedOrigins"},
		{"negative drain", "pushd:\n  drainTimeoutSeconds: -1\n", "drainTimeoutSeconds"},
		{"bad digest", "image:\n  digest: latest\n", "digest"},
		{"bad nats url", "nats:\n  url: localhost:4222\n", "url"},
		{"grace shorter than drain", "terminationGracePeriodSeconds: 12\n", "must be greater"},
		{"missing nats url", "nats:\n  url: \"\"\n", "nats.url is required"},
		{"no jwt key", "auth:\n  jwtSecret:\n    existingSecret: \"\"\n", "JWT key"},
		{"two jwt keys", "auth:\n  jwtPublicKey:\n    existingSecret: pub\n", "only one of"},
		{"replicas without consul", "consul:\n  enabled: false\n", "consul.enabled=true"},
		{"history replicas 0", "history:\n  replicas: 0\n", "replicas"},
		{"history storage", "history:\n  storage: disk\n", "storage"},
		{"history max age", "history:\n  doc:\n    maxAge: 1 hour\n", "maxAge"},
		{"unknown history key", "history:\n  maxMsgs: 5\n", "maxMsgs"},
		{"servicemonitor without metrics", "metrics:\n  enabled: false\n  serviceMonitor:\n    enabled: true\n", "metrics.enabled=true"},
		{"negative handshake rate", "limits:\n  handshakeRatePerIP: -1\n", "handshakeRatePerIP"},
		{"trusted proxy not a network", "limits:\n  trustedProxies: [\"the ingress\"]\n", "trustedProxies"},
		{"unknown limits key", "limits:\n  maxSessionsPerUser: 5\n", "maxSessionsPerUser"},
	}
	// Control: the base values render, so each failure below is due to its own bad value.
	if _, err := render(t, "-f", minimal()); err != nil {
		t.Fatalf("control render failed: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(f, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := render(t, "-f", minimal(), "-f", f)
			if err == nil {
				t.Fatalf("helm template accepted bad values:\n%s\nrendered %d bytes", tc.values, len(out))
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error does not mention %q:\n%v", tc.wantErr, err)
			}
		})
	}
}

func TestHistoryValuesBecomeFlags(t *testing.T) {
	env := envMap(deployment(t, renderDecoded(t, "-f", minimal(), "--set", "history.replicas=3", "--set", "history.doc.maxAge=30m")).Spec.Template.Spec.Containers[0])
	for name, want := range map[string]string{
		"PUSHD_HISTORY": "true", "PUSHD_HISTORY_REPLICAS": "3", "PUSHD_HISTORY_DOC_MAX_AGE": "30m",
		"PUSHD_HISTORY_MAX_BYTES": "1073741824", "PUSHD_REPLAY_MAX_MSGS": "100",
	} {
		if got := env[name].Value; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	env = envMap(deployment(t, renderDecoded(t, "-f", minimal(), "--set", "history.enabled=false")).Spec.Template.Spec.Containers[0])
	if env["PUSHD_HISTORY"].Value != "false" {
		t.Errorf("PUSHD_HISTORY = %q with history.enabled=false", env["PUSHD_HISTORY"].Value)
	}
	if _, ok := env["PUSHD_HISTORY_REPLICAS"]; ok {
		t.Error("history flags rendered with history off")
	}
}

// TestLimitValuesBecomeFlags: the per-IP handshake limit is on, and
// believes X-Forwarded-For from the cluster's private networks (the
// ingress controller), unless told otherwise.
func TestLimitValuesBecomeFlags(t *testing.T) {
	env := envMap(deployment(t, renderDecoded(t, "-f", minimal())).Spec.Template.Spec.Containers[0])
	for name, want := range map[string]string{
		"PUSHD_HANDSHAKE_RATE_PER_IP": "500", "PUSHD_HANDSHAKE_BURST_PER_IP": "0",
		"PUSHD_TRUSTED_PROXIES":               "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
		"PUSHD_MAX_CLUSTER_SESSIONS_PER_USER": "64", "PUSHD_MAX_DOCS_PER_USER": "200", "PUSHD_JOIN_RATE": "10",
	} {
		if got := env[name].Value; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	env = envMap(deployment(t, renderDecoded(t, "-f", minimal(), "--set", "limits.trustedProxies=null", "--set", "limits.handshakeRatePerIP=0")).Spec.Template.Spec.Containers[0])
	if _, ok := env["PUSHD_TRUSTED_PROXIES"]; ok {
		t.Error("PUSHD_TRUSTED_PROXIES rendered with no trusted proxies")
	}
	if got := env["PUSHD_HANDSHAKE_RATE_PER_IP"].Value; got != "0" {
		t.Errorf("PUSHD_HANDSHAKE_RATE_PER_IP = %q, want 0", got)
	}
}

// TestRebalanceValuesBecomeFlags: rebalancing is on with pushd's defaults,
// and the values reach the flags.
func TestRebalanceValuesBecomeFlags(t *testing.T) {
	env := envMap(deployment(t, renderDecoded(t, "-f", minimal())).Spec.Template.Spec.Containers[0])
	for name, want := range map[string]string{
		"PUSHD_REBALANCE": "true", "PUSHD_REBALANCE_RATIO": "1.2", "PUSHD_REBALANCE_MIN_EXCESS": "100",
		"PUSHD_REBALANCE_FRACTION": "0.01", "PUSHD_REBALANCE_RATE": "100",
	} {
		if got := env[name].Value; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	env = envMap(deployment(t, renderDecoded(t, "-f", minimal(), "--set", "rebalance.enabled=false", "--set", "rebalance.rate=20")).Spec.Template.Spec.Containers[0])
	if env["PUSHD_REBALANCE"].Value != "false" || env["PUSHD_REBALANCE_RATE"].Value != "20" {
		t.Errorf("PUSHD_REBALANCE = %q, PUSHD_REBALANCE_RATE = %q with rebalance.enabled=false, rate=20", env["PUSHD_REBALANCE"].Value, env["PUSHD_REBALANCE_RATE"].Value)
	}
}

// TestEnvNamesArePushdFlags: every PUSHD_ variable the chart sets is the twin
// of a flag cmd/pushd defines, so a renamed flag cannot leave the chart
// setting a variable nobody reads.
func TestEnvNamesArePushdFlags(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "cmd", "pushd", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`f\.[A-Za-z0-9]+Var\(&[^,]+, "([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
			flags["PUSHD_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
		}
	}
	if len(flags) < 20 {
		t.Fatalf("found %d flags in cmd/pushd: the pattern no longer matches", len(flags))
	}
	for _, values := range []string{"minimal-values.yaml", "production-values.yaml", "dev-standalone-values.yaml"} {
		c := deployment(t, renderDecoded(t, "-f", filepath.Join(chartDir, "ci", values))).Spec.Template.Spec.Containers[0]
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "PUSHD_") && !flags[e.Name] {
				t.Errorf("%s: the chart sets %s, which no pushd flag reads", values, e.Name)
			}
		}
	}
}
