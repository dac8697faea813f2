package server

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// get sends GET path with the token given and returns the status, the
// content type and the body.
func (f *fixture) get(bearer, path string) (int, string, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func TestExportStreamsASignedVerifiableLedger(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(c *Config) { c.LedgerSigner = priv })
	reader := f.mint("auditor", time.Time{}, tollgate.ScopeRead)
	evaluator := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	f.token = evaluator
	for range 3 {
		if code, body := f.post("/v1/evaluate", exampleRequest); code != http.StatusOK {
			t.Fatalf("evaluate: %d %v", code, body)
		}
	}
	f.post("/v1/evaluate", strings.Replace(exampleRequest, "org/service-api", "org/unknown", 1))

	code, ctype, body := f.get(reader, "/v1/decisions/export?project=service-api&status=refused")
	if code != http.StatusOK || ctype != "application/x-ndjson" {
		t.Fatalf("export: %d %s %s", code, ctype, body)
	}
	sum, brk, err := ledger.VerifyExport(bytes.NewReader(body), pub)
	if err != nil || brk != nil {
		t.Fatalf("VerifyExport: %v %v\n%s", brk, err, body)
	}
	// The first is accepted, the next two refused (cooldown), the last
	// unmanaged: two records whole, two as links, all four chained.
	if sum.Records != 2 || sum.Links != 2 || sum.EndSeq != 4 || sum.Key != ledger.KeyID(pub) {
		t.Fatalf("export summary %+v\n%s", sum, body)
	}
	if code, _, _ := f.get(evaluator, "/v1/decisions/export"); code != http.StatusForbidden {
		t.Fatalf("export with an evaluate token: %d; want 403", code)
	}
}

func TestExportErrors(t *testing.T) {
	f := newFixture(t)
	for _, query := range []string{"?status=maybe", "?since=yesterday", "?limit=10", "?cursor=x", "?colour=red"} {
		a := f.send("", http.MethodGet, "/v1/decisions/export"+query, "")
		if a.code != http.StatusBadRequest || a.errorCode() != tollgate.EInvalid {
			t.Errorf("export%s: %d %v; want 400 invalid_input", query, a.code, a.body)
		}
	}
	// Unsigned without a key: the chain still verifies, the signature is
	// said to be missing.
	code, _, body := f.get("", "/v1/decisions/export")
	if code != http.StatusOK {
		t.Fatalf("export: %d %s", code, body)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(body), nil); brk != nil {
		t.Fatalf("unsigned export: %v", brk)
	}
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(body), pub); brk == nil || !strings.Contains(brk.Reason, "not signed") {
		t.Fatalf("unsigned export checked with a key: %v; want not signed", brk)
	}
	// A store that cannot be read: 503 before anything is streamed.
	f.store.Close()
	if a := f.send("", http.MethodGet, "/v1/decisions/export", ""); a.code != http.StatusServiceUnavailable || a.errorCode() != tollgate.EUnavailable {
		t.Fatalf("export from a closed store: %d %v; want 503", a.code, a.body)
	}
}

// TestDecisionRecomputesItsLedgerHash: what GET /v1/decisions/{id} returns
// is enough for an auditor to recompute the record's ledger digest, as the
// README says: the decision with its request, context, identity and the
// cooldown_key it was made under (deploy-prod has a cooldown).
func TestDecisionRecomputesItsLedgerHash(t *testing.T) {
	f := newFixture(t)
	code, d := f.post("/v1/evaluate", exampleRequest)
	if code != http.StatusOK {
		t.Fatalf("evaluate: %d %v", code, d)
	}
	code, _, body := f.get("", "/v1/decisions/"+d["decision_id"].(string))
	if code != http.StatusOK {
		t.Fatalf("GET decision: %d %s", code, body)
	}
	var item map[string]json.RawMessage
	if err := json.Unmarshal(body, &item); err != nil {
		t.Fatal(err)
	}
	record := map[string]json.RawMessage{}
	for _, k := range []string{"request", "context", "identity", "cooldown_key"} {
		if item[k] == nil {
			t.Fatalf("GET /v1/decisions/{id} has no %q: %s", k, body)
		}
		record[k] = item[k]
		delete(item, k)
	}
	record["decision"], _ = json.Marshal(item)
	raw, _ := json.Marshal(record)
	digest, err := ledger.Digest(raw)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := f.store.LedgerEntries(t.Context(), 1, 1, func(e tollgate.LedgerEntry) error {
		stored, err = ledger.Digest(e.Record)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest, stored) {
		t.Fatalf("digest of the API's record %x; the ledger's %x:\n%s", digest, stored, body)
	}
}
