{{/* Names, labels, images and shared pod parts of the Modelverse chart. */}}

{{- define "modelverse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelverse.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: include with (dict "root" $ "component" "gateway") */}}
{{- define "modelverse.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image reference: include with (dict "root" $ "image" .Values.image.serving) */}}
{{- define "modelverse.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag -}}
{{- if .image.digest -}}
{{- printf "%s%s@%s" .root.Values.image.registry .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s%s:%s" .root.Values.image.registry .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "modelverse.shardHost" -}}
{{- printf "%s-shard-%d-%d.%s-shard-%d.%s.svc" .name .shard .replica .name .shard .namespace -}}
{{- end -}}

{{/* --shard arguments of the gateway and the admin: one per shard, its replicas comma-separated */}}
{{- define "modelverse.shardArgs" -}}
{{- $root := . -}}
{{- $name := include "modelverse.fullname" $root -}}
{{- range $shard := until (int $root.Values.shards.count) }}
- --shard
- {{ $addresses := list -}}
  {{- range $replica := until (int $root.Values.shards.replicas) -}}
  {{- $addresses = append $addresses (printf "%s:%d" (include "modelverse.shardHost" (dict "name" $name "shard" $shard "replica" $replica "namespace" $root.Release.Namespace)) (int $root.Values.shards.port)) -}}
  {{- end -}}
  {{- join "," $addresses | quote }}
{{- end }}
{{- end -}}

{{- define "modelverse.redisSecret" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis" (include "modelverse.fullname" .)) -}}
{{- end -}}

{{- define "modelverse.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "modelverse.fullname" .)) -}}
{{- end -}}

{{/* the broker URL; $(REDIS_PASSWORD) is expanded by the kubelet from the container's env */}}
{{- define "modelverse.brokerUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://:$(REDIS_PASSWORD)@%s-redis:%d/0" (include "modelverse.fullname" .) (int .Values.redis.port) -}}
{{- else -}}
{{- $url := required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl -}}
{{- $parts := splitList "://" $url -}}
{{- printf "%s://:$(REDIS_PASSWORD)@%s" (index $parts 0) (index $parts 1) -}}
{{- end -}}
{{- end -}}

{{- define "modelverse.redisPasswordEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "modelverse.redisSecret" . }}, key: redis-password}
{{- end -}}

{{- define "modelverse.storeClaim" -}}
{{- .Values.store.existingClaim | default (printf "%s-store" (include "modelverse.fullname" .)) -}}
{{- end -}}

{{/* sameNode store sharing: every store user runs on the node of the admin (which holds the RWO claim) */}}
{{- define "modelverse.storeAffinity" -}}
{{- if eq .Values.store.sharing "sameNode" }}
podAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector:
        matchLabels: {{- include "modelverse.selector" (dict "root" . "component" "admin") | nindent 10 }}
      topologyKey: kubernetes.io/hostname
{{- end }}
{{- end -}}

{{- define "modelverse.podSecurity" -}}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "modelverse.metricsAnnotations" -}}
{{- if .root.Values.metrics.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* the settings every Modelverse container reads from the environment */}}
{{- define "modelverse.commonEnv" -}}
- name: MODELVERSE_CACHE
  value: /var/cache/modelverse
- name: HF_HOME
  value: /var/cache/modelverse/hf
{{- end -}}

{{/* writable paths under a read-only root filesystem */}}
{{- define "modelverse.scratchVolumes" -}}
- name: tmp
  emptyDir: {sizeLimit: 1Gi}
- name: cache
  emptyDir: {sizeLimit: {{ .Values.encoder.cacheSize }}}
{{- if .Values.encoder.weights.existingClaim }}
- name: encoder-weights
  persistentVolumeClaim: {claimName: {{ .Values.encoder.weights.existingClaim }}, readOnly: true}
{{- end }}
{{- end -}}

{{- define "modelverse.scratchMounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: cache, mountPath: /var/cache/modelverse}
{{- if .Values.encoder.weights.existingClaim }}
- {name: encoder-weights, mountPath: /models, readOnly: true}
{{- end }}
{{- end -}}

{{/* a gRPC probe: the kubelet's own gRPC health probe, or the image's check when the port speaks TLS */}}
{{- define "modelverse.grpcProbe" -}}
{{- if .tls }}
exec:
  command: [modelverse-healthcheck]
{{- else }}
grpc: {port: {{ .port }}}
{{- end }}
{{- end -}}

{{- define "modelverse.jobSecret" -}}
{{- .Values.fleet.jobSecret.existingSecret | default (printf "%s-fleet" (include "modelverse.fullname" .)) -}}
{{- end -}}

{{/* the fleet's job secret as a file: env, mount, volume */}}
{{- define "modelverse.jobSecretEnv" -}}
- {name: MODELVERSE_JOB_SECRET_FILE, value: /run/secrets/fleet/job-secret}
{{- end -}}
{{- define "modelverse.jobSecretMount" -}}
- {name: job-secret, mountPath: /run/secrets/fleet, readOnly: true}
{{- end -}}
{{- define "modelverse.jobSecretVolume" -}}
- name: job-secret
  secret: {secretName: {{ include "modelverse.jobSecret" . }}, items: [{key: job-secret, path: job-secret}]}
{{- end -}}
