{{/*
Names. The release name is the prefix of every object ("mbcas" by default, giving mbcas-agent and
mbcas-controller), unless fullnameOverride says otherwise.
*/}}
{{- define "mbcas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mbcas.fullname" -}}
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

{{- define "mbcas.agent.fullname" -}}
{{- printf "%s-agent" (include "mbcas.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mbcas.controller.fullname" -}}
{{- printf "%s-controller" (include "mbcas.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mbcas.agent.serviceAccountName" -}}
{{- default (include "mbcas.agent.fullname" .) .Values.agent.serviceAccount.name }}
{{- end }}

{{- define "mbcas.controller.serviceAccountName" -}}
{{- default (include "mbcas.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- end }}

{{/* The shared live ConfigMap (the agent reads it all, the controller its contract section). */}}
{{- define "mbcas.configMapName" -}}
{{- printf "%s-config" (include "mbcas.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The username the apiserver gives the agent's ServiceAccount token. */}}
{{- define "mbcas.agent.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "mbcas.agent.serviceAccountName" .) }}
{{- end }}

{{- define "mbcas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mbcas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mbcas
{{- end }}

{{- define "mbcas.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mbcas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "mbcas.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mbcas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* image: "<registry>/<name>:<tag>" or "...@<digest>"; tag defaults to the chart's appVersion. */}}
{{- define "mbcas.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $repo := printf "%s/%s" $root.Values.image.registry $img.name -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default $root.Values.image.tag $img.tag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/* Hardened container securityContext shared by every MBCAS container. */}}
{{- define "mbcas.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
An environment variable's value from a values entry: strings as they are, numbers and booleans as
JSON (no exponent: Helm reads YAML numbers as float64 and toString would print 2e+06).
*/}}
{{- define "mbcas.envValue" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ toJson . | quote }}{{ end }}
{{- end }}

{{/*
Agent settings as MBCAS_AGENT_* environment variables: one per key of agent.settings (keys are the
field names of mbcas.agent.config.AgentConfig; null values are left out so the binary's default
applies). The node (NODE_NAME) and namespace (POD_NAMESPACE, downward API), the cgroup root (agent.cgroup.mountPath), the port
(agent.metricsPort) and the shared ConfigMap (NAMESPACE/NAME) are set by the chart; the live
settings (config) are in that ConfigMap.
*/}}
{{- define "mbcas.agent.env" -}}
- name: MBCAS_AGENT_CGROUP_ROOT
  value: {{ .Values.agent.cgroup.mountPath | quote }}
- name: MBCAS_AGENT_METRICS_PORT
  value: {{ .Values.agent.metricsPort | quote }}
- name: MBCAS_AGENT_CONFIG_MAP
  value: {{ printf "%s/%s" .Release.Namespace (include "mbcas.configMapName" .) | quote }}
{{- range $key, $value := .Values.agent.settings }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "MBCAS_AGENT_%s" ($key | upper) }}
  value: {{ include "mbcas.envValue" $value }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Controller settings as MBCAS_CONTROLLER_* environment variables: one per key of
controller.settings (keys are the field names of mbcas.controller.config.ControllerConfig; a
nested map such as rules gives MBCAS_CONTROLLER_RULES__<KEY>; null values are left out so the
binary's default applies). Ports come from controller.metricsPort and controller.healthPort (the
probes and the Service use them too); the shared ConfigMap is the release's; the leader-election
Lease lives in the release namespace, and each replica's identity is its pod name.
*/}}
{{- define "mbcas.controller.env" -}}
- name: MBCAS_CONTROLLER_METRICS_PORT
  value: {{ .Values.controller.metricsPort | quote }}
- name: MBCAS_CONTROLLER_HEALTH_PORT
  value: {{ .Values.controller.healthPort | quote }}
- name: MBCAS_CONTROLLER_CONFIG_MAP
  value: {{ printf "%s/%s" .Release.Namespace (include "mbcas.configMapName" .) | quote }}
- name: MBCAS_CONTROLLER_IDENTITY
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: MBCAS_CONTROLLER_LEASE_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: MBCAS_CONTROLLER_LEASE_NAME
  value: {{ default (include "mbcas.controller.fullname" .) .Values.controller.settings.lease_name | quote }}
{{- range $key, $value := .Values.controller.settings }}
{{- if kindIs "map" $value }}
{{- range $inner, $v := $value }}
{{- if not (kindIs "invalid" $v) }}
- name: {{ printf "MBCAS_CONTROLLER_%s__%s" ($key | upper) ($inner | upper) }}
  value: {{ include "mbcas.envValue" $v }}
{{- end }}
{{- end }}
{{- else if and (not (kindIs "invalid" $value)) (ne $key "lease_name") }}
- name: {{ printf "MBCAS_CONTROLLER_%s" ($key | upper) }}
  value: {{ include "mbcas.envValue" $value }}
{{- end }}
{{- end }}
{{- end }}
