package test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bundleKey is a bundle signing key pair written as PEM files.
type bundleKey struct{ private, public string }

var (
	signingKey = sync.OnceValue(func() bundleKey { return writeBundleKey("signing") })
	foreignKey = sync.OnceValue(func() bundleKey { return writeBundleKey("foreign") })
)

// writeBundleKey makes an RSA key pair in the run's temporary directory
// (beside the binary, removed at exit).
func writeBundleKey(name string) bundleKey {
	dir := filepath.Join(filepath.Dir(binPath), name+"-bundle-key")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		panic(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	priv, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	k := bundleKey{private: filepath.Join(dir, "bundle-private.pem"), public: filepath.Join(dir, "bundle-public.pem")}
	if err := os.WriteFile(k.private, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		panic(err)
	}
	if err := os.WriteFile(k.public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		panic(err)
	}
	return k
}

// signBundle signs dir with `tollgate bundle sign`.
func signBundle(t *testing.T, dir, privateKey string) {
	t.Helper()
	code, stdout, stderr := runTollgate(t, nil, nil, "bundle", "sign", "--signing-key", privateKey, dir)
	if code != 0 || !strings.Contains(stdout, "signed ") {
		t.Fatalf("tollgate bundle sign: exit %d\n%s%s", code, stdout, stderr)
	}
}

// signedBundle is a fresh test bundle signed with signingKey.
func signedBundle(t *testing.T) string {
	t.Helper()
	dir := newBundle(t)
	signBundle(t, dir, signingKey().private)
	return dir
}

func verifyArgs() []string {
	return []string{"--bundle-verification-key", signingKey().public}
}

// Every tampered bundle stops serve at startup with a message that says
// what is wrong, before it listens.
func TestTamperedBundleRefusedAtStartup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"unsigned", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ".signatures.json")) },
			"is not signed: no .signatures.json (sign it with `tollgate bundle sign"},
		{"changed file", func(t *testing.T, dir string) {
			saveFile(t, filepath.Join(dir, "global.rego"), append(readFile(t, filepath.Join(dir, "global.rego")), "\n# changed\n"...))
		}, "global.rego: digest mismatch"},
		{"extra unsigned file", func(t *testing.T, dir string) {
			saveFile(t, filepath.Join(dir, "projects", "backdoor.rego"), []byte("package tollgate.projects.backdoor\n"))
		}, "file projects/backdoor.rego not included in bundle signature"},
		{"signed file removed", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "projects", "payments.rego")) },
			"specified in bundle signatures but not found"},
		{"wrong key", func(t *testing.T, dir string) { signBundle(t, dir, foreignKey().private) },
			"failed to verify JWT signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := signedBundle(t)
			c.tamper(t, dir)
			code, _, stderr := runTollgate(t, nil, nil, append([]string{"serve", "--addr", "127.0.0.1:0",
				"--license", validLicence, "--license-key", publicKey, "--bundle", dir, "--data-dir", t.TempDir()},
				verifyArgs()...)...)
			if code != 2 || !strings.Contains(stderr, "no valid bundle to serve") || !strings.Contains(stderr, c.want) {
				t.Fatalf("serve: exit %d, want 2 with %q; stderr:\n%s", code, c.want, stderr)
			}
			if strings.Contains(stderr, "tollgate serving") {
				t.Error("serve listened with a tampered bundle")
			}
		})
	}
	// The same bundle unsigned still serves without a verification key:
	// signatures are opt-in, and serve says loudly that they are off.
	s := startServer(t, serverOptions{})
	if !strings.Contains(s.stderr.String(), "bundle signatures are not checked") {
		t.Error("serve without --bundle-verification-key does not warn that signatures are off")
	}
	s.stop(t)
}

// A signed server takes signed changes and refuses every unsigned or
// tampered candidate, keeping the active bundle, with the error in
// /v1/bundles, the log and the metrics.
func TestTamperedBundleRefusedOnReload(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{bundle: signedBundle(t), args: append(verifyArgs(), "--reload-debounce", "200ms")})
	if !strings.Contains(s.stderr.String(), "bundle signatures required") {
		t.Error("serve does not log that signatures are required")
	}
	r := req("org/service-api", "main", "deploy-staging", envStaging)
	if d := s.evaluate(t, r); d.Status != "accepted" {
		t.Fatalf("signed bundle: %s %v, want accepted", d.Status, d.codes())
	}
	projects := projectsPath(s.bundle)
	original := readFile(t, projects)
	noMain := []byte(strings.Replace(string(original), `"main",`, "", 1))
	if string(noMain) == string(original) {
		t.Fatal(`no "main", in the projects to remove`)
	}

	// Waits for the error, not for a count of failures: one step may make
	// several candidates (a file saved, then the signature).
	rejected := func(t *testing.T, what, want string) {
		t.Helper()
		before := s.bundleStatus(t)
		var st bundleStatus
		eventually(t, reloadWithin, what+" is rejected", func() bool {
			st = s.bundleStatus(t)
			return strings.Contains(st.LastError, want)
		})
		if st.Revision != before.Revision || st.Failures <= before.Failures {
			t.Fatalf("%s: /v1/bundles %+v, want revision %s kept and more failures than %d", what, st, before.Revision, before.Failures)
		}
		if d := s.evaluate(t, r); d.BundleRevision != before.Revision {
			t.Fatalf("%s: decided by %s, want the active %s", what, d.BundleRevision, before.Revision)
		}
		if m := s.metrics(t); m["tollgate_bundle_last_reload_successful"] != 0 || m[`tollgate_bundle_reloads_total{result="failed"}`] < float64(st.Failures) {
			t.Errorf("%s: metrics last successful %v, failed %v", what, m["tollgate_bundle_last_reload_successful"], m[`tollgate_bundle_reloads_total{result="failed"}`])
		}
	}
	accepted := func(t *testing.T, what string) bundleStatus {
		t.Helper()
		before := s.bundleStatus(t)
		var st bundleStatus
		eventually(t, reloadWithin, what+" is served", func() bool {
			st = s.bundleStatus(t)
			return st.LastError == "" && st.Reloads > before.Reloads
		})
		return st
	}

	// A change without a signature: refused, the old policy keeps answering.
	saveFile(t, projects, noMain)
	rejected(t, "an unsigned change", "config/projects/data.json: digest mismatch")
	if d := s.evaluate(t, r); d.Status != "accepted" {
		t.Fatalf("the unsigned change was applied: %s %v", d.Status, d.codes())
	}
	// Signed by the authors: served.
	signBundle(t, s.bundle, signingKey().private)
	st := accepted(t, "the signed change")
	if d := s.evaluate(t, r); d.Status != "refused" || d.codes()[0] != "branch_not_allowed" || d.BundleRevision != st.Revision {
		t.Fatalf("signed change: %s %v by %s, want branch_not_allowed by %s", d.Status, d.codes(), d.BundleRevision, st.Revision)
	}
	// An extra file nobody signed.
	saveFile(t, filepath.Join(s.bundle, "projects", "backdoor.rego"), []byte("package tollgate.projects.backdoor\n"))
	rejected(t, "an extra unsigned file", "file projects/backdoor.rego not included in bundle signature")
	os.Remove(filepath.Join(s.bundle, "projects", "backdoor.rego"))
	eventually(t, reloadWithin, "the error clears once the file is gone", func() bool { return s.bundleStatus(t).LastError == "" })
	// The signature removed.
	sig := readFile(t, filepath.Join(s.bundle, ".signatures.json"))
	os.Remove(filepath.Join(s.bundle, ".signatures.json"))
	rejected(t, "the signature removed", "is not signed")
	// Signed by a key the server does not trust, after a change.
	saveFile(t, projects, original)
	signBundle(t, s.bundle, foreignKey().private)
	rejected(t, "a bundle signed with another key", "failed to verify JWT signature")
	// The trusted signature back, on the same content: served again.
	saveFile(t, projects, noMain)
	saveFile(t, filepath.Join(s.bundle, ".signatures.json"), sig)
	eventually(t, reloadWithin, "the signed bundle serves again", func() bool { return s.bundleStatus(t).LastError == "" })
	if !strings.Contains(s.stderr.String(), "bundle reload failed, keeping the active bundle") {
		t.Error("the log does not report the rejected candidates")
	}
	s.stop(t)
}

var (
	opaOnce sync.Once
	opaPath string
	opaErr  error
)

// opaBinary builds stock OPA, the version go.mod pins, once.
func opaBinary(t *testing.T) string {
	t.Helper()
	opaOnce.Do(func() {
		opaPath = filepath.Join(filepath.Dir(binPath), "opa")
		build := exec.Command("go", "build", "-o", opaPath, "github.com/open-policy-agent/opa")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			opaErr = err
			opaPath = string(out)
		}
	})
	if opaErr != nil {
		t.Fatalf("go build github.com/open-policy-agent/opa: %v\n%s", opaErr, opaPath)
	}
	return opaPath
}

func runOPA(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(opaBinary(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A bundle signed by stock `opa sign` is served by tollgate; one signed by
// `tollgate bundle sign` passes stock OPA's own verification, and stock
// `opa test` and `opa check --strict` still pass on it.
func TestSignaturesInteroperateWithOPA(t *testing.T) {
	t.Parallel()
	t.Run("opa sign, tollgate serves", func(t *testing.T) {
		dir := newBundle(t)
		if out, err := runOPA(t, dir, "sign", "--bundle", "--signing-key", signingKey().private, "."); err != nil {
			t.Fatalf("opa sign: %v\n%s", err, out)
		}
		s := startServer(t, serverOptions{bundle: dir, args: verifyArgs()})
		if d := s.evaluate(t, req("org/service-api", "main", "deploy-staging", envStaging)); d.Status != "accepted" {
			t.Fatalf("bundle signed by opa sign: %s %v", d.Status, d.codes())
		}
		s.stop(t)
	})
	t.Run("tollgate bundle sign, opa verifies", func(t *testing.T) {
		dir := signedBundle(t)
		for _, args := range [][]string{{"test", dir}, {"check", "--strict", dir}} {
			if out, err := runOPA(t, dir, args...); err != nil {
				t.Fatalf("opa %s on a signed bundle: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// OPA verifies directories with paths as given on its command line,
		// and archives with paths relative to their root: the archive of
		// the directory is the bundle tollgate signed.
		archive := tarBundle(t, dir)
		out, err := runOPA(t, dir, "build", "--bundle", archive, "--verification-key", signingKey().public, "-o", filepath.Join(t.TempDir(), "out.tar.gz"))
		if err != nil {
			t.Fatalf("opa build --verification-key: %v\n%s", err, out)
		}
		// OPA really checks: the same archive with a changed file fails.
		saveFile(t, filepath.Join(dir, "global.rego"), append(readFile(t, filepath.Join(dir, "global.rego")), "\n# changed\n"...))
		out, err = runOPA(t, dir, "build", "--bundle", tarBundle(t, dir), "--verification-key", signingKey().public, "-o", filepath.Join(t.TempDir(), "out.tar.gz"))
		if err == nil || !strings.Contains(out, "global.rego: digest mismatch") {
			t.Fatalf("opa build accepted a tampered bundle: %v\n%s", err, out)
		}
		code, _, stderr := runTollgate(t, nil, nil, append([]string{"bundle", "verify"}, append(verifyArgs(), dir)...)...)
		if code != 2 || !strings.Contains(stderr, "global.rego: digest mismatch") {
			t.Fatalf("tollgate bundle verify on a tampered bundle: exit %d\n%s", code, stderr)
		}
	})
}

// tarBundle writes dir as a .tar.gz whose entries are named relative to
// dir, as `opa build` writes bundles.
func tarBundle(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	for _, e := range []error{err, tw.Close(), gz.Close(), f.Close()} {
		if e != nil {
			t.Fatal(e)
		}
	}
	return path
}

// runawayModule makes the e2e project's decisions run away on the branch
// "runaway": 400 million iterations that find nothing. The bundle's own
// tests never take that path, so the bundle loads.
const runawayModule = `package tollgate.projects.e2e

reasons contains {"code": "never", "message": "never"} if {
	input.request.branch == "runaway"
	r := numbers.range(1, 20000)
	count({a | some a in r; some b in r; a == b + 100000}) > 0
}
`

// A runaway policy answers promptly with policy_error, recorded like any
// other decision, and the server keeps answering the rest.
func TestRunawayPolicyIsAPolicyError(t *testing.T) {
	t.Parallel()
	dir := newBundle(t)
	saveFile(t, filepath.Join(dir, "projects", "e2e.rego"), []byte(runawayModule))
	s := startServer(t, serverOptions{bundle: dir, args: []string{"--eval-timeout", "200ms"}})

	start := time.Now()
	d := s.evaluate(t, req("org/e2e", "runaway", "deploy", envDev))
	if took := time.Since(start); took > 10*time.Second { // minutes without the budget
		t.Fatalf("POST /v1/evaluate took %v with a 200ms budget", took)
	}
	if d.Status != "refused" || len(d.Reasons) != 1 || d.Reasons[0].Code != "policy_error" ||
		!strings.Contains(d.Reasons[0].Message, "time budget of 200ms") {
		t.Fatalf("runaway: %s %+v, want refused with one policy_error naming the budget", d.Status, d.Reasons)
	}
	if rec := s.decisionByID(t, d.ID); rec.Status != "refused" || rec.codes()[0] != "policy_error" {
		t.Fatalf("the history holds %s %v for the runaway decision", rec.Status, rec.codes())
	}
	status, raw := s.postJSON(t, "/v1/simulate", map[string]any{"input": req("org/e2e", "runaway", "deploy", envDev)})
	if status != http.StatusOK || !strings.Contains(string(raw), `"code":"policy_error"`) {
		t.Fatalf("simulate runaway: %d %s", status, raw)
	}
	if d := s.evaluate(t, req("org/e2e", "main", "deploy", envDev)); d.Status != "accepted" {
		t.Fatalf("after a runaway: %s %v, want accepted", d.Status, d.codes())
	}
	found := false
	for name, v := range s.metrics(t) {
		if strings.HasPrefix(name, "tollgate_decision_reasons_total{") && strings.Contains(name, `code="policy_error"`) && v >= 1 {
			found = true
		}
	}
	if !found {
		t.Error("/metrics does not count the policy_error")
	}
	s.stop(t)
}
