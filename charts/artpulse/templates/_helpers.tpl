{{/*
Names and labels shared by the templates.
*/}}

{{/* Every object's name: "<release>-operator" (artpulse-operator for the release artpulse). */}}
{{- define "artpulse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The roles for people: "<prefix>-view" etc., artpulse-view for the release artpulse. */}}
{{- define "artpulse.userRolePrefix" -}}
{{- include "artpulse.fullname" . | trimSuffix "-operator" -}}
{{- end -}}

{{- define "artpulse.peeringName" -}}
{{- .Values.peering.name | default (include "artpulse.fullname" .) -}}
{{- end -}}

{{/* Kopf peering: with more than one replica always, with one when asked. */}}
{{- define "artpulse.peering" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.peering.enabled -}}true{{- end -}}
{{- end -}}

{{- define "artpulse.namespaced" -}}
{{- if eq .Values.rbac.scope "namespace" -}}true{{- end -}}
{{- end -}}

{{- define "artpulse.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "artpulse.credentialsSecret" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" (include "artpulse.fullname" .)) -}}
{{- end -}}

{{/*
The pods' identity. app.kubernetes.io/name stays artpulse-operator whatever the release: the
Prometheus scrape configuration, the alerts (job="artpulse-operator"), MLflow's NetworkPolicy and
the NetworkPolicies the operator renders for each model select the operator by it.
*/}}
{{- define "artpulse.selectorLabels" -}}
app.kubernetes.io/name: artpulse-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "artpulse.labels" -}}
{{ include "artpulse.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: artpulse
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of objects that are not the operator's own (dashboards, Argo CD scripts, user roles). */}}
{{- define "artpulse.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: artpulse
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
