package apiclient

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed client is what oapi-codegen generates from the server's
// document now: a route added to the document without regenerating fails
// here, and so does a document oapi-codegen cannot generate from.
func TestGeneratedFromTheDocument(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "client.gen.go")
	config := filepath.Join(dir, "oapi-codegen.yaml")
	src, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = bytes.Replace(src, []byte("output: client.gen.go"), []byte("output: "+out), 1)
	if err := os.WriteFile(config, src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", config, "../../server/openapi.json")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, msg)
	}
	generated, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(generated, committed) {
		t.Fatal("deploy/apiclient/client.gen.go is not what server/openapi.json generates: run `go generate ./apiclient` in deploy/ and commit it")
	}
}

// The client sends what the server reads and decodes what it answers into
// the document's types: a decision tollgate answered (testdata) and an
// error.
func TestClientDecodesAnswers(t *testing.T) {
	decision, err := os.ReadFile("testdata/decision.json")
	if err != nil {
		t.Fatal(err)
	}
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer tg_test" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error": {"code": "unauthorized", "message": "authentication required"}}`))
			return
		}
		w.Write(decision)
	}))
	defer srv.Close()
	body := EvaluateJSONRequestBody{Repository: "org/service-api", Branch: "feature/x", Pipeline: "deploy-prod",
		Metadata: Metadata{Environment: "production"}}

	c, err := NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.EvaluateWithResponse(context.Background(), nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.JSON401 == nil || resp.JSON401.Error.Code != "unauthorized" {
		t.Fatalf("without a token: %d %s, want the 401 error decoded", resp.StatusCode(), resp.Body)
	}

	c, err = NewClientWithResponses(srv.URL, WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer tg_test")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	french := AcceptLanguage("fr, en;q=0.5")
	resp, err = c.EvaluateWithResponse(context.Background(), &EvaluateParams{AcceptLanguage: &french}, body)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/v1/evaluate" || got.Header.Get("Content-Type") != "application/json" ||
		got.Header.Get("Accept-Language") != "fr, en;q=0.5" {
		t.Errorf("sent %s %s (%s, Accept-Language %q), want POST /v1/evaluate (application/json, fr, en;q=0.5)",
			got.Method, got.URL.Path, got.Header.Get("Content-Type"), got.Header.Get("Accept-Language"))
	}
	d := resp.JSON200
	if d == nil {
		t.Fatalf("%d %s: no decision decoded", resp.StatusCode(), resp.Body)
	}
	if d.Status != StatusRefused || len(d.Reasons) != 2 || d.Reasons[1].Code != "branch_not_allowed" || d.Project != "service-api" ||
		d.EvaluatedAt.IsZero() || d.ClearsAt == nil || (*d.ClearsAt)["time_window_violation"] == nil {
		t.Errorf("decoded %+v from %s", d, decision)
	}
}
