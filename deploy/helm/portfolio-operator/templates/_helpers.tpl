{{/*
Names and labels. Every object is named portfolio-operator, as
`portfolio-operator manifests` names them: one installation per cluster (the
CRDs and the ClusterRole are cluster-wide), and a cluster installed from
deploy/manifests can move to the chart without renaming anything.
*/}}
{{- define "portfolio-operator.name" -}}
portfolio-operator
{{- end }}

{{/* What the Deployment selects its pods by (immutable: never add to it). */}}
{{- define "portfolio-operator.selectorLabels" -}}
app.kubernetes.io/component: operator
app.kubernetes.io/name: portfolio-operator
{{- end }}

{{/* The selector labels, plus Helm's own. */}}
{{- define "portfolio-operator.labels" -}}
{{ include "portfolio-operator.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portfolio-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{- define "portfolio-operator.pluginNamespace" -}}
{{ .Values.pluginNamespace | default .Release.Namespace }}
{{- end }}

{{/*
The watched namespaces, each once and sorted, as a YAML list (empty for all
of them); a name Kubernetes would refuse is refused, as `manifests` does.
*/}}
{{- define "portfolio-operator.watchNamespaces" -}}
{{- range .Values.watchNamespaces }}
{{- if not (and (kindIs "string" .) (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" .)) }}
{{- fail (printf "watchNamespaces: %q is not a namespace name" (toString .)) }}
{{- end }}
{{- end }}
{{- toYaml (.Values.watchNamespaces | uniq | sortAlpha) }}
{{- end }}

{{/* The API group of an apiVersion ("" for the core group). */}}
{{- define "portfolio-operator.group" -}}
{{- if contains "/" . }}{{ regexReplaceAll "/[^/]*$" . "" }}{{ end }}
{{- end }}

{{/*
The child kinds plugins may create without extraKinds, in the operator's
registry order (host/src/kinds.rs, ChildKinds::default). The RBAC below is
derived from them as `manifests` derives it; a test renders the chart and
compares.
*/}}
{{- define "portfolio-operator.builtinKinds" -}}
- {apiVersion: v1, kind: ConfigMap, plural: configmaps}
- {apiVersion: v1, kind: Secret, plural: secrets}
- {apiVersion: v1, kind: Service, plural: services}
- {apiVersion: v1, kind: ServiceAccount, plural: serviceaccounts}
- {apiVersion: v1, kind: PersistentVolumeClaim, plural: persistentvolumeclaims}
- {apiVersion: apps/v1, kind: Deployment, plural: deployments}
- {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, plural: horizontalpodautoscalers}
- {apiVersion: batch/v1, kind: Job, plural: jobs}
- {apiVersion: networking.k8s.io/v1, kind: Ingress, plural: ingresses}
- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, plural: networkpolicies}
- {apiVersion: policy/v1, kind: PodDisruptionBudget, plural: poddisruptionbudgets}
{{- end }}

{{/*
Kinds Kubernetes serves outside namespaces (Kind.group, as kubectl names
them), which extraKinds refuses as the operator does (host/src/kinds.rs,
CLUSTER_SCOPED; a test checks that the two lists agree).
*/}}
{{- define "portfolio-operator.clusterScopedKinds" -}}
- Namespace
- Node
- PersistentVolume
- MutatingWebhookConfiguration.admissionregistration.k8s.io
- ValidatingAdmissionPolicy.admissionregistration.k8s.io
- ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io
- ValidatingWebhookConfiguration.admissionregistration.k8s.io
- CustomResourceDefinition.apiextensions.k8s.io
- APIService.apiregistration.k8s.io
- CertificateSigningRequest.certificates.k8s.io
- FlowSchema.flowcontrol.apiserver.k8s.io
- PriorityLevelConfiguration.flowcontrol.apiserver.k8s.io
- IngressClass.networking.k8s.io
- RuntimeClass.node.k8s.io
- ClusterRole.rbac.authorization.k8s.io
- ClusterRoleBinding.rbac.authorization.k8s.io
- PriorityClass.scheduling.k8s.io
- CSIDriver.storage.k8s.io
- CSINode.storage.k8s.io
- StorageClass.storage.k8s.io
- VolumeAttachment.storage.k8s.io
{{- end }}

{{/*
Every child kind, built-ins first, then extraKinds (those not already
registered), each with its group; `extra` marks the added ones. As
`--allow-kind` does, a kind is managed at one version and never RBAC or
cluster-scoped.
*/}}
{{- define "portfolio-operator.kinds" -}}
{{- $clusterScoped := include "portfolio-operator.clusterScopedKinds" . | fromYamlArray }}
{{- $kinds := list }}
{{- $seen := dict }}
{{- range include "portfolio-operator.builtinKinds" . | fromYamlArray }}
{{- $group := include "portfolio-operator.group" .apiVersion }}
{{- $kinds = append $kinds (dict "group" $group "apiVersion" .apiVersion "kind" .kind "plural" .plural "extra" false) }}
{{- $_ := set $seen (ternary .kind (printf "%s.%s" .kind $group) (eq $group "")) .apiVersion }}
{{- end }}
{{- range .Values.extraKinds }}
{{- $group := include "portfolio-operator.group" .apiVersion }}
{{- $groupKind := ternary .kind (printf "%s.%s" .kind $group) (eq $group "") }}
{{- if eq $group "rbac.authorization.k8s.io" }}
{{- fail (printf "extraKinds: %s: RBAC objects grant permissions; plugins never create them" $groupKind) }}
{{- end }}
{{- if has $groupKind $clusterScoped }}
{{- fail (printf "extraKinds: %s is cluster-scoped; plugins create objects in their owner's namespace only" $groupKind) }}
{{- end }}
{{- if hasKey $seen $groupKind }}
{{- if ne (get $seen $groupKind) .apiVersion }}
{{- fail (printf "extraKinds: %s is already managed as %s" $groupKind (get $seen $groupKind)) }}
{{- end }}
{{- else }}
{{- $kinds = append $kinds (dict "group" $group "apiVersion" .apiVersion "kind" .kind "plural" .plural "extra" true) }}
{{- $_ := set $seen $groupKind .apiVersion }}
{{- end }}
{{- end }}
{{- toYaml $kinds }}
{{- end }}

{{/*
What the operator does wherever it watches apps (manifests::app_rules): read
and update PortfolioApps, manage their children (one rule per API group, in
the registry's order), record Events.
*/}}
{{- define "portfolio-operator.appRules" -}}
- apiGroups: [portfolio.dev]
  resources: [portfolioapps, databasemigrations]
  verbs: [get, list, watch, update, patch]
- apiGroups: [portfolio.dev]
  resources: [portfolioapps/status, databasemigrations/status]
  verbs: [get, update, patch]
# Owner references with blockOwnerDeletion need it where the
# OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: [portfolio.dev]
  resources: [portfolioapps/finalizers, databasemigrations/finalizers]
  verbs: [update]
# The termination message of a migration Job's pod says how it went.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- $groups := list }}
{{- $plurals := dict }}
{{- range include "portfolio-operator.kinds" . | fromYamlArray }}
{{- if not (hasKey $plurals .group) }}
{{- $groups = append $groups .group }}
{{- $_ := set $plurals .group list }}
{{- end }}
{{- $_ := set $plurals .group (append (get $plurals .group) .plural) }}
{{- end }}
{{- range $groups }}
- apiGroups: [{{ . | quote }}]
  resources: {{ get $plurals . | toJson }}
  verbs: [get, list, watch, create, update, patch, delete]
{{- end }}
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* The leadership Lease and the migration locks, in the operator's namespace (manifests::lease_rules). */}}
{{- define "portfolio-operator.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update, patch, delete]
{{- end }}

{{/* Plugin ConfigMaps, read only, and Events on them (manifests::plugin_rules). */}}
{{- define "portfolio-operator.pluginRules" -}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* The operator's arguments, in the order `manifests` writes them. */}}
{{- define "portfolio-operator.args" -}}
{{- $election := .Values.leaderElection }}
{{- if and (not $election.enabled) (gt (int .Values.replicas) 1) }}
{{- fail "without leader election run exactly one replica (replicas: 1)" }}
{{- end }}
{{- if and (not $election.enabled) (or (not (kindIs "invalid" $election.leaseSeconds)) (not (kindIs "invalid" $election.graceSeconds))) }}
{{- fail "leaderElection.leaseSeconds and graceSeconds need leaderElection.enabled" }}
{{- end }}
- run
{{- if $election.enabled }}
- --leader-elect
{{- end }}
- --plugin-namespace
- {{ include "portfolio-operator.pluginNamespace" . }}
- --log-format
- json
- --plugin-cache-dir
- /var/cache/portfolio-operator
{{- with include "portfolio-operator.watchNamespaces" . | fromYamlArray }}
- --namespace
- {{ join "," . }}
{{- end }}
{{- range include "portfolio-operator.kinds" . | fromYamlArray }}
{{- if .extra }}
- --allow-kind
- {{ printf "%s/%s/%s" .apiVersion .kind .plural }}
{{- end }}
{{- end }}
{{- $limits := .Values.pluginLimits }}
{{- range list
  (list "--leader-elect-lease-seconds" $election.leaseSeconds)
  (list "--leader-elect-grace-seconds" $election.graceSeconds)
  (list "--plugin-timeout-ms" $limits.timeoutMs)
  (list "--plugin-memory-mib" $limits.memoryMiB)
  (list "--plugin-max-memory-mib" $limits.maxMemoryMiB)
  (list "--plugin-max-output-kib" $limits.maxOutputKiB)
  (list "--plugin-max-objects" $limits.maxObjects)
  (list "--plugin-stack-kib" $limits.stackKiB)
  (list "--plugin-max-stack-kib" $limits.maxStackKiB)
  (list "--worker-threads" .Values.workerThreads) }}
{{- if not (kindIs "invalid" (index . 1)) }}
- {{ index . 0 }}
- {{ index . 1 | int64 | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
