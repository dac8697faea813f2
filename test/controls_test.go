package test

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/adapters/pgtest"
)

// control is a control as the API returns it.
type control struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	State   string `json:"state"`
	History []struct {
		By     string `json:"by"`
		Action string `json:"action"`
		To     string `json:"to"`
	} `json:"history"`
}

func (c control) actions() []string {
	var out []string
	for _, e := range c.History {
		out = append(out, e.By+":"+e.Action)
	}
	return out
}

// TestControls drives exceptions, emergency freezes and incident mode
// through the real binary with real tokens, on both stores: self-approval
// refused; an approved exception turns a refusal into an acceptance, keeps
// doing so across a restart, and stops at its expiry, which the worker
// records; an emergency freeze refuses, then lifts at its TTL; incident mode
// lets only hotfixes run until it is ended.
func TestControls(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			testControls(t, store)
		})
	}
}

func testControls(t *testing.T, store string) {
	bundle := newBundle(t)
	policyPath := filepath.Join(bundle, "config", "global_policy", "data.json")
	policy := decode[map[string]any](t, readFile(t, policyPath))
	policy["incident"] = map[string]any{"pipeline_types": []string{"hotfix"}}
	writeJSON(t, policyPath, policy)

	dataDir := t.TempDir()
	args := []string{"--expiry-interval", "200ms"}
	var storeArgs []string
	if store == "postgres" {
		storeArgs = []string{"--database-url", pgtest.Start(t).NewDatabase(t)}
		args = append(args, storeArgs...)
	}
	alice := createToken(t, dataDir, "alice", "evaluate,read", storeArgs...)
	bob := createToken(t, dataDir, "bob", "approve,read", storeArgs...)
	ops := createToken(t, dataDir, "ops", "admin,read", storeArgs...)
	s := startServer(t, serverOptions{bundle: bundle, dataDir: dataDir, args: args, auth: true})

	call := func(token, method, path string, body any, want int) []byte {
		t.Helper()
		var raw []byte
		if body != nil {
			raw = mustJSON(t, body)
		}
		code, _, out := s.sendAs(t, token, method, path, raw)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
		}
		return out
	}
	feature := req("org/service-api", "feature/demo", "deploy-staging", envStaging)
	if d := s.evaluate(t, feature); d.Status != "refused" || !slices.Equal(d.codes(), []string{"branch_not_allowed"}) {
		t.Fatalf("before the exception: %+v", d)
	}

	// Alice asks, cannot approve her own request; Bob approves.
	expires := time.Now().Add(20 * time.Second).UTC()
	e := decode[control](t, call(alice, http.MethodPost, "/v1/exceptions", map[string]any{
		"code": "branch_not_allowed", "project": "service-api", "environment": envStaging, "branch": "feature/*",
		"justification": "demo for the board", "expires_at": expires.Format(time.RFC3339Nano),
	}, http.StatusCreated))
	if e.State != "requested" {
		t.Fatalf("new exception: %+v", e)
	}
	code, _, raw := s.sendAs(t, alice, http.MethodPost, "/v1/exceptions/"+e.ID+"/approve", nil)
	requireError(t, code, raw, http.StatusForbidden, "forbidden", "") // alice lacks the approve scope
	code, _, raw = s.sendAs(t, s.token, http.MethodPost, "/v1/exceptions/"+e.ID+"/approve", nil)
	if code != http.StatusOK {
		t.Fatalf("approval by e2e: %d %s", code, raw)
	}
	// e2e has every scope; the exception was approved by someone else than
	// alice. Now the real self-approval case: bob asks, bob approves.
	own := decode[control](t, call(s.token, http.MethodPost, "/v1/exceptions", map[string]any{
		"code": "cooldown", "project": "service-api", "justification": "self", "expires_at": expires.Format(time.RFC3339Nano),
	}, http.StatusCreated))
	code, _, raw = s.sendAs(t, s.token, http.MethodPost, "/v1/exceptions/"+own.ID+"/approve", mustJSON(t, map[string]string{"comment": "mine"}))
	requireError(t, code, raw, http.StatusForbidden, "forbidden", "someone else must approve it")
	call(bob, http.MethodPost, "/v1/exceptions/"+own.ID+"/reject", map[string]string{"comment": "no"}, http.StatusOK)

	d := s.evaluate(t, feature)
	if d.Status != "accepted" {
		t.Fatalf("with the approved exception: %+v", d)
	}
	if _, rec := s.get(t, "/v1/decisions/"+d.ID); !strings.Contains(string(rec), `"exception_id":"`+e.ID+`"`) {
		t.Fatalf("the decision does not show the waived reason: %s", rec)
	}

	// A restart keeps every state: the exception still applies.
	s.stop(t)
	s = startServer(t, serverOptions{bundle: bundle, dataDir: dataDir, args: args, auth: true, token: s.token})
	if d := s.evaluate(t, feature); d.Status != "accepted" {
		t.Fatalf("after a restart: %+v", d)
	}

	// Emergency freeze of staging for 2 s: refused with its reason, then
	// accepted again once it expired.
	main := req("org/service-api", "main", "deploy-staging", envStaging)
	frz := decode[control](t, call(ops, http.MethodPost, "/v1/freezes", map[string]any{
		"reason": "database failover", "environments": []string{envStaging}, "ttl": "2s",
	}, http.StatusCreated))
	d = s.evaluate(t, main)
	if d.Status != "refused" || d.codes()[0] != "freeze_active" || !strings.Contains(d.Reasons[0].Message, "database failover") {
		t.Fatalf("during the emergency freeze: %+v", d)
	}
	eventually(t, 30*time.Second, "the freeze lifts at its TTL", func() bool { return s.evaluate(t, main).Status == "accepted" })
	eventually(t, 30*time.Second, "the worker expires the freeze", func() bool {
		return decode[control](t, call(ops, http.MethodGet, "/v1/freezes/"+frz.ID, nil, http.StatusOK)).State == "expired"
	})

	// Incident mode: only hotfixes run, every decision names the incident.
	inc := decode[control](t, call(ops, http.MethodPost, "/v1/incidents", map[string]any{"reason": "checkout down", "ttl": "1h"}, http.StatusCreated))
	d = s.evaluate(t, main)
	if d.Status != "refused" || d.codes()[0] != "incident_mode" {
		t.Fatalf("a deploy during the incident: %+v", d)
	}
	if _, rec := s.get(t, "/v1/decisions/"+d.ID); !strings.Contains(string(rec), `"incident_id":"`+inc.ID+`"`) {
		t.Fatalf("the decision does not carry the incident: %s", rec)
	}
	call(ops, http.MethodDelete, "/v1/incidents/"+inc.ID, map[string]string{"comment": "resolved"}, http.StatusOK)
	if d := s.evaluate(t, main); d.Status != "accepted" {
		t.Fatalf("after the incident: %+v", d)
	}

	// The exception stops at its expiry, and the worker records it.
	eventually(t, 60*time.Second, "the exception stops at its expiry", func() bool { return s.evaluate(t, feature).Status == "refused" })
	eventually(t, 30*time.Second, "the worker expires the exception", func() bool {
		e = decode[control](t, call(alice, http.MethodGet, "/v1/exceptions/"+e.ID, nil, http.StatusOK))
		return e.State == "expired"
	})
	if got := e.actions(); !slices.Equal(got, []string{"alice:create", "e2e:approve", "tollgate:expire"}) {
		t.Fatalf("history of the exception: %v", got)
	}
}

// TestControlsCLI drives the same lifecycle with the CLI commands, as people
// do: request, approve, list, revoke; freeze and lift; incident start and end.
func TestControlsCLI(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	alice := createToken(t, dataDir, "alice", "evaluate,read")
	bob := createToken(t, dataDir, "bob", "approve,read")
	ops := createToken(t, dataDir, "ops", "admin,read")
	s := startServer(t, serverOptions{dataDir: dataDir, auth: true})
	base := s.cliBase(t)
	cli := func(token string, wantCode int, args ...string) control {
		t.Helper()
		code, stdout, stderr := runTollgate(t, []string{"TOLLGATE_SERVER=" + base, "TOLLGATE_TOKEN=" + token}, nil, args...)
		if code != wantCode {
			t.Fatalf("tollgate %v: exit %d, want %d\nstdout %s\nstderr %s", args, code, wantCode, stdout, stderr)
		}
		if code != 0 {
			return control{}
		}
		return decode[control](t, []byte(stdout))
	}

	e := cli(alice, 0, "exception", "request", "--project", "service-api", "--code", "branch_not_allowed",
		"--environment", envStaging, "--branch", "feature/*", "--justification", "demo", "--ttl", "1h")
	if e.State != "requested" {
		t.Fatalf("request: %+v", e)
	}
	cli(alice, 2, "exception", "approve", e.ID) // no approve scope: the server's 403
	if e = cli(bob, 0, "exception", "approve", e.ID, "--comment", "ok"); e.State != "approved" {
		t.Fatalf("approve: %+v", e)
	}
	if d := s.evaluate(t, req("org/service-api", "feature/demo", "deploy-staging", envStaging)); d.Status != "accepted" {
		t.Fatalf("with the exception: %+v", d)
	}
	code, stdout, _ := runTollgate(t, []string{"TOLLGATE_SERVER=" + base, "TOLLGATE_TOKEN=" + alice}, nil, "exception", "list", "--state", "approved")
	if code != 0 || !strings.Contains(stdout, e.ID) {
		t.Fatalf("exception list: exit %d %s", code, stdout)
	}
	if e = cli(bob, 0, "exception", "revoke", e.ID); e.State != "revoked" {
		t.Fatalf("revoke: %+v", e)
	}

	f := cli(ops, 0, "freeze", "create", "--reason", "failover", "--environments", envStaging, "--ttl", "1h")
	if d := s.evaluate(t, req("org/service-api", "main", "deploy-staging", envStaging)); d.Status != "refused" {
		t.Fatalf("during the freeze: %+v", d)
	}
	if f = cli(ops, 0, "freeze", "lift", f.ID); f.State != "lifted" {
		t.Fatalf("lift: %+v", f)
	}
	i := cli(ops, 0, "incident", "start", "--reason", "checkout down", "--ttl", "30m")
	if i = cli(ops, 0, "incident", "end", i.ID, "--comment", "fixed"); i.State != "lifted" {
		t.Fatalf("end: %+v", i)
	}
	cli(ops, 2, "incident", "start", "--reason", "x") // no --ttl: the server's 400
}
