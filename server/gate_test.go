package server

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// gateFixture is a server with authentication and gate jobs on, its worker
// running, and the logins of the Gate view's tests: alice asks for
// exceptions (and may approve others'), bob and carol approve, reader only
// reads, ops declares freezes and incidents, ci submits jobs.
type gateFixture struct {
	*fixture
	alice, bob, carol, reader, ops, ci string
}

func newGateFixture(t *testing.T) *gateFixture {
	t.Helper()
	f := newFixtureWith(t, func(c *Config) {
		c.Jobs = &Jobs{Store: c.Store.(tollgate.JobStore), Floor: time.Second, Poll: 10 * time.Millisecond}
	})
	f.startWorker()
	forever := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g := &gateFixture{fixture: f,
		alice:  f.mint("alice", forever, tollgate.ScopeEvaluate, tollgate.ScopeRead, tollgate.ScopeApprove),
		bob:    f.mint("bob", forever, tollgate.ScopeRead, tollgate.ScopeApprove),
		carol:  f.mint("carol", forever, tollgate.ScopeRead, tollgate.ScopeApprove),
		reader: f.mint("reader", forever, tollgate.ScopeRead),
		ops:    f.mint("ops", forever, tollgate.ScopeAdmin, tollgate.ScopeRead),
		ci:     f.mint("ci", forever, tollgate.ScopeEvaluate, tollgate.ScopeRead),
	}
	f.token = g.ci // f.do and f.post, for jobs
	return g
}

// gatePage is GET /ui/gate with the cookie of token; it must answer 200.
func (g *gateFixture) gatePage(token string) htmlPage {
	g.t.Helper()
	p := g.page(http.MethodGet, "/ui/gate", token, nil)
	p.requireHTML(g.t, "GET /ui/gate")
	if p.code != http.StatusOK {
		g.t.Fatalf("GET /ui/gate: %d\n%s", p.code, p.body)
	}
	return p
}

// row is the text of the table row with the id given, tags removed.
func (p htmlPage) row(id string) string {
	m := regexp.MustCompile(`(?s)<tr id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</tr>`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], " ")), " "))
}

// csrf is the CSRF token of the page's forms, "" if it has none.
func (p htmlPage) csrf() string {
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return m[1]
}

// requestException asks for an exception as alice and returns its ID.
func (g *gateFixture) requestException(body string) string {
	g.t.Helper()
	a := g.send(bearer(g.alice), http.MethodPost, "/v1/exceptions", body)
	if a.code != http.StatusCreated {
		g.t.Fatalf("request exception: %d %v", a.code, a.body)
	}
	return a.body["id"].(string)
}

// exception is the exception as the API serves it.
func (g *gateFixture) exception(id string) map[string]any {
	g.t.Helper()
	a := g.send(bearer(g.reader), http.MethodGet, "/v1/exceptions/"+id, "")
	if a.code != http.StatusOK {
		g.t.Fatalf("GET exception: %d %v", a.code, a.body)
	}
	return a.body
}

// TestGateViewShowsEachReason: each environment open or closed and until
// when, for each reason the policy gives, the controls in force, the jobs
// waiting and the exceptions awaiting approval.
func TestGateViewShowsEachReason(t *testing.T) {
	g := newGateFixture(t)

	// Monday 10:00 Paris: production open until its window ends, staging
	// (no global rule) open with no closing known.
	p := g.gatePage(g.reader)
	if r := p.row("gate-production"); !strings.Contains(r, "production open 2026-11-23 17:00:00Z Closes with time_window_violation") {
		t.Errorf("production on Monday morning: %q", r)
	}
	if r := p.row("gate-staging"); r != "staging open no closing known" {
		t.Errorf("staging on Monday morning: %q", r)
	}
	if !strings.Contains(p.body, `href="/ui/gate" id="nav-gate"`) {
		t.Error("the navigation has no link to the Gate view")
	}

	// An emergency freeze of staging: closed until it expires, and listed.
	if a := g.send(bearer(g.ops), http.MethodPost, "/v1/freezes", `{"reason": "failover", "environments": ["staging"], "ttl": "2h"}`); a.code != http.StatusCreated {
		t.Fatalf("freeze: %d %v", a.code, a.body)
	}
	p = g.gatePage(g.reader)
	if r := p.row("gate-staging"); !strings.Contains(r, "staging closed 2026-11-23 11:00:00Z freeze_active") || !strings.Contains(r, "failover") ||
		!strings.Contains(r, "Clears at 2026-11-23 11:00:00Z") {
		t.Errorf("staging frozen: %q", r)
	}
	if !strings.Contains(p.body, `id="in-force"`) || !strings.Contains(p.body, "<td>failover</td><td>ops</td><td>2026-11-23 11:00:00Z</td>") {
		t.Errorf("the freeze in force is not listed:\n%s", p.body)
	}

	// An incident closes every gate until it ends.
	if a := g.send(bearer(g.ops), http.MethodPost, "/v1/incidents", `{"reason": "checkout down", "ttl": "30m"}`); a.code != http.StatusCreated {
		t.Fatalf("incident: %d %v", a.code, a.body)
	}
	p = g.gatePage(g.reader)
	if r := p.row("gate-production"); !strings.Contains(r, "production closed 2026-11-23 09:30:00Z incident_mode") || !strings.Contains(r, "hotfix") {
		t.Errorf("production during the incident: %q", r)
	}
	if !strings.Contains(p.body, "<td>incident</td>") || !strings.Contains(p.body, "checkout down") {
		t.Errorf("the incident in force is not listed")
	}

	// Black Friday's Saturday: the scheduled freeze, the window and the
	// weekend; the gate opens with Monday's window after the freeze.
	g.setNow("2026-11-28T10:00:00+01:00")
	g.api.cfg.Controls.Invalidate()
	p = g.gatePage(g.reader)
	r := p.row("gate-production")
	for _, want := range []string{"production closed 2026-11-30 07:00:00Z", "freeze_active", "Black Friday", "Clears at 2026-11-29 23:00:00Z",
		"time_window_violation", "Clears at 2026-11-30 07:00:00Z", "weekend_violation", "Clears at 2026-11-29 23:00:00Z"} {
		if !strings.Contains(r, want) {
			t.Errorf("production on Black Friday's Saturday: %q lacks %q", r, want)
		}
	}
	if !strings.Contains(p.body, "None. Scheduled freezes") {
		t.Error("the freeze and the incident have expired, and are still listed")
	}
}

// TestGateViewJobsAndExceptions: a waiting job with its next check; an
// exception awaiting approval, with approve and reject buttons for an
// approver only.
func TestGateViewJobsAndExceptions(t *testing.T) {
	g := newGateFixture(t)
	g.setNow("2026-11-23T19:00:00+01:00") // after the window
	code, j := g.post("/v1/jobs", jobBodyFor("run-1", time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), ""))
	if code != http.StatusAccepted {
		t.Fatalf("job: %d %v", code, j)
	}
	job := g.waitJob(j["job_id"].(string), state(tollgate.JobWaiting))
	id := g.requestException(`{"code": "time_window_violation", "project": "service-api", "pipeline": "deploy-prod",
		"environment": "production", "justification": "late fix", "expires_at": "2026-11-24T19:00:00+01:00"}`)

	p := g.gatePage(g.reader)
	if r := p.row("job-" + job["job_id"].(string)); r != job["job_id"].(string)+" waiting org/service-api deploy-prod main production time_window_violation 2026-11-24 07:00:00Z 2026-11-24 12:00:00Z" {
		t.Errorf("job row: %q", r)
	}
	if r := p.row("exception-" + id); !strings.Contains(r, "time_window_violation service-api / deploy-prod in production late fix alice 0 of 2") {
		t.Errorf("exception row: %q", r)
	}
	if strings.Contains(p.body, "/approve") || p.csrf() != "" || !strings.Contains(p.body, `id="no-approve"`) {
		t.Errorf("a login without approve sees the approve forms")
	}
	p = g.gatePage(g.bob)
	if !strings.Contains(p.body, `action="/ui/exceptions/`+id+`/approve"`) || !strings.Contains(p.body, `action="/ui/exceptions/`+id+`/reject"`) ||
		p.csrf() == "" || strings.Contains(p.body, "You requested it") {
		t.Errorf("an approver does not see the forms:\n%s", p.body)
	}
	if p := g.gatePage(g.alice); !strings.Contains(p.body, "You requested it: someone else must approve it.") {
		t.Errorf("the requester is not told that someone else must approve")
	}
}

// TestGateApproveAndReject: the forms change an exception only for an
// approver who is not its requester, with the CSRF token of the login and
// from this server's page; an approval wakes the waiting jobs.
func TestGateApproveAndReject(t *testing.T) {
	g := newGateFixture(t)
	g.setNow("2026-11-23T19:00:00+01:00")
	code, j := g.post("/v1/jobs", jobBodyFor("run-1", time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), ""))
	if code != http.StatusAccepted {
		t.Fatalf("job: %d %v", code, j)
	}
	jobID := j["job_id"].(string)
	g.waitJob(jobID, state(tollgate.JobWaiting))
	id := g.requestException(`{"code": "time_window_violation", "project": "service-api", "pipeline": "deploy-prod",
		"environment": "production", "justification": "late fix", "expires_at": "2026-11-24T19:00:00+01:00"}`)
	origin := []string{"Origin", g.srv.URL}
	csrf := map[string]string{}
	for name, token := range map[string]string{"alice": g.alice, "bob": g.bob, "carol": g.carol} {
		csrf[name] = g.gatePage(token).csrf()
	}
	if csrf["bob"] == csrf["carol"] {
		t.Fatal("two logins have the same CSRF token")
	}
	post := func(token, action, exception string, form url.Values, headers ...string) htmlPage {
		t.Helper()
		return g.page(http.MethodPost, "/ui/exceptions/"+exception+"/"+action, token, form, headers...)
	}
	unchanged := func(what string) {
		t.Helper()
		if e := g.exception(id); e["state"] != "requested" || e["approvals"] != nil {
			t.Errorf("%s changed the exception: %v", what, e)
		}
	}
	for _, tc := range []struct {
		name    string
		token   string
		form    url.Values
		headers []string
		status  int
		want    string
	}{
		{"no CSRF token", g.bob, url.Values{}, origin, http.StatusForbidden, "CSRF token is missing"},
		{"another login's CSRF token", g.bob, url.Values{"csrf": {csrf["carol"]}}, origin, http.StatusForbidden, "CSRF token is missing or not this login"},
		{"cross-origin", g.bob, url.Values{"csrf": {csrf["bob"]}}, []string{"Origin", "https://evil.example"}, http.StatusForbidden, "own Gate page"},
		{"cross-site", g.bob, url.Values{"csrf": {csrf["bob"]}}, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "own Gate page"},
		{"same-site, other origin", g.bob, url.Values{"csrf": {csrf["bob"]}}, []string{"Sec-Fetch-Site", "same-site", "Origin", g.srv.URL}, http.StatusForbidden, "own Gate page"},
		{"neither Origin nor Sec-Fetch-Site", g.bob, url.Values{"csrf": {csrf["bob"]}}, nil, http.StatusForbidden, "own Gate page"},
		{"without the approve scope", g.reader, url.Values{"csrf": {csrf["bob"]}}, origin, http.StatusForbidden, "lacks the approve scope"},
		{"self-approval", g.alice, url.Values{"csrf": {csrf["alice"]}}, origin, http.StatusForbidden, "alice requested exception " + id + ": someone else must approve it"},
		{"no login", "", url.Values{"csrf": {csrf["bob"]}}, origin, http.StatusUnauthorized, "Log in"},
	} {
		p := post(tc.token, "approve", id, tc.form, tc.headers...)
		p.requireHTML(t, tc.name)
		if p.code != tc.status || !strings.Contains(html.UnescapeString(p.body), tc.want) {
			t.Errorf("approve, %s: %d, want %d and %q\n%s", tc.name, p.code, tc.status, tc.want, p.body)
		}
		unchanged(tc.name)
	}
	// The cookie authorizes the forms, not the API.
	if p := g.page(http.MethodPost, "/v1/exceptions/"+id+"/approve", g.bob, nil, origin...); p.code != http.StatusUnauthorized {
		t.Errorf("POST /v1/exceptions/{id}/approve with the cookie only: %d", p.code)
	}
	unchanged("the API with the cookie")
	if p := post(g.bob, "approve", "no-such-exception", url.Values{"csrf": {csrf["bob"]}}, origin...); p.code != http.StatusNotFound {
		t.Errorf("approve an unknown exception: %d\n%s", p.code, p.body)
	}

	// Production needs two approvers: bob's makes one of two.
	p := post(g.bob, "approve", id, url.Values{"csrf": {csrf["bob"]}, "comment": {"checked"}}, "Sec-Fetch-Site", "same-origin")
	if p.code != http.StatusOK || !strings.Contains(p.body, `<p class="status accepted" id="state">requested</p>`) ||
		!strings.Contains(p.body, `<dd id="approvals">1 of 2 (bob)</dd>`) || !strings.Contains(p.body, "checked") {
		t.Fatalf("bob's approval: %d\n%s", p.code, p.body)
	}
	if p := post(g.bob, "approve", id, url.Values{"csrf": {csrf["bob"]}}, origin...); p.code != http.StatusConflict ||
		!strings.Contains(p.body, "bob has already approved") {
		t.Errorf("bob approves twice: %d\n%s", p.code, p.body)
	}
	// Bob's approval woke the job: its check (still refused: one approval
	// of two) is done before carol approves. (A wake-up that comes while a
	// worker checks the job is lost: see the report of this branch.)
	g.waitJob(jobID, func(j map[string]any) bool { return j["state"] == "waiting" && len(j["decisions"].([]any)) == 2 })
	decisions := 2

	// Carol's approves it, and the waiting job is checked at once: the
	// exception waives the window, so it is accepted before its next check.
	p = post(g.carol, "approve", id, url.Values{"csrf": {csrf["carol"]}}, origin...)
	if p.code != http.StatusOK || !strings.Contains(p.body, `id="state">approved</p>`) || !strings.Contains(p.body, "2 of 2 (bob) (carol)") {
		t.Fatalf("carol's approval: %d\n%s", p.code, p.body)
	}
	woken := g.waitJob(jobID, func(j map[string]any) bool { return j["state"] != string(tollgate.JobWaiting) })
	if woken["state"] != string(tollgate.JobAccepted) || len(woken["decisions"].([]any)) != decisions+1 {
		t.Errorf("the job after the approval: %v, want accepted by one more check", woken)
	}
	if p := post(g.bob, "reject", id, url.Values{"csrf": {csrf["bob"]}}, origin...); p.code != http.StatusConflict ||
		!strings.Contains(p.body, "cannot be rejected") {
		t.Errorf("reject an approved exception: %d\n%s", p.code, p.body)
	}

	// Reject.
	other := g.requestException(`{"code": "branch_not_allowed", "project": "service-api", "environment": "staging",
		"justification": "demo", "expires_at": "2026-11-24T19:00:00+01:00"}`)
	if p := post(g.bob, "reject", other, url.Values{"csrf": {csrf["bob"]}}, origin...); p.code != http.StatusOK ||
		!strings.Contains(p.body, `<p class="status refused" id="state">rejected</p>`) {
		t.Errorf("reject: %d\n%s", p.code, p.body)
	}
	if e := g.exception(other); e["state"] != "rejected" {
		t.Errorf("after the reject: %v", e)
	}
	if p := g.gatePage(g.bob); strings.Contains(p.body, "exception-"+other) || strings.Contains(p.body, "exception-"+id) {
		t.Errorf("decided exceptions are still awaiting approval on the page")
	}
}

// TestGateFormsWithTheHeader: a script that sends the Authorization header
// (no cookie) needs no CSRF token, and gets the same rules: the scope, and
// no self-approval.
func TestGateFormsWithTheHeader(t *testing.T) {
	g := newGateFixture(t)
	id := g.requestException(`{"code": "branch_not_allowed", "project": "service-api", "environment": "staging",
		"justification": "demo", "expires_at": "2026-11-24T10:00:00+01:00"}`)
	if a := g.send(bearer(g.reader), http.MethodPost, "/ui/exceptions/"+id+"/approve", ""); a.code != http.StatusForbidden {
		t.Errorf("approve with a read token: %d", a.code)
	}
	if a := g.send(bearer(g.alice), http.MethodPost, "/ui/exceptions/"+id+"/approve", ""); a.code != http.StatusForbidden {
		t.Errorf("self-approval with the header: %d", a.code)
	}
	if e := g.exception(id); e["state"] != "requested" {
		t.Fatalf("refused approvals changed the exception: %v", e)
	}
	if p := g.page(http.MethodGet, "/ui/gate", "", nil, "Authorization", bearer(g.bob)); p.code != http.StatusOK ||
		!strings.Contains(p.body, `action="/ui/exceptions/`+id+`/approve"`) {
		t.Errorf("the Gate view for an approver's header: %d, the buttons missing", p.code)
	}
	if a := g.send(bearer(g.bob), http.MethodPost, "/ui/exceptions/"+id+"/approve", ""); a.code != http.StatusOK {
		t.Errorf("approve with the header: %d", a.code)
	}
	if e := g.exception(id); e["state"] != "approved" {
		t.Errorf("after the approval: %v", e)
	}
}

// TestGateViewWithoutTheGateRule: a bundle without gate.rego cannot say
// whether the gates are open: the page says so (500), and shows no gate.
func TestGateViewWithoutTheGateRule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(dir, os.DirFS("../bundles/tollgate")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gate.rego", "gate_test.rego"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	engine, err := rego.NewEngine(context.Background(), dir, rego.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(c *Config) {
		c.Dev, c.Engine, c.Gate.Policies, c.Controls.Policies = true, engine, engine, engine
	})
	p := f.page(http.MethodGet, "/ui/gate", "", nil)
	p.requireHTML(t, "GET /ui/gate")
	if p.code != http.StatusInternalServerError || !strings.Contains(p.body, "cannot say whether the gates are open") ||
		!strings.Contains(p.body, "data.tollgate.gate.environments is undefined") || strings.Contains(p.body, `id="gates"`) {
		t.Errorf("GET /ui/gate with a bundle without gate.rego: %d\n%s", p.code, p.body)
	}
}
