package rego

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestDataInterned: equal arrays and objects in the data are one value,
// the data is the document ast.InterfaceToValue makes, and numbers keep
// their text (a kept bundle's data encodes as it was loaded).
func TestDataInterned(t *testing.T) {
	var docs map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"config": {"projects": {
		"a": {"allowed_branches": ["main", "release/*"], "pipelines": {"deploy": {"type": "deploy", "cooldown_minutes": 30}}},
		"b": {"allowed_branches": ["main", "release/*"], "pipelines": {"deploy": {"type": "deploy", "cooldown_minutes": 30.0}}},
		"c": {"allowed_branches": ["release/*", "main"], "pipelines": {"deploy": {"cooldown_minutes": 30, "type": "deploy"}}}}}}`))
	dec.UseNumber() // as OPA's loader decodes
	if err := dec.Decode(&docs); err != nil {
		t.Fatal(err)
	}
	got, err := astObject(docs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.InterfaceToValue(docs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Fatalf("interned data %v\nwant %v", got, want)
	}
	at := func(path ...string) ast.Value {
		t.Helper()
		v, err := got.Find(ast.MustParseRef("x." + strings.Join(path, "."))[1:])
		if err != nil {
			t.Fatalf("%v: %v", path, err)
		}
		return v
	}
	project := func(p, field string) ast.Value { return at("config", "projects", p, field) }
	if project("a", "allowed_branches") != project("b", "allowed_branches") {
		t.Error("equal branch lists are two values")
	}
	if project("a", "allowed_branches") == project("c", "allowed_branches") {
		t.Error("branch lists in another order are one value")
	}
	if project("a", "pipelines") != project("c", "pipelines") {
		t.Error("equal objects written in another key order are two values")
	}
	if project("a", "pipelines") == project("b", "pipelines") {
		t.Error("30 and 30.0 were made one value")
	}
	if n := at("config", "projects", "b", "pipelines", "deploy", "cooldown_minutes"); n.String() != "30.0" {
		t.Errorf("30.0 became %v", n)
	}

	// The shipped bundle's data, too.
	b, err := LoadBundle(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ast.InterfaceToValue(mustJSON(t, b.data))
	if err != nil {
		t.Fatal(err)
	}
	if b.data.Compare(plain) != 0 {
		t.Error("the shipped bundle's interned data differs from its plain conversion")
	}
}

func mustJSON(t *testing.T, v ast.Value) any {
	t.Helper()
	x, err := ast.JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
