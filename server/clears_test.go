package server

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/adapters/ledger"
)

// An evaluation refused by time says when it can clear, over HTTP; the
// record read back says the same, and the ledger holds with it.
func TestEvaluateSaysWhenARefusalClears(t *testing.T) {
	f := newFixture(t)
	f.setNow("2026-11-20T18:30:00+01:00") // a Friday after the window
	code, d := f.post("/v1/evaluate", exampleRequest)
	if code != http.StatusOK || d["status"] != "refused" {
		t.Fatalf("evaluate: %d %v", code, d)
	}
	clears := map[string]any{"time_window_violation": "2026-11-23T07:00:00Z"}
	if !reflect.DeepEqual(d["clears_at"], clears) || d["next_check_at"] != "2026-11-23T07:00:00Z" {
		t.Fatalf("want clears_at %v and next_check_at Monday 08:00 Paris, got %v", clears, d)
	}
	code, rec := f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", "")
	if code != http.StatusOK || !reflect.DeepEqual(rec["clears_at"], clears) || rec["next_check_at"] != "2026-11-23T07:00:00Z" {
		t.Fatalf("the record read back: %d %v", code, rec)
	}
	// Accepted: neither field.
	f.setNow("2026-11-23T10:00:00+01:00")
	if _, d := f.post("/v1/evaluate", exampleRequest); d["status"] != "accepted" || d["clears_at"] != nil || d["next_check_at"] != nil {
		t.Fatalf("accepted: %v", d)
	}
	if _, brk, err := ledger.Verify(t.Context(), f.store, nil); brk != nil || err != nil {
		t.Fatalf("ledger verify: %v %v", brk, err)
	}
}
