package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// TestControlsAPIStatuses: every error status of the controls endpoints,
// and that the changes made through them reach the next evaluation.
func TestControlsAPIStatuses(t *testing.T) {
	f := authFixture(t)
	forever := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	alice := bearer(f.mint("alice", forever, tollgate.ScopeEvaluate, tollgate.ScopeRead))
	bob := bearer(f.mint("bob", forever, tollgate.ScopeApprove))
	carol := bearer(f.mint("carol", forever, tollgate.ScopeApprove))
	ops := bearer(f.mint("ops", forever, tollgate.ScopeAdmin, tollgate.ScopeRead))
	feature := `{"repository":"org/service-api","branch":"feature/x","pipeline":"deploy-staging",
		"metadata":{"initiator":"ci","run_id":"1","environment":"staging"}}`
	expires := `"expires_at": "2026-11-24T10:00:00+01:00"`

	for _, tc := range []struct{ body, want string }{
		{`{"code": "branch_not_allowed", "project": "service-api", "justification": "x", ` + expires + `, "colour": 1}`, `unknown field "colour"`},
		{`{"code": "branch_not_allowed", "project": "service-api", "justification": "x", "expires_at": "tomorrow"}`, "expires_at"},
		{`{"code": "licence_invalid", "project": "service-api", "justification": "x", ` + expires + `}`, "cannot be waived"},
		{`{"code": "branch_not_allowed", "project": "service-api", "justification": "x", "expires_at": "2027-11-24T10:00:00+01:00"}`, "too far"},
	} {
		wantError(t, tc.body, f.send(alice, http.MethodPost, "/v1/exceptions", tc.body), http.StatusBadRequest, tollgate.EInvalid, tc.want, nil)
	}

	a := f.send(alice, http.MethodPost, "/v1/exceptions", `{"code": "branch_not_allowed", "project": "service-api",
		"environment": "staging", "justification": "demo", `+expires+`}`)
	if a.code != http.StatusCreated || a.body["state"] != "requested" || a.header.Get("Location") != "/v1/exceptions/"+a.body["id"].(string) {
		t.Fatalf("request: %d %v", a.code, a.body)
	}
	id := a.body["id"].(string)
	wantError(t, "approve without the scope", f.send(alice, http.MethodPost, "/v1/exceptions/"+id+"/approve", ""), http.StatusForbidden, tollgate.EForbidden, "approve", nil)
	wantError(t, "approve an unknown exception", f.send(bob, http.MethodPost, "/v1/exceptions/nope/approve", ""), http.StatusNotFound, tollgate.ENotFound, "nope", nil)
	wantError(t, "approve with a bad body", f.send(bob, http.MethodPost, "/v1/exceptions/"+id+"/approve", `{"comment": 3}`), http.StatusBadRequest, tollgate.EInvalid, "comment", nil)
	if a := f.send(bob, http.MethodPost, "/v1/exceptions/"+id+"/approve", `{"comment": "ok"}`); a.code != http.StatusOK || a.body["state"] != "approved" {
		t.Fatalf("approve: %d %v", a.code, a.body)
	}
	wantError(t, "approve an approved exception", f.send(carol, http.MethodPost, "/v1/exceptions/"+id+"/approve", ""), http.StatusConflict, tollgate.EConflict, "is approved", nil)
	wantError(t, "reject an approved exception", f.send(carol, http.MethodPost, "/v1/exceptions/"+id+"/reject", ""), http.StatusConflict, tollgate.EConflict, "cannot be rejected", nil)
	if a := f.send(alice, http.MethodPost, "/v1/evaluate", feature); a.body["status"] != "accepted" {
		t.Fatalf("evaluate with the exception: %v", a.body)
	}
	if a := f.send(alice, http.MethodGet, "/v1/exceptions?state=approved&project=service-api", ""); a.code != http.StatusOK || len(a.body["exceptions"].([]any)) != 1 {
		t.Fatalf("list: %d %v", a.code, a.body)
	}
	wantError(t, "list with an unknown filter", f.send(alice, http.MethodGet, "/v1/exceptions?colour=red", ""), http.StatusBadRequest, tollgate.EInvalid, "colour", nil)
	wantError(t, "list freezes by project", f.send(ops, http.MethodGet, "/v1/freezes?project=x", ""), http.StatusBadRequest, tollgate.EInvalid, "project", nil)

	// Break-glass needs the approve scope.
	glass := `{"code": "freeze_active", "project": "service-api", "pipeline": "hotfix-prod", "justification": "fix", "expires_at": "2026-11-23T11:00:00+01:00"}`
	wantError(t, "break-glass without the scope", f.send(alice, http.MethodPost, "/v1/exceptions/break-glass", glass), http.StatusForbidden, tollgate.EForbidden, "approve", nil)
	if a := f.send(bob, http.MethodPost, "/v1/exceptions/break-glass", glass); a.code != http.StatusCreated || a.body["state"] != "approved" {
		t.Fatalf("break-glass: %d %v", a.code, a.body)
	}

	// Freezes and incidents.
	wantError(t, "freeze without ttl", f.send(ops, http.MethodPost, "/v1/freezes", `{"reason": "x"}`), http.StatusBadRequest, tollgate.EInvalid, "ttl is required", nil)
	wantError(t, "freeze with a bad ttl", f.send(ops, http.MethodPost, "/v1/freezes", `{"reason": "x", "ttl": "soon"}`), http.StatusBadRequest, tollgate.EInvalid, `got "soon"`, nil)
	wantError(t, "freeze by a non-admin", f.send(bob, http.MethodPost, "/v1/freezes", `{"reason": "x", "ttl": "1h"}`), http.StatusForbidden, tollgate.EForbidden, "admin", nil)
	a = f.send(ops, http.MethodPost, "/v1/freezes", `{"reason": "failover", "environments": ["staging"], "ttl": "1h"}`)
	if a.code != http.StatusCreated {
		t.Fatalf("freeze: %d %v", a.code, a.body)
	}
	frz := a.body["id"].(string)
	main := `{"repository":"org/service-api","branch":"main","pipeline":"deploy-staging","metadata":{"environment":"staging"}}`
	if a := f.send(alice, http.MethodPost, "/v1/evaluate", main); a.body["status"] != "refused" {
		t.Fatalf("evaluate during the freeze: %v", a.body)
	}
	wantError(t, "a freeze is not an incident", f.send(ops, http.MethodGet, "/v1/incidents/"+frz, ""), http.StatusNotFound, tollgate.ENotFound, frz, nil)
	if a := f.send(ops, http.MethodDelete, "/v1/freezes/"+frz, ""); a.code != http.StatusOK || a.body["state"] != "lifted" {
		t.Fatalf("lift: %d %v", a.code, a.body)
	}
	wantError(t, "lift twice", f.send(ops, http.MethodDelete, "/v1/freezes/"+frz, ""), http.StatusConflict, tollgate.EConflict, "is lifted", nil)
	if a := f.send(alice, http.MethodPost, "/v1/evaluate", main); a.body["status"] != "accepted" {
		t.Fatalf("evaluate after the lift: %v", a.body)
	}

	a = f.send(ops, http.MethodPost, "/v1/incidents", `{"reason": "checkout down", "ttl": "1h"}`)
	if a.code != http.StatusCreated {
		t.Fatalf("incident: %d %v", a.code, a.body)
	}
	if got := f.send(ops, http.MethodGet, "/v1/incidents/"+a.body["id"].(string), ""); got.code != http.StatusOK || got.body["state"] != "active" {
		t.Fatalf("get the incident: %d %v", got.code, got.body)
	}
	if a := f.send(bob, http.MethodPost, "/v1/exceptions/"+id+"/revoke", `{"comment": "done"}`); a.code != http.StatusOK || a.body["state"] != "revoked" {
		t.Fatalf("revoke: %d %v", a.code, a.body)
	}
	wantError(t, "a second incident", f.send(ops, http.MethodPost, "/v1/incidents", `{"reason": "again", "ttl": "1h"}`), http.StatusConflict, tollgate.EConflict, "already on", nil)
	wantError(t, "an incident with environments", f.send(ops, http.MethodPost, "/v1/incidents", `{"reason": "x", "ttl": "1h", "environments": ["a"]}`), http.StatusBadRequest, tollgate.EInvalid, "every environment", nil)
}
