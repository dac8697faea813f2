package test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser of the history page's test: $CHROME, or
// Debian's chromium on PATH (.ci/run installs it). The test fails without
// one: a browser test that skips proves nothing.
func chromium(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("CHROME"); path != "" {
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("no Chromium: install Debian's chromium (apt-get install chromium; .ci/run does it) or set CHROME to a Chrome or Chromium binary")
	return ""
}

// browserTimeout bounds the whole browser session, start included: a
// loaded CI machine starts Chromium slowly.
const browserTimeout = 3 * time.Minute

// stepTimeout bounds one step of the test in the browser.
const stepTimeout = 45 * time.Second

// browser starts a headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(1280, 1024),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(cancelBrowser)
	// The first run starts the browser, for as long as ctx lives: the
	// steps then run with shorter deadlines of their own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	return ctx
}

// waitURL waits until the page's address contains want: the form was sent
// and the new page is there.
func waitURL(want string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for {
			at, err := chromedp.Location()(ctx, t)
			if err != nil {
				return chromedp.Void{}, err
			}
			if strings.Contains(at, want) {
				return chromedp.WaitReady(chromedp.CSS("body"))(ctx, t)
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// step runs steps in the browser within stepTimeout; if they fail, the
// test fails with what it was doing, the page's address and its HTML.
func step(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(stepCtx, steps...); err != nil {
		at, _ := chromedp.Run(ctx, chromedp.Location())
		page, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		t.Fatalf("browser: %s: %v\nat %s:\n%s", what, err, at, page)
	}
}

// rowIDs are the decision IDs of the table shown, in order.
const rowIDs = `[...document.querySelectorAll("#decisions tbody tr td:first-child a")].map(a => a.href.split("/").pop())`

// TestHistoryPageInABrowser: an auditor logs in with a read-only token,
// filters the table to the refusals and opens one, in a real Chromium
// against the real server.
func TestHistoryPageInABrowser(t *testing.T) {
	ctx := browser(t)
	dataDir := t.TempDir()
	auditor := createToken(t, dataDir, "auditor", "read")
	s := startServer(t, serverOptions{auth: true, dataDir: dataDir})
	accepted := s.evaluate(t, req("org/e2e", "main", "deploy", envProduction))
	frozen := s.evaluate(t, req("org/e2e", "main", "deploy", envFrozen))
	unmanaged := s.evaluate(t, req("org/nobody", "main", "deploy", envProduction))
	if accepted.Status != "accepted" || frozen.Status != "refused" || unmanaged.Status != "refused" {
		t.Fatalf("decisions: %s, %s, %s", accepted.Status, frozen.Status, unmanaged.Status)
	}
	revision := s.bundleStatus(t).Revision

	read := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		return v
	}
	ids := func() []string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](rowIDs))
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		return v
	}

	// Not logged in: the login form.
	step(t, ctx, "open the page", chromedp.Navigate(s.base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	if title := read(chromedp.Title()); !strings.HasPrefix(title, "Log in") {
		t.Errorf("first page %q, want the login form", title)
	}
	step(t, ctx, "log in",
		chromedp.SendKeys(chromedp.ID("token"), auditor),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("decisions")))
	if got, want := ids(), []string{unmanaged.ID, frozen.ID, accepted.ID}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("table %v, want %v (newest first)", got, want)
	}
	if totals := read(chromedp.Text(chromedp.ID("totals"))); !strings.Contains(totals, "1 accepted, 2 refused") {
		t.Errorf("chart totals %q", totals)
	}

	// Only the refusals.
	step(t, ctx, "filter the refusals",
		chromedp.SetValue(chromedp.ID("f-status"), "refused"),
		chromedp.Click(chromedp.ID("apply")),
		waitURL("status=refused"),
		chromedp.WaitVisible(chromedp.ID("decisions")))
	statuses, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#decisions tbody tr td.status")].map(td => td.textContent.trim())`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if got, want := ids(), []string{unmanaged.ID, frozen.ID}; strings.Join(got, " ") != strings.Join(want, " ") ||
		strings.Join(statuses, " ") != "refused refused" {
		t.Errorf("refused table %v %v, want %v", got, statuses, want)
	}

	// And the freeze among them, opened.
	step(t, ctx, "filter the freeze and open it",
		chromedp.SendKeys(chromedp.ID("f-reason"), "freeze_active"),
		chromedp.Click(chromedp.ID("apply")),
		waitURL("reason=freeze_active"),
		chromedp.Click(chromedp.CSS("#decisions tbody tr td:first-child a")),
		waitURL("/ui/decisions/"),
		chromedp.WaitVisible(chromedp.ID("decision-id")))
	if id, status := read(chromedp.Text(chromedp.ID("decision-id"))), read(chromedp.Text(chromedp.ID("status"))); id != frozen.ID || status != "refused" {
		t.Errorf("decision page: id %q status %q, want %s refused", id, status, frozen.ID)
	}
	if reasons := read(chromedp.Text(chromedp.CSS("table.reasons"))); !strings.Contains(reasons, "freeze_active") ||
		!strings.Contains(reasons, "End-to-end test freeze") {
		t.Errorf("decision page reasons:\n%s", reasons)
	}
	if request := read(chromedp.Text(chromedp.ID("request"))); !strings.Contains(request, `"environment": "frozen"`) ||
		!strings.Contains(request, `"repository": "org/e2e"`) {
		t.Errorf("decision page request:\n%s", request)
	}
	if rev, identity := read(chromedp.Text(chromedp.ID("bundle-revision"))), read(chromedp.Text(chromedp.ID("identity"))); rev != revision || identity != "e2e" {
		t.Errorf("decision page: bundle revision %q identity %q, want %q and e2e", rev, identity, revision)
	}
}

// TestGateViewInABrowser: an approver logs in, sees the frozen environment
// closed until the freeze's end and the job waiting on it with its next
// check, and approves the requester's exception by clicking: it is
// approved, and the job it lets through is accepted. The requester, logged
// in, clicks approve on their own exception: 403, and the page says why.
// A real Chromium against the real server.
func TestGateViewInABrowser(t *testing.T) {
	ctx := browser(t)
	dataDir := t.TempDir()
	approver := createToken(t, dataDir, "approver", "read,approve")
	requester := createToken(t, dataDir, "requester", "evaluate,read,approve")
	s := startServer(t, serverOptions{auth: true, dataDir: dataDir})

	var policy struct {
		Freezes []struct{ ID, End string } `json:"freezes"`
	}
	raw, err := os.ReadFile(filepath.Join(s.bundle, "config", "global_policy", "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &policy); err != nil || len(policy.Freezes) != 1 {
		t.Fatalf("the test bundle's freezes: %v %+v", err, policy)
	}
	freezeEnd, err := time.Parse(time.RFC3339, policy.Freezes[0].End)
	if err != nil {
		t.Fatal(err)
	}

	// A job waits for the freeze; the requester asks for an exception
	// that waives it, and for another one.
	code, raw := s.postJSON(t, "/v1/jobs", map[string]any{"repository": "org/e2e", "branch": "main", "pipeline": "deploy",
		"metadata": map[string]string{"run_id": "gate-view", "environment": envFrozen}, "wait_until": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)})
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %s", code, raw)
	}
	jobID := decode[map[string]any](t, raw)["job_id"].(string)
	var job map[string]any
	eventually(t, 30*time.Second, "the job waits for the freeze", func() bool {
		_, raw := s.get(t, "/v1/jobs/"+jobID)
		job = decode[map[string]any](t, raw)
		return job["state"] == "waiting"
	})
	nextCheck, err := time.Parse(time.RFC3339Nano, job["next_check_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	exception := func(justification string) string {
		t.Helper()
		body := mustJSON(t, map[string]any{"code": "freeze_active", "project": "e2e", "pipeline": "deploy", "environment": envFrozen,
			"justification": justification, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		code, _, raw := s.sendAs(t, requester, http.MethodPost, "/v1/exceptions", body)
		if code != http.StatusCreated {
			t.Fatalf("POST /v1/exceptions: %d %s", code, raw)
		}
		return decode[map[string]any](t, raw)["id"].(string)
	}
	waiver := exception("hotfix for the checkout")
	own := exception("another one")

	read := func(a chromedp.Action[string]) string {
		t.Helper()
		stepCtx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		v, err := chromedp.Run(stepCtx, a)
		if err != nil {
			page, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("browser: %v\n%s", err, page)
		}
		return strings.Join(strings.Fields(v), " ")
	}
	login := func(token string) {
		t.Helper()
		step(t, ctx, "log in",
			chromedp.Navigate(s.base+"/ui/login"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Click(chromedp.ID("login")),
			chromedp.WaitVisible(chromedp.ID("nav-gate")),
			chromedp.Click(chromedp.ID("nav-gate")),
			waitURL("/ui/gate"),
			chromedp.WaitVisible(chromedp.ID("gates")))
	}

	login(approver)
	utc := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
	if row := read(chromedp.Text(chromedp.ID("gate-" + envFrozen))); !strings.HasPrefix(row, envFrozen+" closed "+utc(freezeEnd)+" freeze_active") ||
		!strings.Contains(row, "End-to-end test freeze") {
		t.Errorf("the frozen environment: %q, want closed until %s by the freeze", row, utc(freezeEnd))
	}
	// A window every hour of every day, and weekends allowed: no closing.
	if row := read(chromedp.Text(chromedp.ID("gate-" + envProduction))); row != envProduction+" open no closing known" {
		t.Errorf("an environment that never closes: %q", row)
	}
	if row := read(chromedp.Text(chromedp.ID("job-" + jobID))); !strings.Contains(row, "waiting org/e2e deploy main "+envFrozen+" freeze_active "+utc(nextCheck)) {
		t.Errorf("the waiting job: %q, want its next check at %s", row, utc(nextCheck))
	}
	if row := read(chromedp.Text(chromedp.ID("exception-" + waiver))); !strings.Contains(row, "hotfix for the checkout requester 0 of 1") {
		t.Errorf("the exception awaiting approval: %q", row)
	}

	step(t, ctx, "approve the exception",
		chromedp.Click(chromedp.ID("approve-"+waiver)),
		waitURL("/ui/exceptions/"+waiver+"/approve"),
		chromedp.WaitVisible(chromedp.ID("state")))
	if state, approvals := read(chromedp.Text(chromedp.ID("state"))), read(chromedp.Text(chromedp.ID("approvals"))); state != "approved" || approvals != "1 of 1 (approver)" {
		t.Errorf("after the click: state %q approvals %q, want approved by approver", state, approvals)
	}
	code, _, raw = s.sendAs(t, approver, http.MethodGet, "/v1/exceptions/"+waiver, nil)
	if e := decode[map[string]any](t, raw); code != http.StatusOK || e["state"] != "approved" {
		t.Errorf("the exception in the API after the click: %d %v", code, e)
	}
	eventually(t, 30*time.Second, "the approval wakes the job and it is accepted", func() bool {
		_, raw := s.get(t, "/v1/jobs/"+jobID)
		return decode[map[string]any](t, raw)["state"] == "accepted"
	})

	// The requester cannot approve their own request.
	step(t, ctx, "log out", chromedp.Navigate(s.base+"/ui/gate"), chromedp.WaitVisible(chromedp.CSS("form.logout button")),
		chromedp.Click(chromedp.CSS("form.logout button")), waitURL("/ui/login"))
	login(requester)
	if note := read(chromedp.Text(chromedp.ID("exception-" + own))); !strings.Contains(note, "You requested it: someone else must approve it.") {
		t.Errorf("the requester's own exception: %q", note)
	}
	step(t, ctx, "approve one's own exception",
		chromedp.Click(chromedp.ID("approve-"+own)),
		waitURL("/ui/exceptions/"+own+"/approve"),
		chromedp.WaitVisible(chromedp.ID("message")))
	if title, message := read(chromedp.Title()), read(chromedp.Text(chromedp.ID("message"))); !strings.HasPrefix(title, "Forbidden") ||
		message != "requester requested exception "+own+": someone else must approve it" {
		t.Errorf("self-approval: title %q message %q, want Forbidden and why", title, message)
	}
	code, _, raw = s.sendAs(t, approver, http.MethodGet, "/v1/exceptions/"+own, nil)
	if e := decode[map[string]any](t, raw); code != http.StatusOK || e["state"] != "requested" || e["approvals"] != nil {
		t.Errorf("the exception after the self-approval: %d %v", code, e)
	}
}
