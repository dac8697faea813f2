{{/* The chart's name, and the release's full name (63 characters at most). */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.fullname" -}}
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

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Every pod of the release: the server's and the migration's. */}}
{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server's pods only: what the Service and the PDB select. */}}
{{- define "tollgate.serverSelectorLabels" -}}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tollgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the database URL: the user's, or the chart's. */}}
{{- define "tollgate.databaseSecret" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.database.url }}
{{- include "tollgate.suffixed" (list . "database") }}
{{- else }}
{{- fail "tollgate needs PostgreSQL: set database.existingSecret (a Secret with the URL under database.secretKey) or database.url" }}
{{- end }}
{{- end }}

{{- define "tollgate.licenceSecret" -}}
{{- if .Values.licence.existingSecret }}
{{- .Values.licence.existingSecret }}
{{- else if and .Values.licence.licence .Values.licence.publicKey }}
{{- include "tollgate.suffixed" (list . "licence") }}
{{- else }}
{{- fail "tollgate needs its licence: set licence.existingSecret (a Secret with the licence and its public key) or both licence.licence and licence.publicKey" }}
{{- end }}
{{- end }}

{{/* The database URL as TOLLGATE_DATABASE_URL, for serve and migrate. */}}
{{- define "tollgate.databaseEnv" -}}
- name: TOLLGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.databaseSecret" . }}
      key: {{ .Values.database.secretKey }}
{{- end }}

{{/* http or https, for the probes and the ServiceMonitor. */}}
{{- define "tollgate.scheme" -}}
{{- if .Values.tls.existingSecret }}https{{ else }}http{{ end }}
{{- end }}

{{/*
The ConfigMap key of a bundle path: keys cannot hold "/", so "/" becomes
"__"; the volume's items put each key back at its path.
*/}}
{{- define "tollgate.bundleKey" -}}
{{- . | replace "/" "__" }}
{{- end }}

{{/*
The full name with a suffix, 63 characters at most (a Job's name becomes
a label value, a container's a DNS label): (list . "migrate").
*/}}
{{- define "tollgate.suffixed" -}}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "tollgate.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}
