package server

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// TestRootRedirectsToHistoryPage: a browser pointed at the server got a
// JSON 404; it is sent to the history page, which asks for a token.
func TestRootRedirectsToHistoryPage(t *testing.T) {
	f := authFixture(t)
	resp, err := noRedirects.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET / without a token: %d, Location %q; want 301 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestTypeErrorsNameTheJSONField: a wrong type in a body that embeds a
// domain struct was reported with the Go type's name
// ("Request.repository", "ExceptionRequest.code").
func TestTypeErrorsNameTheJSONField(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ path, body, want string }{
		{"/v1/evaluate", `{"repository": 5, "branch": "main", "pipeline": "deploy-prod", "metadata": {"environment": "production"}}`,
			"repository must be a string, got number"},
		{"/v1/scans", `{"project": "service-api", "artifact": "sha256:` + strings.Repeat("a", 64) + `", "branch": 7}`,
			"branch must be a string, got number"},
		{"/v1/exceptions", `{"code": 5}`, "code must be a string, got number"},
	} {
		status, body := f.post(c.path, c.body)
		e, _ := body["error"].(map[string]any)
		if msg, _ := e["message"].(string); status != http.StatusBadRequest || msg != c.want {
			t.Errorf("POST %s %s: %d %v; want 400 %q", c.path, c.body, status, body, c.want)
		}
	}
}

// TestReadmeScopeTable: the README's scope table lists every route under
// the scope routeScopes gives it, and nothing else. It said "approve:
// exceptions (reserved)" while approve guarded four routes, and left out
// the controls that read takes.
func TestReadmeScopeTable(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "| scope | allows |")
	if start < 0 {
		t.Fatal("README.md: no scope table (| scope | allows |)")
	}
	table := readme[start:]
	table = table[:strings.Index(table, "\n\n")]
	route := regexp.MustCompile("`((?:GET|POST|DELETE|PUT|PATCH) /[^`]*)`")
	scopeCell := regexp.MustCompile("^\\| (?:`(\\w+)`|none \\(no token\\)) \\|")
	documented := map[string]tollgate.Scope{}
	for _, row := range strings.Split(table, "\n")[2:] {
		m := scopeCell.FindStringSubmatch(row)
		if m == nil {
			t.Fatalf("README.md scope table: a row without a scope: %s", row)
		}
		scope := tollgate.Scope(m[1]) // "" for none: public
		if scope != public && !slices.Contains(tollgate.Scopes, scope) {
			t.Errorf("README.md scope table: unknown scope %q", scope)
		}
		for _, r := range route.FindAllStringSubmatch(row, -1) {
			key := regexp.MustCompile(`\{(\w+)\}`).ReplaceAllString(r[1], ":$1")
			if prev, dup := documented[key]; dup {
				t.Errorf("README.md scope table: %s listed under %q and %q", key, prev, scope)
			}
			documented[key] = scope
		}
	}
	for key, scope := range routeScopes {
		got, ok := documented[key]
		switch {
		case !ok:
			t.Errorf("README.md scope table: %s (scope %q) is missing", key, scope)
		case got != scope:
			t.Errorf("README.md scope table: %s listed under %q; routeScopes says %q", key, got, scope)
		}
	}
	for key := range documented {
		if _, ok := routeScopes[key]; !ok {
			t.Errorf("README.md scope table: %s is not a route", key)
		}
	}
}
