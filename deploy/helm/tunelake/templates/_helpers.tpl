{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "tunelake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name: the release name alone when it already holds the chart name. */}}
{{- define "tunelake.fullname" -}}
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

{{- define "tunelake.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tunelake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tunelake
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "service"). */}}
{{- define "tunelake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tunelake.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* One of tunelake's own images: call with (dict "ctx" $ "name" "service"). */}}
{{- define "tunelake.image" -}}
{{- printf "%s/tunelake-%s:%s" .ctx.Values.image.registry .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) }}
{{- end }}

{{- define "tunelake.settingsConfigMap" -}}
{{- printf "%s-settings" (include "tunelake.fullname" .) }}
{{- end }}

{{- define "tunelake.registryUrl" -}}
{{- printf "http://%s-registry:%v/apis/ccompat/v7" (include "tunelake.fullname" .) .Values.registry.port }}
{{- end }}

{{- define "tunelake.sparkServiceAccount" -}}
{{- default (printf "%s-spark" (include "tunelake.fullname" .)) .Values.spark.serviceAccount.name }}
{{- end }}

{{/*
The settings every tunelake container gets, as `env` items: the secret ones (the
credentials and every SecretStr setting) from the existing Secrets named in .Values.secrets (the rest come from the settings ConfigMap,
loaded with `envFrom`).
*/}}
{{- define "tunelake.secretEnv" -}}
- name: TUNELAKE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.s3.existingSecret is required" .Values.secrets.s3.existingSecret }}
      key: {{ .Values.secrets.s3.accessKeyKey }}
- name: TUNELAKE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.s3.existingSecret }}
      key: {{ .Values.secrets.s3.secretKeyKey }}
- name: TUNELAKE_POSTGRES_USER
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.postgres.existingSecret is required" .Values.secrets.postgres.existingSecret }}
      key: {{ .Values.secrets.postgres.usernameKey }}
- name: TUNELAKE_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.postgres.existingSecret }}
      key: {{ .Values.secrets.postgres.passwordKey }}
- name: TUNELAKE_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.service.existingSecret is required" .Values.secrets.service.existingSecret }}
      key: {{ .Values.secrets.service.apiKeysKey }}
{{- end }}

{{- define "tunelake.settingsEnvFrom" -}}
- configMapRef:
    name: {{ include "tunelake.settingsConfigMap" . }}
{{- end }}
