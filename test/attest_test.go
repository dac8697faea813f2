package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDecisionAttestation is the deploy step of issue 10 with the real
// binary: a server started with --attestation-signing-key signs every
// decision; `tollgate check --attestation-out` saves the signed decision;
// `tollgate verify-decision` lets a deploy go ahead on an accepted decision
// for this run only, and refuses (exit 1) a refused one, a decision for
// another run and an old one, and (exit 2) an edited file and one checked
// with another key. A server without the key gives no attestation, and
// check says how to get one.
func TestDecisionAttestation(t *testing.T) {
	t.Parallel()
	keys, other := t.TempDir(), t.TempDir()
	for _, dir := range []string{keys, other} {
		if code, _, stderr := runTollgate(t, nil, nil, "ledger", "keygen", "--out", dir); code != 0 {
			t.Fatalf("ledger keygen: %d %s", code, stderr)
		}
	}
	public := filepath.Join(keys, "ledger-public.pem")
	s := startServer(t, serverOptions{auth: true,
		args: []string{"--attestation-signing-key", filepath.Join(keys, "ledger-private.pem")}})
	files := t.TempDir()
	check := func(t *testing.T, branch, out string) (int, string) {
		t.Helper()
		code, stdout, stderr := runTollgate(t, nil, nil, "check", "--server", s.cliBase(t), "--token", s.token,
			"--repository", "org/service-api", "--branch", branch, "--pipeline", "deploy-staging",
			"--environment", envStaging, "--run-id", "run-7", "--attestation-out", out)
		if code == 2 {
			t.Fatalf("check: exit 2\n%s%s", stdout, stderr)
		}
		m := decisionIDInCheck.FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("check printed no decision ID: %q", stdout)
		}
		return code, m[1]
	}
	verify := func(t *testing.T, key, file string, expect ...string) (int, string, string) {
		t.Helper()
		return runTollgate(t, nil, nil, append(append([]string{"verify-decision", "--key", key}, expect...), file)...)
	}
	forThisRun := []string{"--repository", "org/service-api", "--branch", "main", "--pipeline", "deploy-staging",
		"--run-id", "run-7", "--environment", envStaging, "--max-age", "10m"}

	accepted := filepath.Join(files, "accepted.json")
	code, acceptedID := check(t, "main", accepted)
	if code != 0 {
		t.Fatalf("check main: exit %d, want 0", code)
	}
	refused := filepath.Join(files, "refused.json")
	if code, _ := check(t, "feature/x", refused); code != 1 {
		t.Fatalf("check feature/x: exit %d, want 1", code)
	}

	t.Run("accepted, for this run", func(t *testing.T) {
		code, stdout, stderr := verify(t, public, accepted, forThisRun...)
		if code != 0 || !strings.HasPrefix(stdout, "accepted: decision "+acceptedID+" for org/service-api, branch main, pipeline deploy-staging, environment staging, decided at ") ||
			!strings.Contains(stdout, "signed by key ") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the summary", code, stdout, stderr)
		}
		// From stdin too.
		data, err := os.ReadFile(accepted)
		if err != nil {
			t.Fatal(err)
		}
		if code, stdout, stderr := runTollgate(t, nil, data, "verify-decision", "--key", public, "-"); code != 0 {
			t.Fatalf("from stdin: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("refused", func(t *testing.T) {
		code, stdout, stderr := verify(t, public, refused)
		if code != 1 || !strings.HasPrefix(stdout, "refused: decision ") || !strings.Contains(stdout, "reason  branch_not_allowed") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1, refused and its reason", code, stdout, stderr)
		}
	})
	t.Run("another run, another branch, too old", func(t *testing.T) {
		code, stdout, stderr := verify(t, public, accepted, "--run-id", "run-8", "--branch", "release/1", "--max-age", "1ns")
		for _, want := range []string{`--run-id run-8: the decision is for run ID "run-7"`, `--branch release/1: the decision is for branch "main"`, "--max-age 1ns: the decision was made"} {
			if !strings.Contains(stdout, "does not match "+want) {
				t.Errorf("stdout does not say %q", want)
			}
		}
		if code != 1 {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1", code, stdout, stderr)
		}
	})
	t.Run("edited", func(t *testing.T) {
		// The refusal turned into an acceptance, the file otherwise intact.
		var env map[string]any
		if err := json.Unmarshal(readFile(t, refused), &env); err != nil {
			t.Fatal(err)
		}
		payload, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		if err != nil {
			t.Fatal(err)
		}
		edited := bytes.Replace(payload, []byte(`"status":"refused"`), []byte(`"status":"accepted"`), 1)
		if bytes.Equal(edited, payload) {
			t.Fatalf("no refused status in %s", payload)
		}
		env["payload"] = base64.StdEncoding.EncodeToString(edited)
		file := filepath.Join(files, "edited.json")
		if err := os.WriteFile(file, mustJSON(t, env), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := verify(t, public, file)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "invalid attestation, do not deploy: the signature of key") ||
			!strings.Contains(stderr, "altered after it was signed") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and altered", code, stdout, stderr)
		}
	})
	t.Run("another key", func(t *testing.T) {
		code, stdout, stderr := verify(t, filepath.Join(other, "ledger-public.pem"), accepted)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "not by the key given") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and not by the key given", code, stdout, stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, stderr := runTollgate(t, nil, nil, "verify-decision", accepted); code != 2 || !strings.Contains(stderr, "--key is required") {
			t.Fatalf("without --key: exit %d, stderr %q", code, stderr)
		}
		if code, _, stderr := verify(t, public, accepted, "--max-age", "-5m"); code != 2 || !strings.Contains(stderr, "--max-age -5m0s: want a positive duration") {
			t.Fatalf("negative --max-age: exit %d, stderr %q", code, stderr)
		}
		if code, _, stderr := verify(t, public, filepath.Join(files, "missing.json")); code != 2 || !strings.Contains(stderr, "no such file") {
			t.Fatalf("missing file: exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("the ledger holds the attested record", func(t *testing.T) {
		var env struct{ Payload string }
		if err := json.Unmarshal(readFile(t, accepted), &env); err != nil {
			t.Fatal(err)
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Predicate struct {
				RecordDigest string `json:"record_digest"`
			}
		}
		if err := json.Unmarshal(payload, &st); err != nil || len(st.Predicate.RecordDigest) != 64 {
			t.Fatalf("record_digest in %s: %v", payload, err)
		}
		// Refused records only in full: the accepted one is a link, by its digest.
		code, raw := s.get(t, "/v1/decisions/export?status=refused")
		if code != http.StatusOK || !strings.Contains(string(raw), `"type":"link","seq":1,"digest":"`+st.Predicate.RecordDigest+`"`) {
			t.Fatalf("export: %d; the first link is not the attested record's digest %s:\n%s", code, st.Predicate.RecordDigest, raw)
		}
	})

	t.Run("a server without the key gives none", func(t *testing.T) {
		plain := startServer(t, serverOptions{})
		out := filepath.Join(files, "none.json")
		code, stdout, stderr := runTollgate(t, nil, nil, "check", "--server", plain.base,
			"--repository", "org/service-api", "--branch", "main", "--pipeline", "deploy-staging",
			"--environment", envStaging, "--attestation-out", out)
		if code != 2 || !strings.HasPrefix(stdout, "accepted") || !strings.Contains(stderr, "start tollgate serve with --attestation-signing-key") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and how to get an attestation", code, stdout, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s written: %v", out, err)
		}
	})
}
