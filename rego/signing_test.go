package rego

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate"
)

// keyPair is a signing key and its public key, PEM-encoded.
type keyPair struct{ private, public []byte }

// rsaKeyPair makes a 2048-bit RSA key pair.
func rsaKeyPair(tb testing.TB) keyPair {
	tb.Helper()
	return newKeyPair(func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) })
}

func ecKeyPair(tb testing.TB, curve elliptic.Curve) keyPair {
	tb.Helper()
	return newKeyPair(func() (crypto.Signer, error) { return ecdsa.GenerateKey(curve, rand.Reader) })
}

// newKeyPair panics on errors: it also runs outside a test, for testKeys.
func newKeyPair(generate func() (crypto.Signer, error)) keyPair {
	key, err := generate()
	if err != nil {
		panic(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		panic(err)
	}
	return keyPair{
		private: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		public:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	}
}

// testKeys is one RSA key pair shared by the package's tests: generating
// one takes a while under -race.
var testKeys = sync.OnceValue(func() keyPair {
	return newKeyPair(func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) })
})

func verification(tb testing.TB, public []byte, keyID, scope string) *Verification {
	tb.Helper()
	v, err := NewVerification(public, keyID, "", scope)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// signedCopy is a copy of the shipped bundle signed with the test key.
func signedCopy(tb testing.TB) string {
	tb.Helper()
	dir := bundleCopy(tb)
	sign(tb, dir, testKeys().private, "")
	return dir
}

func sign(tb testing.TB, dir string, private []byte, keyID string) []string {
	tb.Helper()
	files, err := SignBundle(dir, private, keyID, "")
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// signedPayload decodes the JWT payload of dir's signature.
func signedPayload(tb testing.TB, dir string) (header, payload map[string]any) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(dir, SignaturesFile))
	if err != nil {
		tb.Fatal(err)
	}
	var sc struct{ Signatures []string }
	if err := json.Unmarshal(data, &sc); err != nil || len(sc.Signatures) != 1 {
		tb.Fatalf("%s: want {\"signatures\": [one JWT]}, got %s (%v)", SignaturesFile, data, err)
	}
	parts := strings.Split(sc.Signatures[0], ".")
	if len(parts) != 3 {
		tb.Fatalf("not a compact JWS: %q", sc.Signatures[0])
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			tb.Fatal(err)
		}
	}
	return header, payload
}

func TestSignBundleWritesOPAFormat(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	writeFile(t, filepath.Join(dir, ".decision.rego.swp"), "editor backup")
	files := sign(t, dir, testKeys().private, "ci-2026")
	header, payload := signedPayload(t, dir)
	if header["alg"] != "RS256" || header["kid"] != "ci-2026" || payload["keyid"] != "ci-2026" {
		t.Errorf("header %v, keyid claim %v", header, payload["keyid"])
	}
	var names []string
	for _, f := range payload["files"].([]any) {
		f := f.(map[string]any)
		if f["algorithm"] != "SHA-256" || len(f["hash"].(string)) != 64 {
			t.Errorf("file entry %v: want a SHA-256 hex hash", f)
		}
		names = append(names, f["name"].(string))
	}
	slices.Sort(names)
	if !slices.Equal(names, files) {
		t.Errorf("signed %v, payload lists %v", files, names)
	}
	for _, want := range []string{"decision.rego", "config/projects/data.json", "projects/payments.rego", "decision_test.rego"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s is not signed (relative to the bundle root): %v", want, names)
		}
	}
	for _, name := range names {
		if strings.HasPrefix(filepath.Base(name), ".") {
			t.Errorf("%s is signed: dot-files are not part of the bundle", name)
		}
	}
}

func TestSignedBundleLoads(t *testing.T) {
	t.Parallel()
	dir := signedCopy(t)
	v := verification(t, testKeys().public, "", "")
	b, err := v.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Revision != revisionOf(t, dir) {
		t.Errorf("verified revision %s, unsigned load %s", b.Revision, revisionOf(t, dir))
	}
	// The JWT's kid does not choose the key: the configured one is used.
	sign(t, dir, testKeys().private, "someone-else")
	if _, err := v.LoadBundle(dir); err != nil {
		t.Fatalf("a kid in the JWT must not matter with one configured key: %v", err)
	}
	// Editor files and other dot-files are not part of the bundle.
	writeFile(t, filepath.Join(dir, ".decision.rego.swp"), "backup")
	writeFile(t, filepath.Join(dir, "config", ".#data.json"), "lock")
	if _, err := v.LoadBundle(dir); err != nil {
		t.Fatalf("dot-files must be ignored as the loader ignores them: %v", err)
	}
	// JSON is signed by its canonical form, as OPA signs it: a reformatted
	// data file with the same content still verifies.
	path := filepath.Join(dir, projectsJSON)
	content, _ := os.ReadFile(path)
	var doc any
	if err := json.Unmarshal(content, &doc); err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(doc)
	writeFile(t, path, string(compact))
	if _, err := v.LoadBundle(dir); err != nil {
		t.Fatalf("reformatted JSON with the same content: %v", err)
	}
}

func TestSignedECDSABundleLoads(t *testing.T) {
	t.Parallel()
	for name, curve := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
		keys := ecKeyPair(t, curve)
		dir := bundleCopy(t)
		sign(t, dir, keys.private, "")
		if header, _ := signedPayload(t, dir); header["alg"] != name {
			t.Errorf("alg %v, want %s", header["alg"], name)
		}
		v := verification(t, keys.public, "", "")
		if v.Algorithm() != name {
			t.Errorf("derived algorithm %s, want %s", v.Algorithm(), name)
		}
		if _, err := v.LoadBundle(dir); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Every way a bundle can differ from what was signed is refused, with a
// message that names the problem.
func TestVerificationRejectsTamperedBundles(t *testing.T) {
	t.Parallel()
	other := rsaKeyPair(t)
	tests := map[string]struct {
		tamper func(t *testing.T, dir string)
		want   string
	}{
		"unsigned": {
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, SignaturesFile)) },
			want:   "is not signed: no .signatures.json",
		},
		"changed rego": {
			tamper: func(t *testing.T, dir string) {
				editFile(t, filepath.Join(dir, "local.rego"), "package tollgate", "package tollgate\n\n# tampered")
			},
			want: "local.rego: digest mismatch",
		},
		"changed data": {
			tamper: func(t *testing.T, dir string) {
				editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
			},
			want: projectsJSON + ": digest mismatch",
		},
		"extra rego file": {
			tamper: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "projects", "backdoor.rego"), "package tollgate.projects.backdoor\n")
			},
			want: "file projects/backdoor.rego not included in bundle signature",
		},
		"extra data file": {
			tamper: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "config", "extra", "data.json"), `{}`)
			},
			want: "file config/extra/data.json not included in bundle signature",
		},
		"extra file of another kind": {
			tamper: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "notes.yaml"), "a: 1\n") },
			want:   "file notes.yaml not included in bundle signature",
		},
		"signed file removed": {
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "projects", "payments.rego")) },
			want:   "specified in bundle signatures but not found",
		},
		"signed by another key": {
			tamper: func(t *testing.T, dir string) { sign(t, dir, other.private, "") },
			want:   "failed to verify JWT signature",
		},
		"re-signed by another key after a change": {
			tamper: func(t *testing.T, dir string) {
				editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
				sign(t, dir, other.private, "")
			},
			want: "failed to verify JWT signature",
		},
		"empty signatures": {
			tamper: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, SignaturesFile), `{"signatures": []}`)
			},
			want: "missing JWT",
		},
		"garbage signatures file": {
			tamper: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, SignaturesFile), `not json`) },
			want:   "signatures decode",
		},
		"unsigned JWT (alg none)": {
			tamper: func(t *testing.T, dir string) {
				_, payload := signedPayload(t, dir)
				body, _ := json.Marshal(payload)
				token := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
					base64.RawURLEncoding.EncodeToString(body) + "."
				writeFile(t, filepath.Join(dir, SignaturesFile), `{"signatures": ["`+token+`"]}`)
			},
			want: "failed to verify JWT signature",
		},
		"payload swapped under a valid signature": {
			tamper: func(t *testing.T, dir string) {
				data, _ := os.ReadFile(filepath.Join(dir, SignaturesFile))
				var sc struct{ Signatures []string }
				json.Unmarshal(data, &sc)
				parts := strings.Split(sc.Signatures[0], ".")
				_, payload := signedPayload(t, dir)
				payload["files"] = payload["files"].([]any)[:1]
				body, _ := json.Marshal(payload)
				parts[1] = base64.RawURLEncoding.EncodeToString(body)
				writeFile(t, filepath.Join(dir, SignaturesFile), `{"signatures": ["`+strings.Join(parts, ".")+`"]}`)
			},
			want: "failed to verify JWT signature",
		},
	}
	v := verification(t, testKeys().public, "", "")
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := signedCopy(t)
			tc.tamper(t, dir)
			_, err := v.LoadBundle(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
			// The unsigned path still loads it: only verification refuses.
			if name == "unsigned" {
				if _, err := LoadBundle(dir); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestVerificationScope(t *testing.T) {
	t.Parallel()
	dir := signedCopy(t) // no scope claim, as `opa sign` writes by default
	if _, err := verification(t, testKeys().public, "", "production").LoadBundle(dir); err == nil || !strings.Contains(err.Error(), "scope mismatch") {
		t.Fatalf("want a scope mismatch, got %v", err)
	}
}

func TestNewVerificationRefusesBadKeys(t *testing.T) {
	t.Parallel()
	smallKeys := newKeyPair(func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 1024) })
	ec := ecKeyPair(t, elliptic.P256())
	tests := map[string]struct {
		key       []byte
		alg, want string
	}{
		"private key":           {testKeys().private, "", "this is a private key"},
		"not PEM":               {[]byte("hello"), "", "not PEM"},
		"small RSA key":         {smallKeys.public, "", "too small"},
		"HMAC algorithm":        {testKeys().public, "HS256", "does not fit this key"},
		"EC alg on an RSA key":  {testKeys().public, "ES256", "does not fit this key"},
		"RSA alg on an EC key":  {ec.public, "RS256", "does not fit this key"},
		"wrong curve algorithm": {ec.public, "ES384", "does not fit this key"},
	}
	for name, tc := range tests {
		if _, err := NewVerification(tc.key, "", tc.alg, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", name, tc.want, err)
		}
	}
	if _, err := SignBundle(bundleCopy(t), testKeys().public, "", ""); err == nil {
		t.Error("SignBundle accepted a public key")
	}
	if v, err := NewVerification(testKeys().public, "", "PS256", ""); err != nil || v.Algorithm() != "PS256" {
		t.Errorf("PS256 on an RSA key: %v", err)
	}
}

func signedEngine(tb testing.TB, dir string) *testEngine {
	tb.Helper()
	te := &testEngine{log: &logRecorder{}}
	e, err := NewEngine(context.Background(), dir, EngineOptions{
		Debounce:     testDebounce,
		Poll:         -1,
		Logger:       slog.New(te.log),
		OnReload:     func(BundleStatus, error) { te.hooks.Add(1) },
		Verification: verification(tb, testKeys().public, "", ""),
	})
	if err != nil {
		tb.Fatal(err)
	}
	te.Engine = e
	tb.Cleanup(func() {
		if tb.Failed() {
			te.log.dump(tb)
		}
	})
	return te
}

func TestNewEngineRefusesAnUnsignedBundle(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	_, err := NewEngine(context.Background(), dir, EngineOptions{
		Logger:       slog.New(&logRecorder{}),
		Verification: verification(t, testKeys().public, "", ""),
	})
	if err == nil || !strings.Contains(err.Error(), "no valid bundle to serve") || !strings.Contains(err.Error(), "is not signed") {
		t.Fatalf("want a refusal naming the missing signature, got %v", err)
	}
}

// A change without a new signature is refused and the signed bundle keeps
// serving; signing the change (a new .signatures.json, which the watcher
// sees although it is a dot-file) makes it the active bundle.
func TestWatchSignedBundle(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	sign(t, dir, testKeys().private, "")
	te := signedEngine(t, dir)
	te.watch(t)
	te.decides(t, tollgate.Refused)
	active := te.Policy()

	editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
	s := te.waitFailures(t, 1)
	if !strings.Contains(s.LastError, "digest mismatch") || te.Policy() != active {
		t.Fatalf("an unsigned change: status %+v", s)
	}
	te.decides(t, tollgate.Refused)
	if te.log.count("ERROR bundle reload failed, keeping the active bundle") == 0 {
		t.Error("the rejected candidate was not logged")
	}

	writeFile(t, filepath.Join(dir, "projects", "extra.rego"), "package tollgate.projects.extra\n")
	sign(t, dir, testKeys().private, "")
	te.waitRevision(t, revisionOf(t, dir))
	te.decides(t, tollgate.Accepted)
	if s := te.Status(); s.LastError != "" || s.Reloads != 1 {
		t.Fatalf("after signing: %+v", s)
	}

	// An extra file dropped in later is refused, even a harmless one.
	active = te.Policy()
	writeFile(t, filepath.Join(dir, "README.md"), "unsigned\n")
	// Wait for this rejection itself: on a loaded machine the first edit may
	// have failed more than once (a reload can read it half-written).
	waitFor(t, "the extra file's rejection", func() bool {
		return strings.Contains(te.Status().LastError, "README.md not included in bundle signature")
	})
	if te.Policy() != active {
		t.Fatalf("an extra file replaced the active bundle: status %+v", te.Status())
	}
}

// FuzzVerifySignatures: whatever .signatures.json holds, a bundle loads
// with verification only under the token its key signed for it; nothing
// panics. (The key is new each run: committed seeds exercise the parser.)
func FuzzVerifySignatures(f *testing.F) {
	dir := newBundleDir(f, map[string]string{"policy.rego": "package tollgate\n\ndecision := 1\n"})
	sign(f, dir, testKeys().private, "")
	genuine, err := os.ReadFile(filepath.Join(dir, SignaturesFile))
	if err != nil {
		f.Fatal(err)
	}
	var sc struct{ Signatures []string }
	if err := json.Unmarshal(genuine, &sc); err != nil {
		f.Fatal(err)
	}
	token := sc.Signatures[0]
	parts := strings.Split(token, ".")
	f.Add(genuine)
	f.Add([]byte(`{"signatures": ["` + parts[0] + "." + parts[1] + `."]}`))
	f.Add([]byte(`{"signatures": ["` + token + `", "` + token + `"]}`))
	f.Add([]byte(`{"signatures": [], "plugin": "x"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	v := verification(f, testKeys().public, "", "")
	f.Fuzz(func(t *testing.T, signatures []byte) {
		if err := os.WriteFile(filepath.Join(dir, SignaturesFile), signatures, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := v.LoadBundle(dir); err == nil {
			var got struct{ Signatures []string }
			if json.Unmarshal(signatures, &got) != nil || len(got.Signatures) != 1 || got.Signatures[0] != token {
				t.Fatalf("accepted signatures %q", signatures)
			}
		}
	})
}

// BenchmarkLoadBundle: what verification adds to a load (and so to every
// reload candidate) of the shipped bundle.
func BenchmarkLoadBundle(b *testing.B) {
	dir := signedCopy(b)
	v := verification(b, testKeys().public, "", "")
	b.Run("unsigned", func(b *testing.B) {
		for b.Loop() {
			if _, err := LoadBundle(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verified", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.LoadBundle(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}
