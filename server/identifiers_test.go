package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// field replaces the first `"name":"value"` of exampleRequest with raw
// JSON text, to build one malformed request per case.
func replaceIn(request, old, new string) string {
	if !strings.Contains(request, old) {
		panic("no " + old + " in the request")
	}
	return strings.Replace(request, old, new, 1)
}

// TestMalformedIdentifiersAreRefusedAndNotRecorded: each of these bodies
// was answered 200 and recorded before (encoding/json bends them into a
// request). Now each is a 400 naming the field, on evaluate and, inside
// "input", on simulate, and nothing reaches the history.
func TestMalformedIdentifiersAreRefusedAndNotRecorded(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.Dev, c.BodyLimit = true, DefaultBodyLimit })
	r := exampleRequest
	tests := []struct{ name, body, want string }{
		{"duplicate key", replaceIn(r, `"branch":"main"`, `"branch":"main","branch":"hotfix/x"`), `duplicate key "branch"`},
		{"duplicate nested key", replaceIn(r, `"environment":"production"`, `"environment":"staging","environment":"production"`), `duplicate key "metadata.environment"`},
		{"upper-case key", replaceIn(r, `"branch"`, `"BRANCH"`), `unknown field "BRANCH": field names are case-sensitive, did you mean "branch"?`},
		{"title-case key", replaceIn(r, `"repository"`, `"Repository"`), `did you mean "repository"?`},
		{"invalid UTF-8", replaceIn(r, `"main"`, "\"ma\xffin\""), `branch: invalid UTF-8`},
		{"lone surrogate", replaceIn(r, `"main"`, `"main\ud800"`), `branch: lone UTF-16 surrogate \ud800`},
		{"C1 control", replaceIn(r, `"github-actions"`, `"github-actions\u0085"`), `metadata.initiator must not contain control characters (found U+0085`},
		{"bidi override", replaceIn(r, `"org/service-api"`, `"org/service-api\u202e"`), `repository must not contain invisible formatting characters such as bidi overrides (found U+202E`},
		{"zero-width space", replaceIn(r, `"deploy-prod"`, `"deploy\u200b-prod"`), `pipeline must not contain invisible formatting characters`},
		{"no-break space", replaceIn(r, `"org/service-api"`, `"org/service\u00a0api"`), `repository must not contain blank, invisible or private characters other than the ASCII space (found U+00A0`},
		{"hangul filler", replaceIn(r, `"deploy-prod"`, `"deploy-prod\u3164"`), `pipeline must not contain blank, invisible or private characters`},
		{"branch of a megabyte", replaceIn(r, `"main"`, `"`+strings.Repeat("m", 1_000_000)+`"`), `branch is 1000000 bytes long: at most 255`},
		{"long run id", replaceIn(r, `"123456789"`, `"`+strings.Repeat("9", 300)+`"`), `metadata.run_id is 300 bytes long: at most 256`},
		{"branch git refuses", replaceIn(r, `"main"`, `"release/..x"`), `branch "release/..x" is not a branch name git accepts: it contains ".."`},
		{"branch with a space", replaceIn(r, `"main"`, `"main "`), `is not a branch name git accepts`},
		{"branch ending in .lock", replaceIn(r, `"main"`, `"main.lock"`), `a component ends with ".lock"`},
		{"scan_id with a control character", withField(r, `"scan_id": "01ab\u0085"`), `scan_id must not contain control characters`},
		{"stray brace after the body", r + `}`, `unexpected data after`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.post("/v1/evaluate", tt.body)
			if code != http.StatusBadRequest || body["error"] == nil || body["error"].(map[string]any)["code"] != tollgate.EInvalid ||
				!strings.Contains(errorMessage(body), tt.want) {
				t.Errorf("evaluate: got %d %.300v, want 400 with %q", code, body, tt.want)
			}
			if tt.name == "stray brace after the body" || strings.HasPrefix(tt.name, "scan_id") {
				return // simulate's envelope has its own trailing brace, and scan_id beside input
			}
			code, body = f.post("/v1/simulate", `{"input": `+tt.body+`}`)
			want := tt.want
			if strings.HasPrefix(want, `duplicate key "`) {
				want = strings.Replace(want, `"`, `"input.`, 1) // the pre-pass sees the path through the envelope
			}
			if code != http.StatusBadRequest || !strings.Contains(errorMessage(body), want) {
				t.Errorf("simulate: got %d %.300v, want 400 with %q", code, body, want)
			}
		})
	}
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("malformed requests were recorded: %d decisions", n)
	}
	if code, d := f.post("/v1/evaluate", replaceIn(r, `"main"`, `"release/2026.11"`)); code != http.StatusOK {
		t.Fatalf("a well-formed request after them: %d %v", code, d)
	}
}

// TestEveryJSONBodyIsExact: the other bodies the API accepts get the same
// decoding and the identifier rules for the names they record.
func TestEveryJSONBodyIsExact(t *testing.T) {
	f := newFixture(t)
	scan := `"scan": {"format": "trivy", "report": ` + f.report("trivy-empty.json") + `}`
	exception := `{"code": "branch_not_allowed", "project": "service-api", "justification": "demo", "expires_at": "2026-11-30T10:00:00+01:00"}`
	tests := []struct{ method, path, body, want string }{
		{"POST", "/v1/scans", `{"project": "service-api", "Project": "x", "artifact": "` + artifact + `", ` + scan + `}`, `unknown field "Project"`},
		{"POST", "/v1/scans", `{"project": "service-api", "artifact": "` + artifact + `", "artifact": "` + artifact + `", ` + scan + `}`, `duplicate key "artifact"`},
		{"POST", "/v1/scans", `{"project": "service-api\u202e", "artifact": "` + artifact + `", ` + scan + `}`, `project must not contain invisible formatting characters`},
		{"POST", "/v1/scans", withField(replaceIn(exampleRequest, `"main"`, `"a..b"`), `"project": "service-api", "artifact": "`+artifact+`", `+scan), `not a branch name git accepts`},
		{"POST", "/v1/scans", `{"project": "service-api", "artifact": "` + artifact + `", "scan": {"format": "trivy", "report": {"SchemaVersion": 2, "SchemaVersion": 3}}}`, `duplicate key "scan.report.SchemaVersion"`},
		{"POST", "/v1/exceptions", replaceIn(exception, `"justification"`, `"Justification"`), `did you mean "justification"?`},
		{"POST", "/v1/exceptions", replaceIn(exception, `"demo"`, `"approved\u202e by nobody"`), `justification must not contain invisible formatting characters`},
		{"POST", "/v1/exceptions", replaceIn(exception, `"branch_not_allowed"`, `"branch_not_allowed\u0085"`), `code must not contain control characters`},
		{"POST", "/v1/freezes", `{"reason": "release", "ttl": "1h", "ttl": "1000h"}`, `duplicate key "ttl"`},
		{"POST", "/v1/freezes", `{"reason": "release", "environments": ["production", "prod\u200buction"], "ttl": "1h"}`, `environments[1] must not contain invisible formatting characters`},
		{"POST", "/v1/incidents", `{"reason": "outage\u0000", "ttl": "1h"}`, `reason must not contain control characters`},
		{"POST", "/v1/tokens", `{"NAME": "ci", "scopes": ["read"]}`, `unknown field "NAME": field names are case-sensitive, did you mean "name"?`},
		{"POST", "/v1/tokens", `{"name": "ci", "scopes": ["read"], "scopes": ["admin"]}`, `duplicate key "scopes"`},
		{"POST", "/v1/impact", `{"limit": 5, "Limit": 500}`, `did you mean "limit"?`},
		{"POST", "/v1/impact", `{"config": {"projects": {"a": {}, "a": {}}}}`, `duplicate key "config.projects.a"`},
		{"POST", "/v1/simulate", `{"input": ` + exampleRequest + `, "config": {"global_policy": {"timezone": "UTC", "timezone": "Europe/Paris"}}}`, `duplicate key "config.global_policy.timezone"`},
	}
	for _, tt := range tests {
		code, body := f.do(tt.method, tt.path, "application/json", tt.body)
		if code != http.StatusBadRequest || !strings.Contains(errorMessage(body), tt.want) {
			t.Errorf("%s %s %.120s: got %d %v, want 400 with %q", tt.method, tt.path, tt.body, code, body, tt.want)
		}
	}
	for path, key := range map[string]string{"/v1/freezes": "freezes", "/v1/incidents": "incidents", "/v1/exceptions": "exceptions", "/v1/tokens": "tokens"} {
		if code, list := f.do(http.MethodGet, path, "", ""); code != http.StatusOK || len(list[key].([]any)) != 0 {
			t.Errorf("GET %s after refused bodies: %d %v, want none recorded", path, code, list)
		}
	}
	// A transition's comment is text: lines are fine, bidi overrides not.
	code, e := f.post("/v1/exceptions", exception)
	if code != http.StatusCreated {
		t.Fatalf("request an exception: %d %v", code, e)
	}
	code, body := f.post("/v1/exceptions/"+e["id"].(string)+"/reject", `{"comment": "no\u202e"}`)
	if code != http.StatusBadRequest || !strings.Contains(errorMessage(body), "comment must not contain invisible formatting characters") {
		t.Errorf("reject with a bidi override: %d %v", code, body)
	}
	code, body = f.do(http.MethodGet, "/v1/exceptions/"+e["id"].(string), "", "")
	if code != http.StatusOK || body["state"] != "requested" {
		t.Errorf("the refused transition changed the exception: %d %v", code, body)
	}
}

// TestSimulateTimesOutsideTheEvaluableRange: Rego counts time in int64
// nanoseconds, so a cooldown in 2263 wrapped around and was ignored, and
// the simulation accepted. Such times are now a 400.
func TestSimulateTimesOutsideTheEvaluableRange(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ extra, want string }{
		{`"context": {"cooldown": {"last_accepted_at": "2263-01-01T00:00:00Z"}}`, "context.cooldown.last_accepted_at 2263-01-01T00:00:00Z is outside the times the policy can evaluate"},
		{`"context": {"cooldown": {"last_accepted_at": "1677-01-01T00:00:00Z"}}`, "context.cooldown.last_accepted_at 1677-01-01T00:00:00Z is outside"},
		{`"at": "2262-04-12T00:00:00Z"`, "at 2262-04-12T00:00:00Z is outside the times the policy can evaluate, 1677-09-21T00:12:43Z to 2262-04-11T23:47:16Z"},
		{`"at": "9999-12-31T23:59:59Z"`, "at 9999-12-31T23:59:59Z is outside"},
	} {
		code, body := f.post("/v1/simulate", `{"input": `+exampleRequest+`, `+tt.extra+`}`)
		if code != http.StatusBadRequest || !strings.Contains(errorMessage(body), tt.want) {
			t.Errorf("%s: got %d %v, want 400 with %q", tt.extra, code, body, tt.want)
		}
	}
	// The last representable instant still works, and a cooldown that
	// ends after "at" refuses.
	code, d := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "at": "2262-04-11T23:00:00Z",
		"context": {"cooldown": {"last_accepted_at": "2262-04-11T22:50:00Z"}}}`)
	if code != http.StatusOK || !contains(reasonCodes(d), tollgate.CodeCooldown) {
		t.Fatalf("simulate at the end of the range: %d %v", code, d)
	}
}

// TestOversizedHeadersKeepTheErrorShape: headers over HeaderLimit are a
// JSON 431, not Go's plain-text answer (httptest's server reads headers up
// to Go's default, 1 MiB, as serve's MaxHeaderRead does).
func TestOversizedHeadersKeepTheErrorShape(t *testing.T) {
	f := newFixture(t)
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/evaluate", strings.NewReader(exampleRequest))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Padding", strings.Repeat("p", HeaderLimit))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body errorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge ||
		body.Error.Code != tollgate.EInvalid || body.Error.Message != "the request line and headers are larger than the limit of 64 KiB" {
		t.Fatalf("got %d %+v (%v)", resp.StatusCode, body, err)
	}
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("recorded %d decisions", n)
	}
	// Just under the limit is served.
	req.Header.Set("X-Padding", strings.Repeat("p", HeaderLimit-1024))
	req.Body = io.NopCloser(strings.NewReader(exampleRequest))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("headers under the limit: %d", resp.StatusCode)
	}
}

// TestURLIdentifiersAreChecked: the query and the path parameters are held
// to the body's identifier rules. Before, /ui/?project=<U+202E>… answered
// 200 and drew the bidi override into the filter box and the chart's
// heading, and an ID or filter of invalid UTF-8 reached the store (a 5xx on
// PostgreSQL); a filter given twice filtered on the first, silently.
func TestURLIdentifiersAreChecked(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ path, want string }{
		{"/v1/decisions?project=service-api%E2%80%AE", `query parameter "project" must not contain invisible formatting characters`},
		{"/v1/decisions?branch=main%C2%85", `query parameter "branch" must not contain control characters`},
		{"/v1/decisions?pipeline=%FF", `query parameter "pipeline" is not valid UTF-8`},
		{"/v1/decisions?status=accepted&status=refused", `"status" is given 2 times`},
		{"/v1/decisions?project=" + strings.Repeat("p", 5000), `query parameter "project" is 5000 bytes long`},
		{"/v1/exceptions?project=%00", `must not contain control characters`},
		{"/v1/decisions/%E2%80%AE0194", `path parameter id must not contain invisible formatting characters`},
		{"/v1/decisions/%FF/replay", `path parameter id is not valid UTF-8`},
		{"/v1/scans/" + strings.Repeat("a", 3000), `path parameter id is 3000 bytes long: at most 256`},
	} {
		code, body := f.do(http.MethodGet, tt.path, "", "")
		if code != http.StatusBadRequest || !strings.Contains(errorMessage(body), tt.want) {
			t.Errorf("GET %.80s: %d %.300v, want 400 with %q", tt.path, code, body, tt.want)
		}
	}
	if code, body := f.post("/v1/impact", `{"project": "service-api\u202e"}`); code != http.StatusBadRequest ||
		!strings.Contains(errorMessage(body), "project must not contain invisible formatting characters") {
		t.Errorf("impact with a bidi filter: %d %v", code, body)
	}
	code, _ := f.do(http.MethodDelete, "/v1/tokens/ci%E2%80%AE", "", "")
	if code != http.StatusBadRequest {
		t.Errorf("DELETE /v1/tokens/<bidi>: %d, want 400", code)
	}
	p := f.page(http.MethodGet, "/ui/?project=ipa-ecivres%E2%80%AE", "", nil)
	if p.code != http.StatusBadRequest || strings.Contains(p.body, "\u202e") {
		t.Errorf("GET /ui/?project=<U+202E>: %d, the page carries the override: %v", p.code, strings.Contains(p.body, "\u202e"))
	}
	if code, body := f.do(http.MethodGet, "/v1/decisions?project=service-api&status=refused", "", ""); code != http.StatusOK {
		t.Errorf("a well-formed filter: %d %v", code, body)
	}
}

// TestJSONBodiesInAnotherCharsetAreRefused: JSON is UTF-8; a body said to
// be UTF-16 or Latin-1 was read as UTF-8 all the same and recorded.
func TestJSONBodiesInAnotherCharsetAreRefused(t *testing.T) {
	f := newFixture(t)
	for _, ct := range []string{"application/json; charset=utf-16", "application/json; charset=iso-8859-1"} {
		code, body := f.do(http.MethodPost, "/v1/evaluate", ct, exampleRequest)
		if code != http.StatusUnsupportedMediaType || !strings.Contains(errorMessage(body), "JSON bodies are UTF-8") {
			t.Errorf("%s: %d %v, want 415", ct, code, body)
		}
	}
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("%d decisions recorded", n)
	}
	if code, body := f.do(http.MethodPost, "/v1/evaluate", "application/json; charset=UTF-8", exampleRequest); code != http.StatusOK {
		t.Fatalf("charset=UTF-8: %d %v", code, body)
	}
}
