{{/* The chart's name. */}}
{{- define "floatover.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name (resource names). */}}
{{- define "floatover.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "floatover.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "floatover.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "floatover.selectorLabels" -}}
app.kubernetes.io/name: {{ include "floatover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "floatover.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "floatover.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the API token. */}}
{{- define "floatover.secretName" -}}
{{- default (printf "%s-api" (include "floatover.fullname" .)) .Values.api.existingSecret }}
{{- end }}

{{/* The floatover config: the user's, with leader and api filled in by the chart. */}}
{{- define "floatover.config" -}}
{{- if hasKey .Values.config "leader" }}
{{- fail "config.leader: set by the chart (a Kubernetes Lease, from leaderElection); remove it from config" }}
{{- end }}
{{- if hasKey .Values.config "api" }}
{{- fail "config.api: set by the chart (listen on api.port, token from the Secret); remove it from config" }}
{{- end }}
{{- $c := deepCopy .Values.config }}
{{- if .Values.floatGroups.enabled }}
{{- $_ := unset $c "groups" }}
{{- $_ := set $c "group_source" (dict "kubernetes" (dict)) }}
{{- end }}
{{- $le := .Values.leaderElection }}
{{- $leader := dict
  "lease_duration" $le.leaseDuration
  "renew_deadline" $le.renewDeadline
  "retry_period" $le.retryPeriod }}
{{- $q := $le.quorum | default dict }}
{{- if $q.enabled }}
{{- $members := list }}
{{- if $q.localLease }}
{{- $members = append $members (dict "name" "cluster" "kubernetes" (dict "name" $le.leaseName)) }}
{{- end }}
{{- range $q.s3Members }}
{{- $s3 := dict "bucket" .bucket "region" .region }}
{{- if .key }}{{- $_ := set $s3 "key" .key }}{{- end }}
{{- if .endpointUrl }}{{- $_ := set $s3 "endpoint_url" .endpointUrl }}{{- end }}
{{- $members = append $members (dict "name" .name "s3" $s3) }}
{{- end }}
{{- if not (has (len $members) (list 3 5)) }}
{{- fail (printf "leaderElection.quorum: %d members (localLease %v + %d s3Members); a quorum needs 3 or 5" (len $members) $q.localLease (len $q.s3Members)) }}
{{- end }}
{{- $_ := set $leader "backend" "quorum" }}
{{- $_ := set $leader "quorum" (dict "members" $members) }}
{{- else }}
{{- $_ := set $leader "backend" "kubernetes" }}
{{- $_ := set $leader "kubernetes" (dict "name" $le.leaseName) }}
{{- end }}
{{- $_ := set $c "leader" $leader }}
{{- $_ := set $c "api" (dict
  "listen" (printf "0.0.0.0:%d" (int .Values.api.port))
  "token_env" "FLOATOVER_API_TOKEN") }}
{{- toYaml $c }}
{{- end }}
