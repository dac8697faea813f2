package tollgate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// TestDecodeStrictRefusesWhatEncodingJSONWouldBend: each body here decodes
// without error with encoding/json alone (last key wins, case-insensitive
// names, U+FFFD for bad bytes); DecodeStrict refuses it, naming the field.
func TestDecodeStrictRefusesWhatEncodingJSONWouldBend(t *testing.T) {
	const env = `"metadata":{"environment":"production"}`
	tests := []struct{ name, body, want string }{
		{"duplicate key", `{"repository":"org/a","branch":"main","branch":"evil","pipeline":"p",` + env + `}`,
			`duplicate key "branch"`},
		{"duplicate key spelt with an escape", `{"repository":"org/a","branch":"main","br\u0061nch":"evil","pipeline":"p",` + env + `}`,
			`duplicate key "branch"`},
		{"duplicate nested key", `{"repository":"org/a","branch":"main","pipeline":"p","metadata":{"environment":"staging","environment":"production"}}`,
			`duplicate key "metadata.environment"`},
		{"upper-case key", `{"repository":"org/a","BRANCH":"main","pipeline":"p",` + env + `}`,
			`unknown field "BRANCH": field names are case-sensitive, did you mean "branch"?`},
		{"title-case key", `{"Repository":"org/a","branch":"main","pipeline":"p",` + env + `}`,
			`did you mean "repository"?`},
		{"nested case-variant key", `{"repository":"org/a","branch":"main","pipeline":"p","metadata":{"environment":"production","Run_ID":"1"}}`,
			`unknown field "metadata.Run_ID": field names are case-sensitive, did you mean "metadata.run_id"?`},
		{"long s folds to s", `{"repo\u017fitory":"org/a","branch":"main","pipeline":"p",` + env + `}`,
			`unknown field "repoſitory": field names are case-sensitive, did you mean "repository"?`}, // encoding/json folds ſ to s
		{"invalid UTF-8", "{\"repository\":\"org/a\",\"branch\":\"ma\xffin\",\"pipeline\":\"p\"," + env + "}",
			`branch: invalid UTF-8 (byte 0xff at byte 34)`},
		{"overlong UTF-8", "{\"repository\":\"org/\xc0\xafa\",\"branch\":\"main\",\"pipeline\":\"p\"," + env + "}",
			`repository: invalid UTF-8`},
		{"invalid UTF-8 in a key", "{\"repository\":\"org/a\",\"branch\":\"main\",\"pipeline\":\"p\",\"metadata\":{\"env\xe9\":\"x\"}}",
			`metadata: invalid UTF-8`},
		{"lone high surrogate", `{"repository":"org/a","branch":"main\ud800","pipeline":"p",` + env + `}`,
			`branch: lone UTF-16 surrogate \ud800`},
		{"lone low surrogate", `{"repository":"org/a","branch":"main","pipeline":"p","metadata":{"environment":"\udc00prod"}}`,
			`metadata.environment: lone UTF-16 surrogate \udc00`},
		{"high surrogate then another escape", `{"repository":"org/a","branch":"\ud83d\u0041","pipeline":"p",` + env + `}`,
			`branch: lone UTF-16 surrogate \ud83d`},
		{"high surrogate at the end", `{"repository":"org/a","branch":"\ud83d","pipeline":"p",` + env + `}`,
			`branch: lone UTF-16 surrogate`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tollgate.DecodeRequest([]byte(tt.body))
			if err == nil {
				t.Fatal("accepted")
			}
			if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %s %q, want invalid_input containing %q", tollgate.ErrorCode(err), err, tt.want)
			}
		})
	}
}

// TestDecodeStrictInsideFreeFormValues: values tollgate keeps as they are
// (a scanner report, a configuration) get the same exactness, at any depth,
// and the path in the message points into them.
func TestDecodeStrictInsideFreeFormValues(t *testing.T) {
	var v struct {
		Report json.RawMessage `json:"report"`
		Config any             `json:"config"`
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	tests := []struct{ body, want string }{
		{`{"report":{"runs":[{"results":[{},{"ruleId":"a","ruleId":"b"}]}]}}`, `duplicate key "report.runs[0].results[1].ruleId"`},
		{`{"config":{"projects":{"x":{"a":1,"a":2}}}}`, `duplicate key "config.projects.x.a"`},
		{`{"config":{` + strings.Join(many, ",") + `,"k17":0}}`, `duplicate key "config.k17"`},
		{`{"report":["ok","bad\udfff"]}`, `report[1]: lone UTF-16 surrogate`},
		{`{"report":{"report":1},"report":null}`, `duplicate key "report"`},
	}
	for _, tt := range tests {
		err := tollgate.DecodeStrict([]byte(tt.body), &v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.body, err, tt.want)
		}
	}
}

// TestDecodeStrictAcceptsExactJSON: what the pre-pass must not refuse.
func TestDecodeStrictAcceptsExactJSON(t *testing.T) {
	var v struct {
		Name   string         `json:"name"`
		Labels map[string]any `json:"labels"`
		List   []any          `json:"list"`
	}
	bodies := []string{
		`{"name":"caf\u00e9 \ud83d\ude80 ok","labels":{"a":1,"A":2,"\u0041b":3,"":4},"list":[[],{},"x",1.5e3,true,null]}`,
		"{\"name\":\"café 🚀\"}",
		` { "name" : "x" , "labels" : { } } `,
		`{"name":"\"\\\/\b\f\n\r\t"}`,
	}
	for _, b := range bodies {
		if err := tollgate.DecodeStrict([]byte(b), &v); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}

// FuzzDecodeStrictAgrees: the pre-pass refuses only JSON that encoding/json
// would decode with a loss (so never valid, exact JSON), and never panics.
func FuzzDecodeStrictAgrees(f *testing.F) {
	for _, s := range []string{validRequest, `{"a":{"b":[1,"\u00e9"]}}`, `[]`, `"x"`, `{"a":1,"a":2}`, "{\"\xff\":1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict, loose any
		strictErr := tollgate.DecodeStrict(data, &strict)
		if json.Unmarshal(data, &loose) != nil {
			if strictErr == nil {
				t.Fatalf("DecodeStrict accepted what encoding/json refuses: %q", data)
			}
			return
		}
		if strictErr != nil {
			// Must be one of the losses encoding/json hides: re-encoding
			// what it decoded does not give the same keys and strings back.
			if !strings.Contains(strictErr.Error(), "duplicate key") && !strings.Contains(strictErr.Error(), "UTF") {
				t.Fatalf("refused valid JSON %q: %v", data, strictErr)
			}
		}
	})
}

// BenchmarkDecodeStrict measures the exactness pre-pass on the evaluate hot
// path: the CI payload alone, and with a scanner report inside.
func BenchmarkDecodeStrict(b *testing.B) {
	report, err := os.ReadFile("adapters/scans/testdata/grype-image.json")
	if err != nil {
		b.Fatal(err)
	}
	withScan := validRequest[:len(validRequest)-1] + `,"scan":{"format":"grype","report":` + string(report) + `}}`
	type body struct {
		tollgate.Request
		Scan *struct {
			Format string          `json:"format"`
			Report json.RawMessage `json:"report"`
		} `json:"scan"`
	}
	for _, in := range []struct{ name, data string }{{"payload", validRequest}, {"with-scan", withScan}} {
		b.Run(in.name+"/strict", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				var v body
				if err := tollgate.DecodeStrict([]byte(in.data), &v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/encoding-json", func(b *testing.B) { // the decoding alone, for comparison
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				var v body
				dec := json.NewDecoder(strings.NewReader(in.data))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeStrictTypeErrorsNameTheJSONPath: a body that embeds Request
// (as the server's evaluation and scan bodies do) got "Request.repository
// must be a string": encoding/json names the embedded struct by its Go
// type. The client sent "repository", and reads nothing else. And
// encoding/json's path leaves out map keys and array indices: a project's
// cooldown_minutes of the wrong type was "pipelines.cooldown_minutes", in
// no project and no pipeline.
func TestDecodeStrictTypeErrorsNameTheJSONPath(t *testing.T) {
	type scanRef struct {
		Format string `json:"format"`
	}
	type body struct {
		tollgate.Request
		Scan  *scanRef           `json:"scan"`
		Items []scanRef          `json:"items"`
		ByEnv map[string]scanRef `json:"by_env"`
	}
	tests := []struct{ body, want string }{
		{`{"repository": 5}`, "repository must be a string, got number"},
		{`{"metadata": {"environment": 7}}`, "metadata.environment must be a string, got number"},
		{`{"metadata": "production"}`, "metadata must be an object, got string"},
		{`{"scan": {"format": true}}`, "scan.format must be a string, got bool"},
		{`{"items": [{"format": "a"}, {"format": 1}]}`, "items[1].format must be a string, got number"},
		{`{"by_env": {"staging": {"format": 1}}}`, "by_env.staging.format must be a string, got number"},
		{`{"by_env": {"staging": {"format": {"x": 1}}}}`, "by_env.staging.format must be a string, got object"},
		{`{"by_env": {"staging": [1]}}`, "by_env.staging must be an object, got array"},
	}
	for _, tt := range tests {
		var b body
		err := tollgate.DecodeStrict([]byte(tt.body), &b)
		if err == nil || err.Error() != tt.want {
			t.Errorf("DecodeStrict(%s) = %v, want %q", tt.body, err, tt.want)
		}
	}
}
