package server

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/server/openapitest"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "write openapi.json from openapi.yaml")

// openapiFromYAML is openapi.json as openapi.yaml says: the YAML with its
// anchors and merge keys expanded, as indented JSON.
func openapiFromYAML(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := checkJSONKeys(doc, "$"); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatalf("openapi.yaml as JSON: %v", err)
	}
	return out.Bytes()
}

// checkJSONKeys refuses a mapping key that is not a string (an unquoted
// status code): JSON could not say it.
func checkJSONKeys(v any, at string) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if err := checkJSONKeys(e, at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkJSONKeys(e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case map[any]any:
		return fmt.Errorf("%s has a key that is not a string: quote it", at)
	}
	return nil
}

// The served document is generated from its source, not edited apart.
func TestOpenAPIJSONIsGenerated(t *testing.T) {
	want := openapiFromYAML(t)
	if *updateOpenAPI {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(openapiJSON, want) {
		t.Fatal("openapi.json is not openapi.yaml's: run `go generate ./server` and commit both")
	}
}

var (
	validatorOnce sync.Once
	validator     *openapitest.Validator
	validatorErr  error
)

// apiValidator is the document's validator, loaded once for the package.
func apiValidator(t *testing.T) *openapitest.Validator {
	t.Helper()
	validatorOnce.Do(func() { validator, validatorErr = openapitest.New(openapiJSON) })
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	return validator
}

// openapiPath is an echo route's path as an OpenAPI path template.
func openapiPath(echoPath string) string {
	parts := strings.Split(echoPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// Every route the server registers is in the document, with its method and
// path, and every operation of the document is served; the history page's
// HTML routes are left out (openapitest.IsPage), and only they.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := apiValidator(t).Doc
	f := newFixture(t)
	served := map[string]bool{}
	for _, r := range f.api.echo.Routes() {
		path := openapiPath(r.Path)
		served[r.Method+" "+path] = true
		if openapitest.IsPage(r.Path) {
			continue
		}
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is served but not in server/openapi.yaml: add paths.%q.%s (its parameters, request body, every response status and %s), then go generate ./server",
				r.Method, r.Path, path, strings.ToLower(r.Method), describeScope(routeScopes[routeKey(r.Method, r.Path)]))
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if openapitest.IsPage(path) {
				t.Errorf("%s %s is in server/openapi.yaml: the history page's routes (/ and /ui…) are left out of the API document", method, path)
			}
			if !served[method+" "+path] {
				t.Errorf("%s %s is in server/openapi.yaml but the server does not serve it", method, path)
			}
		}
	}
}

// Each operation's security names the scope routeScopes gives its route:
// one bearerAuth requirement with that one scope, or [] for a public route.
func TestOpenAPIScopesAreTheServers(t *testing.T) {
	doc := apiValidator(t).Doc
	if doc.Components.SecuritySchemes["bearerAuth"] == nil || len(doc.Components.SecuritySchemes) != 1 {
		t.Fatalf("the document's security schemes are %v, want bearerAuth alone", doc.Components.SecuritySchemes)
	}
	checked := 0
	for key, scope := range routeScopes {
		method, echoPath, _ := strings.Cut(key, " ")
		if openapitest.IsPage(echoPath) {
			continue
		}
		item := doc.Paths.Value(openapiPath(echoPath))
		if item == nil || item.GetOperation(method) == nil {
			continue // TestOpenAPIDocumentsEveryRoute says so
		}
		checked++
		op := item.GetOperation(method)
		if op.Security == nil {
			t.Errorf("%s: no security in the document; want %s", key, describeScope(scope))
			continue
		}
		var got []string
		for _, req := range *op.Security {
			for scheme, scopes := range req {
				got = append(got, scheme+":"+strings.Join(scopes, ","))
			}
		}
		want := []string{}
		if scope != public {
			want = []string{"bearerAuth:" + string(scope)}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the document's security is %v; the server's is %s", key, got, describeScope(scope))
		}
	}
	if checked == 0 {
		t.Fatal("no route checked")
	}
}

func describeScope(s tollgate.Scope) string {
	if s == public {
		return "public: security []"
	}
	return "security [{bearerAuth: [" + string(s) + "]}]"
}

// GET /v1/openapi.json serves the document, without a token.
func TestOpenAPIServed(t *testing.T) {
	f := newFixtureWith(t, func(*Config) {}) // authentication on, no token sent
	resp, err := http.Get(f.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body.Bytes())
	}
	if !bytes.Equal(body.Bytes(), openapiJSON) {
		t.Error("GET /v1/openapi.json does not serve openapi.json")
	}
}

// The README's HTTP API table names the operations of the document, and
// only those (design §8: the document and the README agree). The table
// abbreviates: "`…/reject`" is the previous route's sibling, with its
// method, and "`GET /v1/freezes[/{id}]`" is two routes.
func TestOpenAPIAgreesWithTheReadme(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "\n## HTTP API\n")
	if start < 0 {
		t.Fatal("README.md: no HTTP API section")
	}
	section := readme[start+1:]
	section = section[:regexp.MustCompile(`\n##+ `).FindStringIndex(section)[0]]
	span := regexp.MustCompile("`((?:GET|POST|DELETE|PUT|PATCH) /[^`]*|…/[^`]*)`")
	listed := map[string]bool{}
	for _, row := range strings.Split(section, "\n") {
		cells := strings.Split(row, "|")
		if !strings.HasPrefix(row, "| `") || len(cells) < 3 {
			continue
		}
		var method, path string
		for _, m := range span.FindAllStringSubmatch(cells[1], -1) {
			if rest, ok := strings.CutPrefix(m[1], "…/"); ok && path != "" {
				path = path[:strings.LastIndex(path, "/")+1] + rest
			} else {
				method, path, _ = strings.Cut(m[1], " ")
			}
			if base, ok := strings.CutSuffix(path, "[/{id}]"); ok {
				listed[method+" "+base], listed[method+" "+base+"/{id}"] = true, true
				continue
			}
			listed[method+" "+path] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range apiValidator(t).Doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
			if !listed[method+" "+path] {
				t.Errorf("%s %s is in the OpenAPI document but not in README.md's HTTP API table", method, path)
			}
		}
	}
	for op := range listed {
		_, path, _ := strings.Cut(op, " ")
		if !documented[op] && !openapitest.IsPage(path) {
			t.Errorf("README.md's HTTP API table lists %s, which is not in the OpenAPI document", op)
		}
	}
	if len(listed) < len(documented) {
		t.Fatalf("README.md's HTTP API table: %d routes read, fewer than the document's %d", len(listed), len(documented))
	}
}
