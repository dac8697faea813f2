package ledger

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/tollgate/tollgate"
)

// sampleRecord is a record as the stores digest it: a refusal, or with
// scan a release with scored findings and an exception in force (floats,
// non-ASCII text, optional fields).
func sampleRecord(scan bool) tollgate.Record {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	rec := tollgate.Record{
		Decision: tollgate.Decision{ID: "019ab1c2-3d4e-7f00-8a1b-2c3d4e5f6a7b", Status: tollgate.Refused,
			Reasons:  []tollgate.Reason{{Code: tollgate.CodeCooldown, Message: "an accepted deployment less than 30 minutes ago"}},
			Warnings: []tollgate.Reason{}, Project: "service-api", Pipeline: "deploy-prod", Branch: "main",
			Environment: "production", BundleRevision: "sha256:8d889ad99e87ae90", EvaluatedAt: at},
		Request: tollgate.Request{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod",
			Metadata: tollgate.Metadata{Initiator: "jane", RunID: "run-42", Environment: "production"}},
		Context:  tollgate.Context{Now: at},
		Identity: "ci",
	}
	if !scan {
		return rec
	}
	rec.Decision.Status, rec.Decision.Reasons = tollgate.Accepted, []tollgate.Reason{}
	rec.Decision.Warnings = []tollgate.Reason{{Code: "exception_applied", Message: "Ausnahme für CVE-2024-3094 — genehmigt von «sec»"}}
	rec.Context.Scan = &tollgate.Release{ScannedAt: at.Add(-time.Hour), Format: "trivy", Unidentified: 1,
		Findings: []tollgate.ScoredFinding{{
			Finding: tollgate.Finding{ID: "CVE-2024-3094", Aliases: []string{"GHSA-rxwq-x6h5-x525"}, Package: "xz-utils",
				Version: "5.6.0", FixedVersion: "5.6.1", Severity: "critical"},
			Score: &tollgate.ScoreReceipt{Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Version: "4.0", Score: 9.3},
			EPSS:  &tollgate.EPSSScore{CVE: "CVE-2024-3094", EPSS: 0.84312, Percentile: 0.99274},
		}, {
			Finding: tollgate.Finding{ID: "GHSA-x", Package: "pkg:npm/left-pad@1.0.0", Severity: "low"},
		}},
		EPSSModel: "v2025.03.14", EPSSDate: at.Truncate(24 * time.Hour)}
	rec.Context.Exceptions = []tollgate.Control{{ID: "01ex", Kind: "exception", State: "approved",
		Reason: "fix <ships> tomorrow & \"not\" exploitable\n", CreatedBy: "alice", CreatedAt: at, ExpiresAt: at.Add(48 * time.Hour)}}
	return rec
}

// TestCanonicalRFC8785 checks the canonical form against RFC 8785's own
// examples (the test vectors of its reference implementations) and a
// record of each shape.
func TestCanonicalRFC8785(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\u000a": "Newline",
  "1": "One",
  "\u0080": "Control\u007f",
  "\ud83d\ude02": "Smiley",
  "\u00f6": "Latin Small Letter O With Diaeresis",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "</script>": "Browser Challenge"
}`, "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u0080\":\"Control\u007f\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😂\":\"Smiley\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{`{
  "1": {"f": {"f": "hi","F": 5} ,"\n": 56.0},
  "10": { },
  "": "empty",
  "a": { },
  "111": [ {"e": "yes","E": "no" } ],
  "A": { }
}`, `{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],"A":{},"a":{}}`},
		{`[ 56, { "d": true, "10": null, "1": [ ] } ]`, `[56,{"1":[],"10":null,"d":true}]`},
		{`{"peach": 1, "péché": 2, "pêche": 3, "sin": 4}`, `{"peach":1,"péché":2,"pêche":3,"sin":4}`},
		{` -0 `, `0`},
		{`[-0.0, 1e21, 1e-7, 123456789012345678, -12, 0.1]`, `[0,1e+21,1e-7,123456789012345680,-12,0.1]`},
		// A character above U+FFFF sorts by its high surrogate: before U+FB33,
		// although its UTF-8 bytes sort after.
		{"{\"\ufb33\":1,\"\U0001F602\":2}", "{\"\U0001F602\":2,\"\ufb33\":1}"},
	}
	for _, tc := range cases {
		if got := canon(t, []byte(tc.in)); got != tc.want {
			t.Errorf("canonical(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, scan := range []bool{false, true} {
		data, err := json.Marshal(sampleRecord(scan))
		if err != nil {
			t.Fatal(err)
		}
		sameAsReference(t, data)
		indented, err := json.MarshalIndent(sampleRecord(scan), "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if canon(t, data) != canon(t, indented) {
			t.Errorf("a record and its indented copy canonicalise differently")
		}
	}
}

// TestCanonicalRejects: what is not JSON, or not I-JSON as RFC 8785
// requires (duplicate keys, lone surrogates, invalid UTF-8), is an error,
// as it is for the reference.
func TestCanonicalRejects(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{`, `}`, `[1,]`, `[,1]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1}x`, `1 2`,
		`{"a":1,"a":2}`, `{"b":{},"a":1,"b":2}`, `01`, `1.`, `.5`, `+1`, `1e`, `-`, `tru`, `nul`, `1e400`,
		`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `"\x"`, `"\u12g4"`, "\"a\x01\"", "\"\xff\"", "\"\xed\xa0\x80\"",
		`"abc`, `[1"a"]`, "\u00a0 1",
	} {
		if out, err := canonicalBytes([]byte(in)); err == nil {
			t.Errorf("canonical(%q) = %s; want an error", in, out)
		}
		if _, err := jcs.Transform([]byte(in)); err == nil {
			t.Errorf("the reference accepts %q: this case tests nothing", in)
		}
	}
	if err := canonical(nil, func([]byte) {}); err == nil {
		t.Error("canonical(nil): no error")
	}
	// A canonicaliser that failed half-way through an object is reused as
	// good as new.
	for range 3 {
		if _, err := canonicalBytes([]byte(`{"b":{"d":1,"c":2,"c":3}}`)); err == nil {
			t.Fatal("duplicate key: no error")
		}
		if got := canon(t, []byte(`{"b":1,"a":{"d":1,"c":2}}`)); got != `{"a":{"c":2,"d":1},"b":1}` {
			t.Fatalf("after a failure: %s", got)
		}
	}
}

// TestCanonicalDeepDocuments go to the reference past canonicalDepth, with
// the same result.
func TestCanonicalDeepDocuments(t *testing.T) {
	for _, depth := range []int{canonicalDepth - 1, canonicalDepth, canonicalDepth + 1, 500} {
		doc := strings.Repeat(`{"b":[`, depth) + `1` + strings.Repeat(`],"a":0}`, depth)
		sameAsReference(t, []byte(doc))
		if _, err := canonicalBytes([]byte(doc[:len(doc)-1])); err == nil {
			t.Errorf("depth %d, unterminated: no error", depth)
		}
	}
}

// FuzzCanonical: canonical accepts what the reference accepts, and writes
// the same bytes.
//
//	go test -run '^$' -fuzz FuzzCanonical ./adapters/ledger/
func FuzzCanonical(f *testing.F) {
	for _, scan := range []bool{false, true} {
		data, err := json.Marshal(sampleRecord(scan))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{`{"b":1,"a":[1.5e3,"\u00e9\ud83d\ude02",null]}`, "{\"\ufb33\":1,\"\U0001F602\":2}",
		`[-0, 1e21, 5e-324, "\/\b\f\n\r\t\u0001"]`, `{"a":{"b":{"c":{}}},"A":[[[]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsReference(t, data)
	})
}

func sameAsReference(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := jcs.Transform(data)
	got, err := canonicalBytes(data)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("canonical(%q): error %v; the reference: %v", data, err, wantErr)
	case err == nil && !bytes.Equal(got, want):
		t.Fatalf("canonical(%q)\n got %s\nwant %s (the reference)", data, got, want)
	}
}

func canonicalBytes(data []byte) ([]byte, error) {
	var out []byte
	err := canonical(data, func(b []byte) { out = bytes.Clone(b) })
	return out, err
}

func canon(t *testing.T, data []byte) string {
	t.Helper()
	out, err := canonicalBytes(data)
	if err != nil {
		t.Fatalf("canonical(%s): %v", data, err)
	}
	return string(out)
}
