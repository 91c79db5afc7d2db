package chart_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../pushd"
	releaseName = "pushd"
	namespace   = "push"
	// Oldest Kubernetes the chart claims (Chart.yaml kubeVersion); rendering against it proves
	// the constraint and every apiVersion used hold there.
	minKubeVersion = "v1.30.0"
)

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBinary finds helm: $PUSHD_HELM_BIN, then the .ci/install-helm cache, then PATH.
// A missing helm is a test failure, never a skip: CI must not go green without running these.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		var tried []string
		if p := os.Getenv("PUSHD_HELM_BIN"); p != "" {
			if isExecutable(p) {
				helmPath = p
				return
			}
			helmErr = fmt.Errorf("PUSHD_HELM_BIN=%s is not an executable file", p)
			return
		}
		var candidates []string
		if d := os.Getenv("PUSHD_TOOLS"); d != "" {
			candidates = append(candidates, filepath.Join(d, "bin", "helm"))
		}
		if home, err := os.UserHomeDir(); err == nil {
			candidates = append(candidates, filepath.Join(home, ".cache", "pushd", "tools", "bin", "helm"))
		}
		for _, c := range candidates {
			tried = append(tried, c)
			if isExecutable(c) {
				helmPath = c
				return
			}
		}
		if p, err := exec.LookPath("helm"); err == nil {
			helmPath = p
			return
		}
		tried = append(tried, "$PATH")
		helmErr = fmt.Errorf("helm not found (looked at $PUSHD_HELM_BIN, %s): run .ci/install-helm from the repository root first", strings.Join(tried, ", "))
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	// Keep helm away from any user repositories/plugins/kubeconfig.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(tmp, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"HELM_DATA_HOME="+filepath.Join(tmp, "data"),
		"KUBECONFIG="+filepath.Join(tmp, "no-kubeconfig"),
	)
	err = cmd.Run()
	return o.String(), e.String(), err
}

// render runs helm template with the given extra arguments (values files, --set ...).
func render(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"template", releaseName, chartDir, "--namespace", namespace, "--kube-version", minKubeVersion}, extra...)
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		return out, fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out, nil
}

func ciValuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("expected at least 3 values files in %s/ci, found %v", chartDir, files)
	}
	return files
}

// Local structural types for CRDs whose Go packages we do not want to depend on. Unknown
// fields fail strict decoding, so a typo in the template is caught like for built-in kinds.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string `json:"jobLabel,omitempty"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path,omitempty"`
			Scheme            string           `json:"scheme,omitempty"`
			Interval          string           `json:"interval,omitempty"`
			ScrapeTimeout     string           `json:"scrapeTimeout,omitempty"`
			HonorLabels       bool             `json:"honorLabels,omitempty"`
			Relabelings       []map[string]any `json:"relabelings,omitempty"`
			MetricRelabelings []map[string]any `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type httpRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ParentRefs []struct {
			Group       string `json:"group,omitempty"`
			Kind        string `json:"kind,omitempty"`
			Name        string `json:"name"`
			Namespace   string `json:"namespace,omitempty"`
			SectionName string `json:"sectionName,omitempty"`
			Port        *int32 `json:"port,omitempty"`
		} `json:"parentRefs"`
		Hostnames []string `json:"hostnames,omitempty"`
		Rules     []struct {
			Matches []struct {
				Path *struct {
					Type  string `json:"type"`
					Value string `json:"value"`
				} `json:"path,omitempty"`
			} `json:"matches,omitempty"`
			BackendRefs []struct {
				Name   string `json:"name"`
				Port   int32  `json:"port"`
				Weight *int32 `json:"weight,omitempty"`
			} `json:"backendRefs"`
		} `json:"rules"`
	} `json:"spec"`
}

// rendered holds the decoded objects of one helm template run.
type rendered struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	ingresses       []*networkingv1.Ingress
	serviceMonitors []*serviceMonitor
	httpRoutes      []*httpRoute
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeAll splits a multi-document stream and strictly decodes each object into its Go type.
func decodeAll(manifest string) (*rendered, error) {
	r := &rendered{}
	var errs []error
	for i, doc := range docSep.Split(manifest, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %v", i, err))
			continue
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			r.deployments, obj = append(r.deployments, o), o
		case "v1/Service":
			o := &corev1.Service{}
			r.services, obj = append(r.services, o), o
		case "v1/ServiceAccount":
			o := &corev1.ServiceAccount{}
			r.serviceAccounts, obj = append(r.serviceAccounts, o), o
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			r.configMaps, obj = append(r.configMaps, o), o
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			r.pdbs, obj = append(r.pdbs, o), o
		case "autoscaling/v2/HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			r.hpas, obj = append(r.hpas, o), o
		case "networking.k8s.io/v1/Ingress":
			o := &networkingv1.Ingress{}
			r.ingresses, obj = append(r.ingresses, o), o
		case "monitoring.coreos.com/v1/ServiceMonitor":
			o := &serviceMonitor{}
			r.serviceMonitors, obj = append(r.serviceMonitors, o), o
		case "gateway.networking.k8s.io/v1/HTTPRoute":
			o := &httpRoute{}
			r.httpRoutes, obj = append(r.httpRoutes, o), o
		default:
			errs = append(errs, fmt.Errorf("document %d: unexpected kind %s/%s (add it to the decoder)", i, tm.APIVersion, tm.Kind))
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): strict decode: %v\n%s", i, tm.Kind, err, doc))
		}
	}
	return r, errors.Join(errs...)
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func renderDecoded(t *testing.T, extra ...string) *rendered {
	t.Helper()
	out, err := render(t, extra...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
