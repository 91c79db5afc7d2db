{{/*
Chart name, truncated to the 63 characters DNS names allow.
*/}}
{{- define "pushd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Uses the release name alone when it already contains the chart name.
*/}}
{{- define "pushd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value.
*/}}
{{- define "pushd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of the release (Deployment selectors are immutable).
*/}}
{{- define "pushd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "pushd.labels" -}}
helm.sh/chart: {{ include "pushd.chart" . }}
{{ include "pushd.selectorLabels" . }}
app.kubernetes.io/version: {{ include "pushd.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pushd
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Common annotations block (metadata.annotations), merged with resource specific ones.
Usage: include "pushd.annotations" (dict "extra" .Values.service.annotations "ctx" $)
*/}}
{{- define "pushd.annotations" -}}
{{- $all := merge (deepCopy (default (dict) .extra)) (default (dict) .ctx.Values.commonAnnotations) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "pushd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pushd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image tag (defaults to appVersion) and full image reference (digest wins).
*/}}
{{- define "pushd.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "pushd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "pushd.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Seconds the kubelet waits between the preStop hook start and SIGKILL. It has to cover the
preStop sleep and the whole drain, plus a margin for the final flush and process exit.
*/}}
{{- define "pushd.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.pushd.drainTimeoutSeconds }}
{{- $preStop := int .Values.lifecycle.preStopSleepSeconds }}
{{- $min := add $drain $preStop }}
{{- if .Values.terminationGracePeriodSeconds }}
{{- $explicit := int .Values.terminationGracePeriodSeconds }}
{{- if le $explicit $min }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than pushd.drainTimeoutSeconds + lifecycle.preStopSleepSeconds (%d), or pods are killed mid-drain" $explicit $min) }}
{{- end }}
{{- $explicit }}
{{- else }}
{{- add $min (int .Values.lifecycle.terminationGraceMarginSeconds) }}
{{- end }}
{{- end }}

{{/*
Address of the Consul HTTP API.
*/}}
{{- define "pushd.consulAddress" -}}
{{- if .Values.consul.address }}
{{- .Values.consul.address }}
{{- else }}
{{- printf "$(HOST_IP):%d" (int .Values.consul.hostPort) }}
{{- end }}
{{- end }}

{{/*
Fail early on combinations the schema cannot express.
*/}}
{{- define "pushd.validate" -}}
{{- if not .Values.pushd.dev }}
{{- if not .Values.nats.url }}
{{- fail "nats.url is required (e.g. nats://nats.nats.svc:4222); only pushd.dev=true runs an embedded NATS" }}
{{- end }}
{{- if and (not .Values.auth.jwtPublicKey.existingSecret) (not .Values.auth.jwtSecret.existingSecret) }}
{{- fail "set auth.jwtPublicKey.existingSecret or auth.jwtSecret.existingSecret: pushd refuses to start without a JWT key unless pushd.dev=true" }}
{{- end }}
{{- end }}
{{- if and .Values.auth.jwtPublicKey.existingSecret .Values.auth.jwtSecret.existingSecret }}
{{- fail "set only one of auth.jwtPublicKey.existingSecret and auth.jwtSecret.existingSecret" }}
{{- end }}
{{- if and (not .Values.consul.enabled) (not .Values.pushd.dev) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "more than one replica needs consul.enabled=true (node IDs are leased from Consul)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true (the ServiceMonitor scrapes the metrics Service)" }}
{{- end }}
{{- end }}
