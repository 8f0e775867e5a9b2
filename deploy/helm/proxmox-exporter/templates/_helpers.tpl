{{- define "proxmox-exporter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "proxmox-exporter.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "proxmox-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "proxmox-exporter.secretName" -}}
{{- default (include "proxmox-exporter.fullname" .) .Values.proxmox.existingSecret -}}
{{- end -}}

{{- define "proxmox-exporter.modulesSecretName" -}}
{{- default (printf "%s-modules" (include "proxmox-exporter.fullname" .)) .Values.modules.existingSecret -}}
{{- end -}}

{{- define "proxmox-exporter.hasModules" -}}
{{- if or .Values.modules.existingSecret .Values.modules.config }}true{{ end -}}
{{- end -}}
