package server

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/server/ui"
)

// htmlPage is a page of the history UI as a browser gets it, redirects not
// followed.
type htmlPage struct {
	code   int
	header http.Header
	body   string
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// page sends a request to the UI with the cookie given (none if "") and
// the headers given.
func (f *fixture) page(method, path, cookie string, form url.Values, headers ...string) htmlPage {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: ui.CookieName, Value: cookie})
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return htmlPage{code: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// getPage is a GET of the UI without a cookie that must answer 200 with a page.
func (f *fixture) getPage(path string) htmlPage {
	f.t.Helper()
	p := f.page(http.MethodGet, path, "", nil)
	if p.code != http.StatusOK {
		f.t.Fatalf("GET %s: %d\n%s", path, p.code, p.body)
	}
	p.requireHTML(f.t, "GET "+path)
	return p
}

// requireHTML checks what every page carries: HTML and the security policy.
func (p htmlPage) requireHTML(t *testing.T, what string) {
	t.Helper()
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q, want text/html", what, ct)
	}
	if csp := p.header.Get("Content-Security-Policy"); csp != ui.ContentSecurityPolicy || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("%s: Content-Security-Policy %q", what, csp)
	}
	if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: headers %v", what, p.header)
	}
}

// rows are the decision IDs of the table, in order.
func (p htmlPage) rows() []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<a href="/ui/decisions/([0-9a-f-]+)">`).FindAllStringSubmatch(p.body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// link is the href of the element with the id given, "" if none.
func (p htmlPage) link(id string) string {
	m := regexp.MustCompile(`<a href="([^"]*)" id="` + id + `">`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// uiHistory records four decisions: Monday 10:00 Paris, main (accepted)
// and feature/x (refused: branch); Saturday, the same two (refused: the
// shipped policy's freeze, window and weekend; and those + branch). It returns their IDs in that order.
func uiHistory(f *fixture) (accepted, branch, weekend, both string) {
	f.t.Helper()
	featureBranch := strings.Replace(exampleRequest, `"branch":"main"`, `"branch":"feature/x"`, 1)
	ids := make([]string, 0, 4)
	for _, step := range []struct{ now, body string }{
		{"2026-11-23T10:00:00+01:00", exampleRequest},
		{"2026-11-23T10:00:01+01:00", featureBranch},
		{"2026-11-28T10:00:00+01:00", exampleRequest},
		{"2026-11-28T10:00:01+01:00", featureBranch},
	} {
		f.setNow(step.now)
		code, body := f.post("/v1/evaluate", step.body)
		if code != http.StatusOK {
			f.t.Fatalf("evaluate: %d %v", code, body)
		}
		ids = append(ids, body["decision_id"].(string))
	}
	return ids[0], ids[1], ids[2], ids[3]
}

func TestHistoryPageTableFilters(t *testing.T) {
	f := newFixture(t)
	accepted, branch, weekend, both := uiHistory(f)
	for _, tc := range []struct {
		query string
		want  []string // newest first
	}{
		{"", []string{both, weekend, branch, accepted}},
		{"?status=refused", []string{both, weekend, branch}},
		{"?status=accepted", []string{accepted}},
		{"?reason=branch_not_allowed", []string{both, branch}},
		{"?reason=weekend_violation&status=refused", []string{both, weekend}},
		{"?reason=cooldown", nil},
		{"?project=service-api", []string{both, weekend, branch, accepted}},
		{"?project=billing", nil},
		{"?since=2026-11-25", []string{both, weekend}},
		{"?until=2026-11-25", []string{branch, accepted}},
		{"?since=2026-11-28T09:00&until=2026-11-28T09:00:01", []string{weekend}}, // datetime-local, UTC
		{"?since=2026-11-23T09:00:00Z&until=2026-11-23T09:00:01Z", []string{accepted}},
		// A form sends every field, the empty ones too.
		{"?project=&status=&reason=&since=&until=", []string{both, weekend, branch, accepted}},
	} {
		p := f.getPage("/ui/" + tc.query)
		if got := p.rows(); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("/ui/%s: rows %v, want %v", tc.query, got, tc.want)
		}
		if len(tc.want) == 0 && !strings.Contains(p.body, "No decision matches these filters") {
			t.Errorf("/ui/%s: no empty-table note", tc.query)
		}
	}
	// The filters stay in the form.
	p := f.getPage("/ui/?status=refused&reason=weekend_violation&project=service-api")
	for _, want := range []string{`<option value="refused" selected>`, `id="f-reason" list="codes" value="weekend_violation"`, `id="f-project" value="service-api"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("filtered page lacks %s", want)
		}
	}
}

func TestHistoryPagePaging(t *testing.T) {
	f := newFixture(t)
	accepted, branch, weekend, both := uiHistory(f)
	for _, tc := range []struct {
		first string
		pages [][]string
	}{
		{"/ui/?limit=3", [][]string{{both, weekend, branch}, {accepted}}},
		{"/ui/?limit=2&status=refused", [][]string{{both, weekend}, {branch}}},
		// The reason code is matched here, not by the store: a page ends
		// inside the store's page and the next one carries on after it.
		{"/ui/?limit=1&reason=branch_not_allowed", [][]string{{both}, {branch}}},
		{"/ui/?limit=1&reason=weekend_violation", [][]string{{both}, {weekend}}},
	} {
		path := tc.first
		for i, want := range tc.pages {
			p := f.getPage(path)
			if got := p.rows(); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("%s page %d (%s): rows %v, want %v", tc.first, i+1, path, got, want)
			}
			next := p.link("next")
			if i > 0 && p.link("first") != tc.first {
				t.Errorf("%s page %d: first page link %q", tc.first, i+1, p.link("first"))
			}
			if i == len(tc.pages)-1 {
				if next != "" && len(f.getPage(next).rows()) != 0 {
					t.Errorf("%s: the last page links to a page with rows: %s", tc.first, next)
				}
				break
			}
			if next == "" {
				t.Fatalf("%s page %d has no next page link", tc.first, i+1)
			}
			path = next
		}
	}
}

func TestHistoryPageChart(t *testing.T) {
	f := newFixture(t)
	uiHistory(f)
	// One more refusal for a branch only: the top reason.
	f.setNow("2026-11-23T11:00:00+01:00")
	f.post("/v1/evaluate", strings.Replace(exampleRequest, `"branch":"main"`, `"branch":"feature/y"`, 1))
	// Older than the chart's 30 days: in the table, not in the chart.
	f.setNow("2026-10-01T10:00:00+02:00")
	f.post("/v1/evaluate", exampleRequest)
	f.setNow("2026-11-28T12:00:00+01:00")
	p := f.getPage("/ui/")
	if len(p.rows()) != 6 {
		t.Fatalf("rows %v, want 6", p.rows())
	}
	if !strings.Contains(p.body, "1 accepted, 4 refused from 2026-10-30 to 2026-11-29") {
		t.Errorf("chart totals missing:\n%s", p.body)
	}
	for _, want := range []string{
		"<title>2026-11-23: 1 accepted, 2 refused</title>",
		"<title>2026-11-28: 0 accepted, 2 refused</title>",
		"<title>2026-11-27: 0 accepted, 0 refused</title>",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("chart lacks %s", want)
		}
	}
	// Top refusal reasons: most first, ties by code; each links to its refusals.
	top := regexp.MustCompile(`reason=([a-z_]+)"><code>[a-z_]+</code></a></td><td>(\d+)</td>`).FindAllStringSubmatch(p.body, -1)
	var got []string
	for _, m := range top {
		got = append(got, m[1]+"="+m[2])
	}
	if strings.Join(got, " ") != "branch_not_allowed=3 freeze_active=2 time_window_violation=2 weekend_violation=2" {
		t.Errorf("top refusal reasons %v", got)
	}
	// The chart follows the project filter.
	if p := f.getPage("/ui/?project=billing"); !strings.Contains(p.body, "0 accepted, 0 refused") || !strings.Contains(p.body, "No refusal in this window") {
		t.Errorf("chart of another project:\n%s", p.body)
	}
}

func TestHistoryPageBadFilters(t *testing.T) {
	f := newFixture(t)
	uiHistory(f)
	for query, want := range map[string]string{
		"?status=maybe":                         `status must be accepted or refused, got &#34;maybe&#34;`,
		"?reason=Freeze%20Active":               "reason must be a reason code",
		"?since=yesterday":                      "since must be a UTC time",
		"?until=2026-13-01":                     "until must be a UTC time",
		"?since=2026-11-25&until=2026-11-24":    "must be before until",
		"?limit=0":                              "limit must be a number from 1 to 500",
		"?limit=501":                            "limit must be a number from 1 to 500",
		"?cursor=!!":                            "invalid cursor",
		"?colour=red":                           `unknown query parameter &#34;colour&#34;`,
		"?reason=cooldown&cursor=bm90LWEtY3Vyc": "invalid cursor",
	} {
		p := f.page(http.MethodGet, "/ui/"+query, "", nil)
		p.requireHTML(t, query)
		if p.code != http.StatusBadRequest || !strings.Contains(p.body, want) || !strings.Contains(p.body, `href="/ui/"`) {
			t.Errorf("/ui/%s: %d, want 400 and a page saying %q:\n%s", query, p.code, want, p.body)
		}
	}
	p := f.page(http.MethodGet, "/ui/decisions/"+uuid.NewString(), "", nil)
	p.requireHTML(t, "unknown decision")
	if p.code != http.StatusNotFound || !strings.Contains(p.body, "404 Not Found") {
		t.Errorf("unknown decision: %d\n%s", p.code, p.body)
	}
	if p := f.page(http.MethodGet, "/ui/nothing", "", nil); p.code != http.StatusNotFound || !strings.Contains(p.body, "<h1>404 Not Found</h1>") {
		t.Errorf("unknown page: %d\n%s", p.code, p.body)
	}
	if p := f.page(http.MethodGet, "/ui", "", nil); p.code != http.StatusMovedPermanently || p.header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d %v", p.code, p.header)
	}
	if p := f.page(http.MethodGet, "/ui/assets/style.css", "", nil); p.code != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") || !strings.Contains(p.body, ".bar-refused") {
		t.Errorf("stylesheet: %d %v", p.code, p.header)
	}
	f.store.Close()
	if p := f.page(http.MethodGet, "/ui/", "", nil); p.code != http.StatusServiceUnavailable || !strings.Contains(p.body, "503 Service Unavailable") {
		t.Errorf("store closed: %d\n%s", p.code, p.body)
	}
}

func TestHistoryPageDecisionDetail(t *testing.T) {
	f := newFixture(t)
	_, _, _, both := uiHistory(f)
	p := f.getPage("/ui/decisions/" + both)
	for _, want := range []string{
		`<code id="decision-id">` + both + `</code>`,
		`<p class="status refused" id="status">refused</p>`,
		`<dd id="evaluated-at">2026-11-28 09:00:01Z</dd>`,
		"<code>weekend_violation</code>", "<code>branch_not_allowed</code>",
		`Branch &#34;feature/x&#34; may not run pipeline &#34;deploy-prod&#34;`, // the message
		`<code id="bundle-revision">` + f.engine.Status().Revision + `</code>`,
		`<dd id="identity">` + tollgate.DevIdentity + `</dd>`,
		`&#34;branch&#34;: &#34;feature/x&#34;`,              // the request
		`&#34;run_id&#34;: &#34;123456789&#34;`,              // its metadata
		`&#34;now&#34;: &#34;2026-11-28T09:00:01Z&#34;`,      // the context
		`&#34;status&#34;: &#34;valid&#34;`,                  // its licence
		"<h2>Waived reasons</h2>\n\n<p class=\"none\">None.", // none waived
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("decision page lacks %s\n%s", want, p.body)
		}
	}
}

// TestHistoryPageEscapes: what CI sent is shown as text, never as markup.
func TestHistoryPageEscapes(t *testing.T) {
	f := newFixture(t)
	evil := `<script>alert("x")</script>`
	code, body := f.post("/v1/evaluate", strings.Replace(exampleRequest, "github-actions", strings.ReplaceAll(evil, `"`, `\"`), 1))
	if code != http.StatusOK {
		t.Fatalf("evaluate: %d %v", code, body)
	}
	p := f.getPage("/ui/decisions/" + body["decision_id"].(string))
	if strings.Contains(p.body, "<script") || !strings.Contains(p.body, `&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;`) {
		t.Errorf("the initiator is not escaped:\n%s", p.body)
	}
	p = f.getPage("/ui/?project=" + url.QueryEscape(`"><script>x</script>`))
	if strings.Contains(p.body, "<script") || !strings.Contains(p.body, `value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`) {
		t.Errorf("the project filter is not escaped:\n%s", p.body)
	}
}

func TestHistoryPageLogin(t *testing.T) {
	f := authFixture(t)
	admin := f.mint("admin", time.Time{}, tollgate.ScopeAdmin)
	reader := f.mint("auditor", time.Time{}, tollgate.ScopeRead)
	ci := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest)
	if a.code != http.StatusOK {
		t.Fatalf("evaluate: %d %v", a.code, a.body)
	}
	id := a.body["decision_id"].(string)

	// Without a cookie: the login form, remembering the page asked for.
	for _, path := range []string{"/ui/", "/ui/decisions/" + id, "/ui/?status=refused"} {
		p := f.page(http.MethodGet, path, "", nil)
		p.requireHTML(t, path)
		if p.code != http.StatusUnauthorized || !strings.Contains(p.body, `name="token"`) ||
			!strings.Contains(p.body, `name="next" value="`+html.EscapeString(path)+`"`) || strings.Contains(p.body, "<table") {
			t.Errorf("GET %s without a cookie: %d\n%s", path, p.code, p.body)
		}
	}
	if p := f.page(http.MethodGet, "/ui/login", "", nil); p.code != http.StatusOK || !strings.Contains(p.body, `name="next" value="/ui/"`) {
		t.Errorf("login form: %d\n%s", p.code, p.body)
	}

	login := func(token, next string, headers ...string) htmlPage {
		t.Helper()
		return f.page(http.MethodPost, "/ui/login", "", url.Values{"token": {token}, "next": {next}}, headers...)
	}
	for _, tc := range []struct {
		name, token string
		status      int
		want        string
	}{
		{"no token", "", http.StatusBadRequest, "Paste an API token with the read scope"},
		{"malformed", "not-a-token", http.StatusUnauthorized, "malformed token"},
		{"unknown", "tg_0123456789abcdef_" + strings.Repeat("ab", 32), http.StatusUnauthorized, "invalid token"},
		{"without read", ci, http.StatusForbidden, "token &#34;ci&#34; lacks the read scope"},
	} {
		p := login(tc.token, "/ui/", "Origin", f.srv.URL)
		if p.code != tc.status || !strings.Contains(p.body, tc.want) || p.header.Get("Set-Cookie") != "" {
			t.Errorf("login, %s: %d %v, want %d and %q\n%s", tc.name, p.code, p.header, tc.status, tc.want, p.body)
		}
	}
	for _, from := range [][]string{{"Origin", "https://evil.example"}, {"Origin", "null"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}} {
		if p := login(reader, "/ui/", from...); p.code != http.StatusForbidden || p.header.Get("Set-Cookie") != "" {
			t.Errorf("login with %s: %s: %d %v", from[0], from[1], p.code, p.header)
		}
	}
	if p := login(reader, "/ui/", "Sec-Fetch-Site", "same-origin"); p.code != http.StatusSeeOther {
		t.Errorf("login with Sec-Fetch-Site: same-origin: %d", p.code)
	}

	p := login(reader, "/ui/?status=refused", "Origin", f.srv.URL)
	cookie := (&http.Response{Header: p.header}).Cookies()
	if p.code != http.StatusSeeOther || p.header.Get("Location") != "/ui/?status=refused" || len(cookie) != 1 {
		t.Fatalf("login: %d %v", p.code, p.header)
	}
	if c := cookie[0]; c.Name != ui.CookieName || c.Value != reader || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || c.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, not Secure over HTTP", c)
	}
	for next, want := range map[string]string{"https://evil.example/": "/ui/", "//evil.example/ui/": "/ui/", "/ui/login": "/ui/", "/v1/tokens": "/ui/", "/ui/decisions/" + id: "/ui/decisions/" + id} {
		if p := login(reader, next); p.header.Get("Location") != want {
			t.Errorf("login with next=%s: Location %q, want %q", next, p.header.Get("Location"), want)
		}
	}
	// Behind a TLS-terminating proxy the cookie is Secure.
	if p := login(reader, "/ui/", "X-Forwarded-Proto", "https"); !strings.Contains(p.header.Get("Set-Cookie"), "; Secure") {
		t.Errorf("login over HTTPS: Set-Cookie %q lacks Secure", p.header.Get("Set-Cookie"))
	}

	// With the cookie: the pages, and a way out.
	p = f.page(http.MethodGet, "/ui/", reader, nil)
	if p.code != http.StatusOK || len(p.rows()) != 1 || p.rows()[0] != id || !strings.Contains(p.body, "Log out") ||
		!strings.Contains(p.body, "<td>ci</td>") {
		t.Fatalf("GET /ui/ with the cookie: %d\n%s", p.code, p.body)
	}
	if p := f.page(http.MethodGet, "/ui/decisions/"+id, reader, nil); p.code != http.StatusOK || !strings.Contains(p.body, `<dd id="identity">ci</dd>`) {
		t.Errorf("decision page with the cookie: %d\n%s", p.code, p.body)
	}
	// The cookie is no API credential, and does not let an API call through.
	if p := f.page(http.MethodGet, "/v1/decisions", reader, nil); p.code != http.StatusUnauthorized {
		t.Errorf("GET /v1/decisions with the cookie only: %d", p.code)
	}
	// A cookie of a token without read is refused like its Bearer header.
	if p := f.page(http.MethodGet, "/ui/", ci, nil); p.code != http.StatusForbidden || strings.Contains(p.body, id) {
		t.Errorf("GET /ui/ with the cookie of a token without read: %d", p.code)
	}

	// Revoked: the next page is the login form, and the cookie is dropped.
	if a := f.send(bearer(admin), http.MethodDelete, "/v1/tokens/auditor", ""); a.code != http.StatusOK && a.code != http.StatusNoContent {
		t.Fatalf("revoke: %d %v", a.code, a.body)
	}
	p = f.page(http.MethodGet, "/ui/", reader, nil)
	if p.code != http.StatusUnauthorized || !strings.Contains(p.body, "Your session ended: token &#34;auditor&#34; was revoked") ||
		!strings.Contains(p.header.Get("Set-Cookie"), ui.CookieName+"=;") || strings.Contains(p.body, id) {
		t.Errorf("GET /ui/ with a revoked token's cookie: %d %v\n%s", p.code, p.header, p.body)
	}

	p = f.page(http.MethodPost, "/ui/logout", reader, url.Values{})
	if p.code != http.StatusSeeOther || p.header.Get("Location") != "/ui/login" || !strings.Contains(p.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %v", p.code, p.header)
	}
}

// TestHistoryPageDevNeedsNoLogin: with --dev the pages open without a
// token, and the login form only sends the user on.
func TestHistoryPageDevNeedsNoLogin(t *testing.T) {
	f := newFixture(t)
	if p := f.getPage("/ui/"); !strings.Contains(p.body, "development server: no authentication") || strings.Contains(p.body, "Log out") {
		t.Errorf("dev page:\n%s", p.body)
	}
	p := f.page(http.MethodPost, "/ui/login", "", url.Values{"next": {"/ui/?status=refused"}})
	if p.code != http.StatusSeeOther || p.header.Get("Location") != "/ui/?status=refused" || p.header.Get("Set-Cookie") != "" {
		t.Errorf("dev login: %d %v", p.code, p.header)
	}
}
