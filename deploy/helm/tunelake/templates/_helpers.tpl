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

{{/* The registry's own API (v2), which Apicurio's Avro converter in Kafka Connect speaks. */}}
{{- define "tunelake.connectRegistryUrl" -}}
{{- printf "http://%s-registry:%v/apis/registry/v2" (include "tunelake.fullname" .) .Values.registry.port }}
{{- end }}

{{/* The Strimzi KafkaConnect of the CDC connector; Strimzi names its REST Service <name>-connect-api. */}}
{{- define "tunelake.cdcConnect" -}}
{{- printf "%s-cdc" (include "tunelake.fullname" .) }}
{{- end }}

{{- define "tunelake.kafkaConnectUrl" -}}
{{- printf "http://%s-connect-api:8083" (include "tunelake.cdcConnect" .) }}
{{- end }}

{{- define "tunelake.sparkServiceAccount" -}}
{{- default (printf "%s-spark" (include "tunelake.fullname" .)) .Values.spark.serviceAccount.name }}
{{- end }}

{{/*
The secret settings of one workload, as `env` items: call with (dict "ctx" $ "workload"
"service"|"spark"|"jupyter"). Each workload gets only the Secrets it uses (as
tunelake.settings.WORKLOAD_SECRETS lists them); TUNELAKE_WORKLOAD tells tunelake which, so
the secrets it does not get stay empty. The non-secret settings come from the settings
ConfigMap, loaded with `envFrom`.
*/}}
{{- define "tunelake.secretEnv" -}}
{{- $v := .ctx.Values }}
{{- $s := $v.secrets }}
- name: TUNELAKE_WORKLOAD
  value: {{ .workload | quote }}
- name: TUNELAKE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.s3.existingSecret is required" $s.s3.existingSecret }}
      key: {{ $s.s3.accessKeyKey }}
- name: TUNELAKE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.s3.existingSecret }}
      key: {{ $s.s3.secretKeyKey }}
{{- if eq .workload "spark" }}
- name: TUNELAKE_POSTGRES_USER
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.postgres.existingSecret is required" $s.postgres.existingSecret }}
      key: {{ $s.postgres.usernameKey }}
- name: TUNELAKE_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $s.postgres.existingSecret }}
      key: {{ $s.postgres.passwordKey }}
{{- end }}
{{- if eq .workload "service" }}
- name: TUNELAKE_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.service.existingSecret is required" $s.service.existingSecret }}
      key: {{ $s.service.apiKeysKey }}
{{- end }}
{{- $kafka := get $s.kafka .workload }}
{{- if and $kafka (hasPrefix "SASL_" (toString $v.settings.kafka_security_protocol)) }}
- name: TUNELAKE_KAFKA_SASL_USERNAME
  value: {{ required (printf "secrets.kafka.%s.username is required" .workload) $kafka.username | quote }}
- name: TUNELAKE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secrets.kafka.%s.existingSecret is required" .workload) $kafka.existingSecret }}
      key: {{ $kafka.passwordKey }}
{{- end }}
{{- end }}

{{/*
The spec of a SparkApplication running a job of the registry (tunelake_ops/jobs.py) through
/opt/tunelake/submit.py on the Spark image, as YAML: call with (dict "ctx" $ "name" NAME
"job" JOB-VALUES). The chart's own applications and the template Airflow's Spark tasks fill
(TUNELAKE_SPARK_DEPLOY=kubernetes) are both built here; a job with no `job` is that
template (Airflow sets the arguments per task).
*/}}
{{- define "tunelake.sparkApplicationSpec" -}}
{{- $ := .ctx }}
{{- $job := .job }}
{{- $podEnv := dict "envFrom" (include "tunelake.settingsEnvFrom" $ | fromYamlArray) "env" (include "tunelake.secretEnv" (dict "ctx" $ "workload" "spark") | fromYamlArray) }}
{{- $podSecurity := dict "podSecurityContext" $.Values.podSecurityContext "securityContext" (dict "allowPrivilegeEscalation" false "capabilities" (dict "drop" (list "ALL"))) }}
{{- $labels := dict "app.kubernetes.io/name" (include "tunelake.name" $) "app.kubernetes.io/instance" $.Release.Name "app.kubernetes.io/part-of" "tunelake" "app.kubernetes.io/component" "spark" "tunelake.dev/job" .name }}
{{- $arguments := list }}
{{- if $job.job }}
{{- $arguments = prepend ($job.arguments | default list) $job.job }}
{{- end }}
{{- $spec := dict
      "type" "Python"
      "pythonVersion" "3"
      "mode" "cluster"
      "image" (include "tunelake.image" (dict "ctx" $ "name" "spark"))
      "imagePullPolicy" $.Values.image.pullPolicy
      "mainApplicationFile" "local:///opt/tunelake/submit.py"
      "arguments" $arguments
      "sparkVersion" $.Values.spark.version
      "restartPolicy" $job.restartPolicy
      "driver" (merge (dict "cores" $job.driver.cores "memory" $job.driver.memory "serviceAccount" (include "tunelake.sparkServiceAccount" $) "labels" $labels) $podEnv $podSecurity)
      "executor" (merge (dict "cores" $job.executor.cores "memory" $job.executor.memory "instances" $job.executor.instances "labels" $labels) $podEnv $podSecurity)
}}
{{- if $.Values.imagePullSecrets }}
{{- $pullSecrets := list }}
{{- range $.Values.imagePullSecrets }}
{{- $pullSecrets = append $pullSecrets .name }}
{{- end }}
{{- $_ := set $spec "imagePullSecrets" $pullSecrets }}
{{- end }}
{{- with $.Values.spark.sparkConf }}
{{- $_ := set $spec "sparkConf" . }}
{{- end }}
{{- toYaml $spec }}
{{- end }}

{{- define "tunelake.settingsEnvFrom" -}}
- configMapRef:
    name: {{ include "tunelake.settingsConfigMap" . }}
{{- end }}
