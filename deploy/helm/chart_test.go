// Package helm tests the Helm chart in tollgate/: Helm's own lint, then
// the rendered manifests decoded strictly into the Kubernetes API types
// (an unknown or duplicate field fails, as a kind no scheme knows), then
// what the release must do: probes, secrets, hooks, the PDB, the bundle
// volume the hot reload follows.
package helm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chartDir  = "tollgate"
	release   = "tollgate"
	namespace = "gate"
	fullname  = "tollgate" // the release name contains the chart's
	// kubeVersion is the cluster the chart is rendered and linted for
	// (Helm's test builds default to an old one); the chart needs 1.25.
	kubeVersion = "v1.31.0"
)

// capabilities is what `helm install` learns from a kubeVersion cluster.
func capabilities(t *testing.T, version string) *common.Capabilities {
	t.Helper()
	kv, err := common.ParseKubeVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	return caps
}

// required are the values every install must give (README: Kubernetes
// (Helm)): the database and the licence, from Secrets the operator made.
var required = map[string]any{
	"database": map[string]any{"existingSecret": "tollgate-database"},
	"licence":  map[string]any{"existingSecret": "tollgate-licence"},
}

// decoder decodes strictly into the built-in API types and the
// Prometheus Operator's.
var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// manifests is one rendering: the objects by kind/name, and the notes.
type manifests struct {
	objects map[string]runtime.Object
	notes   string
}

func (m manifests) kinds() []string {
	var names []string
	for k := range m.objects {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func get[T runtime.Object](t *testing.T, m manifests, kind, name string) T {
	t.Helper()
	obj, ok := m.objects[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s/%s rendered; have %v", kind, name, m.kinds())
	}
	typed, ok := obj.(T)
	if !ok {
		t.Fatalf("%s/%s decoded as %T", kind, name, obj)
	}
	return typed
}

// valuesFile reads a values file of the chart.
func valuesFile(t *testing.T, name string) map[string]any {
	t.Helper()
	v, err := common.ReadValuesFile(filepath.Join(chartDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// lintChart runs Helm's lint (Chart.yaml, values, templates rendered with
// these values, against the default Kubernetes version) and fails on any
// warning or error.
func lintChart(t *testing.T, values map[string]any) {
	t.Helper()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	result := lint.RunAll(chartDir, values, namespace, lint.WithKubeVersion(kv))
	for _, m := range result.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %v", m)
		}
	}
}

// render renders the chart as `helm install` would for these values and
// decodes every manifest strictly.
func render(t *testing.T, values map[string]any) manifests {
	t.Helper()
	out, err := renderRaw(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	m := manifests{objects: map[string]runtime.Object{}}
	for file, text := range out {
		if strings.HasSuffix(file, "NOTES.txt") {
			m.notes = text
			continue
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
		for {
			doc, err := reader.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: not a valid Kubernetes object: %v\n%s", file, err, doc)
			}
			name := obj.(interface{ GetName() string }).GetName()
			key := gvk.Kind + "/" + name
			if _, dup := m.objects[key]; dup {
				t.Fatalf("%s rendered twice", key)
			}
			m.objects[key] = obj
		}
	}
	return m
}

func renderRaw(t *testing.T, values map[string]any) (map[string]string, error) {
	t.Helper()
	return renderFor(t, values, kubeVersion)
}

func renderFor(t *testing.T, values map[string]any, version string) (map[string]string, error) {
	t.Helper()
	return renderRelease(t, values, version, release)
}

func renderRelease(t *testing.T, values map[string]any, version, name string) (map[string]string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	opts := common.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}
	rv, err := util.ToRenderValues(chrt, values, opts, capabilities(t, version))
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, rv)
}

// merge returns a deep merge of maps, later ones winning.
func merge(maps ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range maps {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				if have, ok := out[k].(map[string]any); ok {
					out[k] = merge(have, sub)
					continue
				}
				out[k] = merge(sub)
				continue
			}
			out[k] = v
		}
	}
	return out
}

// TestStrictDecoderRefusesUnknownFields proves the decoding below strict:
// a misspelt field is an error, not dropped.
func TestStrictDecoderRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: x}\n",
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
}

// TestChartRefusesToRenderWithoutDatabaseOrLicence: the default values
// alone name no database and no licence, and the chart fails, saying
// which value to set, rather than render pods that cannot work.
func TestChartRefusesToRenderWithoutDatabaseOrLicence(t *testing.T) {
	// helm lint on the bare chart: its lint mode ignores fail, and what
	// it renders then must still be clean.
	lintChart(t, nil)
	for name, values := range map[string]map[string]any{
		"database": {"licence": required["licence"]},
		"licence":  {"database": required["database"]},
	} {
		_, err := renderRaw(t, values)
		if err == nil || !strings.Contains(err.Error(), "set "+name+".existingSecret") {
			t.Errorf("without %s: %v, want a failure naming %s.existingSecret", name, err, name)
		}
	}
}

// TestChartDefaults: values.yaml with only the required secrets.
func TestChartDefaults(t *testing.T) {
	lintChart(t, required)
	m := render(t, required)
	want := []string{
		"ConfigMap/" + fullname + "-bundle", "Deployment/" + fullname, "Job/" + fullname + "-migrate",
		"NetworkPolicy/" + fullname, "PodDisruptionBudget/" + fullname, "Service/" + fullname,
		"ServiceAccount/" + fullname,
	}
	if got := m.kinds(); !slices.Equal(got, want) {
		t.Fatalf("rendered %v, want %v (no ServiceMonitor by default, no Secret with existing ones)", got, want)
	}
	d := get[*appsv1.Deployment](t, m, "Deployment", fullname)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	checkServer(t, m, d, "tollgate-database", "tollgate-licence", "http")
	checkMigration(t, m, "tollgate-database")
	checkPDB(t, m, d)
	checkNetworkPolicy(t, m)
	checkBundleConfigMap(t, m, d)
	for _, want := range []string{"token\",\"create\",\"--name\",\"admin\"", `"name":"tollgate-database","key":"url"`, "rollout restart deployment/" + fullname} {
		if !strings.Contains(m.notes, want) {
			t.Errorf("NOTES.txt does not say %s:\n%s", want, m.notes)
		}
	}
}

// TestChartProduction: ci/production-values.yaml.
func TestChartProduction(t *testing.T) {
	values := valuesFile(t, "ci/production-values.yaml")
	lintChart(t, values)
	m := render(t, values)
	d := get[*appsv1.Deployment](t, m, "Deployment", fullname)
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", *d.Spec.Replicas)
	}
	c := checkServer(t, m, d, "tollgate-database", "tollgate-licence", "https")
	checkMigration(t, m, "tollgate-database")
	checkPDB(t, m, d)
	checkNetworkPolicy(t, m)
	for _, flag := range []string{
		"--ledger-signing-key=/etc/tollgate/ledger/ledger-private.pem",
		"--attestation-signing-key=/etc/tollgate/attestation/attestation-private.pem",
		"--bundle-verification-key=/etc/tollgate/bundle-verification/bundle-public.pem",
		"--tls-cert=/etc/tollgate/tls/tls.crt", "--tls-key=/etc/tollgate/tls/tls.key",
		"--rate-limit=100/s", "--reload-min-coverage=90",
	} {
		if !slices.Contains(c.Args, flag) {
			t.Errorf("serve has no %s: %v", flag, c.Args)
		}
	}
	secrets := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	for volume, secret := range map[string]string{
		"licence": "tollgate-licence", "ledger-signing-key": "tollgate-ledger-key",
		"attestation-signing-key": "tollgate-attestation-key", "bundle-verification-key": "tollgate-bundle-key",
		"tls": "tollgate-tls",
	} {
		if secrets[volume] != secret {
			t.Errorf("volume %s: Secret %q, want %q", volume, secrets[volume], secret)
		}
	}
	bundle := volume(t, d, "bundle")
	if bundle.ConfigMap == nil || bundle.ConfigMap.Name != "policy-bundle" || len(bundle.ConfigMap.Items) != 4 ||
		bundle.ConfigMap.Items[2].Path != "config/projects/data.json" {
		t.Errorf("bundle volume %+v, want the existing ConfigMap policy-bundle with its four items", bundle)
	}
	if _, ok := m.objects["ConfigMap/"+fullname+"-bundle"]; ok {
		t.Error("the chart's bundle ConfigMap is rendered beside an existing one")
	}
	sm := get[*monitoringv1.ServiceMonitor](t, m, "ServiceMonitor", fullname)
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Port != "http" ||
		sm.Spec.Endpoints[0].Scheme == nil || sm.Spec.Endpoints[0].Scheme.String() != "https" || sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor endpoints %+v labels %v", sm.Spec.Endpoints, sm.Labels)
	}
	if !selects(sm.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("the ServiceMonitor selects %v, not the server's pods %v", sm.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if c.Resources.Limits.Memory().String() != "384Mi" {
		t.Errorf("memory limit %v", c.Resources.Limits.Memory())
	}
}

// TestChartInlineSecrets: the database URL and the licence given as
// values; the chart makes the Secrets, the database one a hook made before
// the migration Job that reads it.
func TestChartInlineSecrets(t *testing.T) {
	values := map[string]any{
		"database": map[string]any{"url": "postgres://tollgate@db:5432/tollgate"},
		"licence":  map[string]any{"licence": "eyJhbGciOiJSUzI1NiJ9.e30.sig", "publicKey": "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"},
	}
	lintChart(t, values)
	m := render(t, values)
	d := get[*appsv1.Deployment](t, m, "Deployment", fullname)
	checkServer(t, m, d, fullname+"-database", fullname+"-licence", "http")
	db := get[*corev1.Secret](t, m, "Secret", fullname+"-database")
	if db.StringData["url"] != "postgres://tollgate@db:5432/tollgate" {
		t.Errorf("database Secret %v", db.StringData)
	}
	job := checkMigration(t, m, fullname+"-database")
	if db.Annotations["helm.sh/hook"] != job.Annotations["helm.sh/hook"] || db.Annotations["helm.sh/hook-weight"] != "-10" {
		t.Errorf("the database Secret is not a hook made before the Job: %v", db.Annotations)
	}
	lic := get[*corev1.Secret](t, m, "Secret", fullname+"-licence")
	if lic.StringData["licence.jwt"] == "" || lic.StringData["license-public.pem"] == "" {
		t.Errorf("licence Secret %v", lic.StringData)
	}
	if d.Spec.Template.Annotations["checksum/licence"] == "" {
		t.Error("a licence from values does not restart the pods when it changes (it is read at start)")
	}
}

// checkServer checks the server's pod and returns its container.
func checkServer(t *testing.T, m manifests, d *appsv1.Deployment, databaseSecret, licenceSecret, scheme string) corev1.Container {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("args %v, want serve first", c.Args)
	}
	for _, flag := range []string{"--bundle=/etc/tollgate/bundle", "--license=/etc/tollgate/licence/licence.jwt", "--license-key=/etc/tollgate/licence/license-public.pem", "--addr=:8181"} {
		if !slices.Contains(c.Args, flag) {
			t.Errorf("serve has no %s: %v", flag, c.Args)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--dev") || strings.HasPrefix(a, "--database-url") {
			t.Errorf("serve has %s: authentication off, or the URL in the pod spec", a)
		}
	}
	checkDatabaseEnv(t, c, databaseSecret)
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	for name, path := range map[string]string{"liveness": "/healthz", "readiness": "/readyz", "startup": "/healthz"} {
		p := probes[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" || strings.ToLower(string(p.HTTPGet.Scheme)) != scheme {
			t.Errorf("%s probe %+v, want GET %s on port http over %s", name, p, path, scheme)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8181 {
		t.Errorf("ports %+v", c.Ports)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want memory request and limit and a CPU request", c.Resources)
	}
	checkSecurity(t, pod, c)
	if lic := volume(t, d, "licence"); lic.Secret == nil || lic.Secret.SecretName != licenceSecret {
		t.Errorf("licence volume %+v, want Secret %s", lic, licenceSecret)
	}
	for _, mount := range c.VolumeMounts {
		if mount.SubPath != "" {
			t.Errorf("%s mounted with subPath: the kubelet never updates it", mount.Name)
		}
		if mount.Name != "tmp" && !mount.ReadOnly {
			t.Errorf("%s mounted writable", mount.Name)
		}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; tollgate never calls the API")
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 5 {
		t.Errorf("lifecycle %+v: want a preStop sleep of 5 s before SIGTERM", c.Lifecycle)
	}
	if grace := *pod.TerminationGracePeriodSeconds; grace < 5+30 {
		t.Errorf("terminationGracePeriodSeconds %d: below the preStop sleep plus the shutdown timeout", grace)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil ||
		len(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		!selects(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("affinity %+v: want replicas spread over nodes", pod.Affinity)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v: want maxUnavailable 0", d.Spec.Strategy.RollingUpdate)
	}
	svc := get[*corev1.Service](t, m, "Service", fullname)
	if !selects(svc.Spec.Selector, d.Spec.Template.Labels) || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service %+v does not reach the server's port http", svc.Spec)
	}
	return c
}

// checkSecurity: non-root 65532, read-only root, no capability, seccomp.
func checkSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps, cs := pod.SecurityContext, c.SecurityContext
	if ps == nil || cs == nil {
		t.Fatalf("no security context: pod %v container %v", ps, cs)
	}
	if ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 ||
		ps.RunAsGroup == nil || *ps.RunAsGroup != 65532 {
		t.Errorf("pod security context %+v: want non-root 65532", ps)
	}
	if ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp %+v, want RuntimeDefault", ps.SeccompProfile)
	}
	if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 {
		t.Errorf("%s security context %+v: want a read-only root, no escalation, every capability dropped", c.Name, cs)
	}
}

func checkDatabaseEnv(t *testing.T, c corev1.Container, secret string) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "TOLLGATE_DATABASE_URL" {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
				e.ValueFrom.SecretKeyRef.Name != secret || e.ValueFrom.SecretKeyRef.Key != "url" {
				t.Errorf("%s: TOLLGATE_DATABASE_URL %+v, want Secret %s key url", c.Name, e, secret)
			}
			return
		}
	}
	t.Errorf("%s has no TOLLGATE_DATABASE_URL", c.Name)
}

// checkMigration: `tollgate migrate` as a pre-install/pre-upgrade hook.
func checkMigration(t *testing.T, m manifests, databaseSecret string) *batchv1.Job {
	t.Helper()
	job := get[*batchv1.Job](t, m, "Job", fullname+"-migrate")
	a := job.Annotations
	if a["helm.sh/hook"] != "pre-install,pre-upgrade" || !strings.Contains(a["helm.sh/hook-delete-policy"], "before-hook-creation") {
		t.Errorf("migration Job annotations %v: want a pre-install,pre-upgrade hook, replaced at each run", a)
	}
	pod := job.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || len(pod.Containers) != 1 {
		t.Fatalf("migration pod %+v", pod)
	}
	c := pod.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate"}) {
		t.Errorf("migration args %v, want [migrate]", c.Args)
	}
	checkDatabaseEnv(t, c, databaseSecret)
	checkSecurity(t, pod, c)
	if job.Spec.Template.Labels["app.kubernetes.io/component"] != "migration" {
		t.Errorf("migration pod labels %v", job.Spec.Template.Labels)
	}
	svc := get[*corev1.Service](t, m, "Service", fullname)
	if selects(svc.Spec.Selector, job.Spec.Template.Labels) {
		t.Error("the Service sends traffic to the migration pod")
	}
	return job
}

func checkPDB(t *testing.T, m manifests, d *appsv1.Deployment) {
	t.Helper()
	pdb := get[*policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", fullname)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB %+v, want maxUnavailable 1", pdb.Spec)
	}
	if !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("the PDB selects %v, not the server's pods %v", pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
}

func checkNetworkPolicy(t *testing.T, m manifests) {
	t.Helper()
	np := get[*networkingv1.NetworkPolicy](t, m, "NetworkPolicy", fullname)
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) {
		t.Errorf("policy types %v", np.Spec.PolicyTypes)
	}
	d := get[*appsv1.Deployment](t, m, "Deployment", fullname)
	job := get[*batchv1.Job](t, m, "Job", fullname+"-migrate")
	if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) || !selects(np.Spec.PodSelector.MatchLabels, job.Spec.Template.Labels) {
		t.Errorf("the NetworkPolicy selects %v: want the server and the migration", np.Spec.PodSelector.MatchLabels)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "http" {
		t.Errorf("ingress %+v, want the API port only", np.Spec.Ingress)
	}
	var egress []string
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			egress = append(egress, string(*p.Protocol)+"/"+p.Port.String())
		}
	}
	if !slices.Equal(egress, []string{"UDP/53", "TCP/53", "TCP/5432"}) {
		t.Errorf("egress %v, want DNS and PostgreSQL only", egress)
	}
}

// checkBundleConfigMap: every file of bundles/tollgate is in the chart's
// ConfigMap, and the volume's items put each back at its path.
func checkBundleConfigMap(t *testing.T, m manifests, d *appsv1.Deployment) {
	t.Helper()
	cm := get[*corev1.ConfigMap](t, m, "ConfigMap", fullname+"-bundle")
	v := volume(t, d, "bundle")
	if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Fatalf("bundle volume %+v, want ConfigMap %s", v, cm.Name)
	}
	paths := map[string]string{}
	for _, item := range v.ConfigMap.Items {
		paths[item.Path] = item.Key
	}
	root := filepath.Join("..", "..", "bundles", "tollgate")
	n := 0
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		key, ok := paths[filepath.ToSlash(rel)]
		if !ok {
			t.Errorf("%s is not in the bundle volume", rel)
		} else if cm.Data[key] != string(want) {
			t.Errorf("%s: the ConfigMap's %s differs from the file", rel, key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 || len(paths) != n || len(cm.Data) != n {
		t.Errorf("bundles/tollgate has %d files, the volume %d items, the ConfigMap %d keys", n, len(paths), len(cm.Data))
	}
}

func volume(t *testing.T, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

// selects reports whether a selector's labels are all on a pod.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestChartRefusesUnknownValues: values.schema.json makes a misspelt value
// an error at install, not a setting silently ignored.
func TestChartRefusesUnknownValues(t *testing.T) {
	for name, extra := range map[string]map[string]any{
		"replicas":                {"replicas": 3},
		"database.existingsecret": {"database": map[string]any{"existingsecret": "x"}},
		"networkPolicy.enable":    {"networkPolicy": map[string]any{"enable": false}},
		"replicaCount":            {"replicaCount": "three"},
		"shutdownTimeout":         {"shutdownTimeout": "30"},
	} {
		_, err := renderRaw(t, merge(required, extra))
		if err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: %v, want a schema error", name, err)
		}
	}
}

// tollgateFlags builds the tollgate binary of this checkout (the module
// one directory up) and lists the flags of a subcommand from its -h, with
// the environment variables they read.
func tollgateFlags(t *testing.T, bin string, sub ...string) (flags map[string]bool, help string) {
	t.Helper()
	out, err := exec.Command(bin, append(sub, "-h")...).CombinedOutput()
	if err != nil {
		t.Fatalf("tollgate %v -h: %v\n%s", sub, err, out)
	}
	flags = map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("tollgate %v -h lists no flags:\n%s", sub, out)
	}
	return flags, string(out)
}

// checkFlags fails on an argument that is not one of the flags.
func checkFlags(t *testing.T, what string, args []string, flags map[string]bool) {
	t.Helper()
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !flags[name] {
			t.Errorf("%s: %s is not a flag of tollgate (a pod would not start)", what, a)
		}
	}
}

// TestChartRunsRealCommands: the commands the chart runs (serve, migrate,
// the token bootstrap of NOTES.txt) and their flags and variables are
// those of the tollgate binary built from this checkout.
func TestChartRunsRealCommands(t *testing.T) {
	bin := tollgateBinary(t)
	serve, serveHelp := tollgateFlags(t, bin, "serve")
	migrate, migrateHelp := tollgateFlags(t, bin, "migrate")
	token, tokenHelp := tollgateFlags(t, bin, "token", "create")
	for _, help := range []string{serveHelp, migrateHelp, tokenHelp} {
		if !strings.Contains(help, "[TOLLGATE_DATABASE_URL]") {
			t.Errorf("TOLLGATE_DATABASE_URL is not read:\n%s", help)
		}
	}
	for name, values := range map[string]map[string]any{
		"default":    required,
		"production": valuesFile(t, "ci/production-values.yaml"),
	} {
		m := render(t, values)
		c := get[*appsv1.Deployment](t, m, "Deployment", fullname).Spec.Template.Spec.Containers[0]
		checkFlags(t, name+" serve", c.Args[1:], serve)
		job := get[*batchv1.Job](t, m, "Job", fullname+"-migrate").Spec.Template.Spec.Containers[0]
		checkFlags(t, name+" migrate", job.Args[1:], migrate)
		args := regexp.MustCompile(`"args":\["token","create",([^\]]*)\]`).FindStringSubmatch(m.notes)
		if args == nil {
			t.Fatalf("%s: NOTES.txt runs no token create:\n%s", name, m.notes)
		}
		checkFlags(t, name+" token create", strings.Split(strings.ReplaceAll(args[1], `"`, ""), ","), token)
	}
}

// TestChartBeforeKubernetes130: the preStop sleep action came with
// Kubernetes 1.30; the chart leaves it out on older clusters (1.25–1.29).
func TestChartBeforeKubernetes130(t *testing.T) {
	out, err := renderFor(t, required, "v1.29.4")
	if err != nil {
		t.Fatal(err)
	}
	for file, text := range out {
		if strings.Contains(text, "preStop") {
			t.Errorf("%s has a preStop sleep for Kubernetes 1.29", file)
		}
	}
}

// TestChartTokenBootstrap: the command NOTES.txt prints for the first
// admin token makes a valid pod (its --overrides decoded strictly) that
// passes the same security checks, and it is the command the README shows
// for the README's install.
func TestChartTokenBootstrap(t *testing.T) {
	values := merge(required, map[string]any{
		"image": map[string]any{"repository": "registry.example.com/tollgate", "tag": "0.1.0"},
	})
	m := render(t, values)
	overrides := regexp.MustCompile(`--overrides='([^']*)'`).FindStringSubmatch(m.notes)
	if overrides == nil {
		t.Fatalf("NOTES.txt has no --overrides:\n%s", m.notes)
	}
	var pod corev1.Pod
	if err := sigsyaml.UnmarshalStrict([]byte(overrides[1]), &pod); err != nil {
		t.Fatalf("--overrides is not a pod: %v\n%s", err, overrides[1])
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.Name != fullname+"-admin-token" || c.Image != "registry.example.com/tollgate:0.1.0" {
		t.Errorf("container %s image %s: kubectl run merges by the pod's name, and the image must be the release's", c.Name, c.Image)
	}
	if !strings.Contains(m.notes, "run "+c.Name+" ") {
		t.Errorf("the pod is not named as its container:\n%s", m.notes)
	}
	checkDatabaseEnv(t, c, "tollgate-database")
	checkSecurity(t, pod.Spec, c)

	// The README's command is this one, namespace aside.
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	command := regexp.MustCompile(`(?s)kubectl --namespace \S+ (run .*?'\n)`).FindStringSubmatch(m.notes)
	if command == nil {
		t.Fatalf("NOTES.txt has no kubectl run:\n%s", m.notes)
	}
	want := strings.Join(strings.Fields(command[1]), " ")
	if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), want) {
		t.Errorf("README.md does not show the command NOTES.txt prints:\n%s", want)
	}
}

var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// tollgateBinary builds the tollgate binary of this checkout (the module
// two directories up) once for the tests.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "tollgate-chart-test-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "tollgate")
		build := exec.Command("go", "build", "-o", built.path, "./cmd/tollgate")
		build.Dir = filepath.Join("..", "..")
		built.out, built.err = build.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}

// TestChartBundleProjectsTheBundle: the chart's bundle ConfigMap, projected
// by its volume's items as the kubelet does (a timestamped directory,
// ..data, a top-level symlink per entry), is the bundle of this checkout
// to tollgate: its tests pass and it has the same revision.
func TestChartBundleProjectsTheBundle(t *testing.T) {
	bin := tollgateBinary(t)
	m := render(t, required)
	cm := get[*corev1.ConfigMap](t, m, "ConfigMap", fullname+"-bundle")
	items := volume(t, get[*appsv1.Deployment](t, m, "Deployment", fullname), "bundle").ConfigMap.Items
	mount := filepath.Join(t.TempDir(), "bundle")
	ts := filepath.Join(mount, "..2026_12_03_18_00_00.123456789")
	top := map[string]bool{}
	for _, item := range items {
		data, ok := cm.Data[item.Key]
		if !ok {
			t.Fatalf("item %s: no such key in the ConfigMap", item.Key)
		}
		path := filepath.Join(ts, filepath.FromSlash(item.Path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		top[strings.Split(item.Path, "/")[0]] = true
	}
	links := [][2]string{{filepath.Base(ts), "..data"}}
	for name := range top {
		links = append(links, [2]string{filepath.Join("..data", name), name})
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(mount, l[1])); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(bin, args...).Output()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &exit):
			return exit.ExitCode(), string(out)
		}
		t.Fatalf("tollgate %v: %v", args, err)
		return 0, ""
	}
	if code, out := run("test", mount); code != 0 {
		t.Fatalf("tollgate test on the projected bundle: exit %d\n%s", code, out)
	}
	keys := t.TempDir()
	if code, out := run("license", "keygen", "--out", keys); code != 0 {
		t.Fatalf("license keygen: exit %d %s", code, out)
	}
	code, jwt := run("license", "issue", "--key", filepath.Join(keys, "license-private.pem"), "--subject", "chart test", "--valid-for", "1h")
	if code != 0 {
		t.Fatalf("license issue: exit %d", code)
	}
	licence := filepath.Join(keys, "licence.jwt")
	if err := os.WriteFile(licence, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	revision := func(bundle string) string {
		t.Helper()
		code, out := run("eval", "--bundle", bundle, "--license", licence, "--license-key", filepath.Join(keys, "license-public.pem"),
			"--input", filepath.Join("..", "..", "examples", "request.json"))
		var d struct {
			Revision string `json:"bundle_revision"`
		}
		if code > 1 || json.Unmarshal([]byte(out), &d) != nil || d.Revision == "" {
			t.Fatalf("tollgate eval --bundle %s: exit %d\n%s", bundle, code, out)
		}
		return d.Revision
	}
	if got, want := revision(mount), revision(filepath.Join("..", "..", "bundles", "tollgate")); got != want {
		t.Errorf("the projected bundle is revision %s, bundles/tollgate %s", got, want)
	}
}

// TestChartRefusesABundleAConfigMapCannotHold: a file name that is not a
// ConfigMap key, two paths that would share a key, or a bundle over 1 MiB
// fail the render with what to do, rather than a release the API server
// refuses half-way.
func TestChartRefusesABundleAConfigMapCannotHold(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string][]byte
		want  string
	}{
		"bad name":   {map[string][]byte{"bundle/my policy.rego": []byte("package x\n")}, "cannot be a ConfigMap key"},
		"shared key": {map[string][]byte{"bundle/config__projects__data.json": []byte("{}")}, "would share the ConfigMap key"},
		"too big":    {map[string][]byte{"bundle/big.json": bytes.Repeat([]byte("x"), 1<<20)}, "over a ConfigMap's 1 MiB"},
	} {
		chrt, err := loader.Load(chartDir)
		if err != nil {
			t.Fatal(err)
		}
		for path, data := range c.files {
			chrt.Files = append(chrt.Files, &common.File{Name: path, Data: data})
		}
		opts := common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
		rv, err := util.ToRenderValues(chrt, required, opts, capabilities(t, kubeVersion))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.Render(chrt, rv); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
}

// TestChartLongReleaseName: with the longest release name Helm accepts
// (53 characters), every name stays a valid label value (63 at most),
// the suffixed ones too.
func TestChartLongReleaseName(t *testing.T) {
	name := strings.Repeat("r", 53)
	values := merge(map[string]any{
		"database": map[string]any{"url": "postgres://db/tollgate"},
		"licence":  map[string]any{"licence": "x", "publicKey": "y"},
	}, map[string]any{"serviceMonitor": map[string]any{"enabled": true}})
	out, err := renderRelease(t, values, kubeVersion, name)
	if err != nil {
		t.Fatal(err)
	}
	names := 0
	for file, text := range out {
		if strings.HasSuffix(file, "NOTES.txt") {
			token := regexp.MustCompile(`run (\S+) --rm`).FindStringSubmatch(text)
			if token == nil || len(token[1]) > 63 {
				t.Errorf("the token pod's name %v: over 63 characters", token)
			}
			continue
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
		for {
			doc, err := reader.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			n := obj.(interface{ GetName() string }).GetName()
			names++
			if len(n) > 63 || strings.HasSuffix(n, "-") || !strings.HasPrefix(n, "rrrr") {
				t.Errorf("%s: name %q (%d characters)", file, n, len(n))
			}
		}
	}
	if names < 10 {
		t.Errorf("only %d objects rendered", names)
	}
}
