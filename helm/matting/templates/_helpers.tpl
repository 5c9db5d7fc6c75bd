{{/* Names and labels, in the usual Helm shape. */}}
{{- define "matting.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "matting.fullname" -}}
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

{{- define "matting.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "matting.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "api"). */}}
{{- define "matting.selectorLabels" -}}
app.kubernetes.io/name: {{ include "matting.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "matting.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "matting.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image of a component that asks for `gpu` GPUs: (dict "root" $ "gpu" N). */}}
{{- define "matting.image" -}}
{{- $flavor := ternary "gpu" "cpu" (gt (int .gpu) 0) }}
{{- $tag := .root.Values.image.tag | default (printf "%s-%s" .root.Chart.AppVersion $flavor) }}
{{- printf "%s:%s" .root.Values.image.repository $tag }}
{{- end }}

{{/* Auth is on when any API key source is configured. */}}
{{- define "matting.authEnabled" -}}
{{- if or .Values.auth.apiKeys .Values.auth.existingSecret }}true{{ end }}
{{- end }}

{{- define "matting.apiKeysSecret" -}}
{{- .Values.auth.existingSecret | default (include "matting.fullname" .) }}
{{- end }}

{{- define "matting.redisPasswordSet" -}}
{{- if or .Values.redis.auth.password .Values.redis.auth.existingSecret }}true{{ end }}
{{- end }}

{{- define "matting.redisPasswordSecret" -}}
{{- .Values.redis.auth.existingSecret | default (include "matting.fullname" .) }}
{{- end }}

{{/* The chart's own Secret is needed only for values given in clear in the values. */}}
{{- define "matting.ownSecret" -}}
{{- if or (and .Values.auth.apiKeys (not .Values.auth.existingSecret)) (and .Values.redis.auth.password (not .Values.redis.auth.existingSecret)) }}true{{ end }}
{{- end }}

{{/*
Where Redis is, as a dict: scheme, address (host:port), db. The in-chart Redis or redis.url;
a password inside redis.url is refused so that it never lands in a manifest.
*/}}
{{- define "matting.redis" -}}
{{- if .Values.redis.enabled }}
{{- /* Namespace-qualified: KEDA's operator connects from its own namespace. */}}
{{- dict "scheme" "redis" "address" (printf "%s-redis.%s.svc:6379" (include "matting.fullname" .) .Release.Namespace) "db" "0" | toJson }}
{{- else }}
{{- $u := urlParse (required "redis.url is required when redis.enabled is false" .Values.redis.url) }}
{{- if not (has $u.scheme (list "redis" "rediss")) }}
{{- fail (printf "redis.url must start with redis:// or rediss://, not %s://" $u.scheme) }}
{{- end }}
{{- if $u.userinfo }}
{{- fail "redis.url must not carry credentials: set redis.auth.existingSecret (or redis.auth.password)" }}
{{- end }}
{{- $host := $u.host }}
{{- if not (contains ":" $host) }}{{ $host = printf "%s:6379" $host }}{{ end }}
{{- $db := trimPrefix "/" $u.path | default "0" }}
{{- dict "scheme" $u.scheme "address" $host "db" $db | toJson }}
{{- end }}
{{- end }}

{{/* Settings the chart sets itself, and settings that are secrets: refused in .Values.settings. */}}
{{- define "matting.checkSettings" -}}
{{- $managed := dict "api_keys" "auth.apiKeys or auth.existingSecret" "api_keys_file" "auth.existingSecret" "redis_url" "redis.url and redis.auth" "port" "api.port" "worker_metrics_port" "worker.metricsPort" "storage_dir" "storage.*" "model" "model.path" "host" "nothing (pods listen on 0.0.0.0)" "workers" "worker.replicas (workers are their own pods)" }}
{{- range $k, $_ := .Values.settings }}
{{- if hasKey $managed $k }}
{{- fail (printf "settings.%s is set by the chart: use %s" $k (get $managed $k)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment shared by api and worker containers: (dict "root" $ "engine" BOOL "apiKeys" BOOL).
engine: the pod's init container builds a TensorRT engine; apiKeys: the container checks keys
(the API only: workers get no key they do not need).
*/}}
{{- define "matting.env" -}}
{{- $v := .root.Values }}
{{- $r := include "matting.redis" .root | fromJson }}
{{- if include "matting.redisPasswordSet" .root }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "matting.redisPasswordSecret" .root }}
      key: {{ $v.redis.auth.existingSecretKey }}
# Kubernetes expands $(REDIS_PASSWORD) when it starts the container; the manifest holds no password.
- name: MATTING_REDIS_URL
  value: {{ printf "%s://:$(REDIS_PASSWORD)@%s/%s" $r.scheme $r.address $r.db | quote }}
{{- else }}
- name: MATTING_REDIS_URL
  value: {{ printf "%s://%s/%s" $r.scheme $r.address $r.db | quote }}
{{- end }}
{{- if and .apiKeys (include "matting.authEnabled" .root) }}
- name: MATTING_API_KEYS_FILE
  value: /etc/matting/secrets/api-keys
{{- end }}
{{- if .engine }}
- name: MATTING_MODEL
  value: /engines/tensorrt
- name: MATTING_BACKEND
  value: tensorrt
{{- else if $v.model.path }}
- name: MATTING_MODEL
  value: {{ $v.model.path | quote }}
{{- end }}
{{- end }}

{{/* Volume mounts shared by api and worker containers: the same dict as matting.env. */}}
{{- define "matting.volumeMounts" -}}
{{- $v := .root.Values }}
- name: jobs
  mountPath: {{ $v.storage.mountPath }}
- name: cache
  mountPath: /var/cache/matting
- name: tmp
  mountPath: /tmp
{{- if and .apiKeys (include "matting.authEnabled" .root) }}
- name: api-keys
  mountPath: /etc/matting/secrets
  readOnly: true
{{- end }}
{{- if $v.model.volume }}
- name: models
  mountPath: /models
  readOnly: true
{{- end }}
{{- if .engine }}
- name: engines
  mountPath: /engines
  readOnly: true
{{- end }}
{{- end }}

{{- define "matting.volumes" -}}
{{- $v := .root.Values }}
- name: jobs
  persistentVolumeClaim:
    claimName: {{ $v.storage.existingClaim | default (printf "%s-jobs" (include "matting.fullname" .root)) }}
# The default model's ONNX export (made at first start) and other caches: per pod.
- name: cache
  emptyDir: {}
# The root filesystem is read-only; /tmp is the only scratch space.
- name: tmp
  emptyDir: {}
{{- if and .apiKeys (include "matting.authEnabled" .root) }}
- name: api-keys
  secret:
    secretName: {{ include "matting.apiKeysSecret" .root }}
    defaultMode: 0440
    items:
      - key: {{ $v.auth.existingSecretKey }}
        path: api-keys
{{- end }}
{{- if $v.model.volume }}
- name: models
{{- toYaml $v.model.volume | nindent 2 }}
{{- end }}
{{- if .engine }}
- name: engines
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
The init container that builds a TensorRT engine on the pod's GPU:
(dict "root" $ "resources" <the main container's resources with the GPU>).
*/}}
{{- define "matting.buildEngine" -}}
{{- $v := .root.Values }}
{{- $ckpt := "" }}
{{- if $v.model.path }}
{{- if not (hasSuffix ".safetensors" $v.model.path) }}
{{- fail "model.buildEngine builds from a checkpoint: model.path must be a .safetensors file (or empty for the shipped model)" }}
{{- end }}
{{- $ckpt = printf " --checkpoint %s" (squote $v.model.path) }}
{{- end }}
{{- /* MATTING_TTA=false serves one coarse pass; the graphs must then be traced without it */}}
{{- $tta := "" }}
{{- if and (hasKey $v.settings "tta") (eq (toString $v.settings.tta) "false") }}
{{- $tta = " --no-tta" }}
{{- end }}
{{- $profiles := "" }}
{{- range $v.model.buildEngine.profiles }}{{ $profiles = printf "%s --profile %s" $profiles (squote .) }}{{ end }}
- name: build-engine
  image: {{ include "matting.image" (dict "root" .root "gpu" 1) }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["sh", "-c"]
  args:
    - >-
      set -e;
      matting export onnx{{ $ckpt }}{{ $tta }} --out /engines/onnx --quiet;
      matting export tensorrt --onnx /engines/onnx --out /engines/tensorrt
      --max-batch {{ $v.model.buildEngine.maxBatch }} --workspace-gib {{ $v.model.buildEngine.workspaceGiB }}{{ $profiles }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  volumeMounts:
    - name: engines
      mountPath: /engines
    - name: tmp
      mountPath: /tmp
    {{- if $v.model.volume }}
    - name: models
      mountPath: /models
      readOnly: true
    {{- end }}
{{- end }}

{{/* Resources of a component with its GPU count added to limits: (dict "resources" R "gpu" N). */}}
{{- define "matting.resources" -}}
{{- $res := deepCopy (.resources | default dict) }}
{{- if gt (int .gpu) 0 }}
{{- $limits := get $res "limits" | default dict }}
{{- $_ := set $limits "nvidia.com/gpu" (int .gpu) }}
{{- $_ := set $res "limits" $limits }}
{{- end }}
{{- toYaml $res }}
{{- end }}
