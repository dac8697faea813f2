package tollgate_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

const validRequest = `{"repository":"org/service-api","branch":"main","pipeline":"deploy-prod",
 "metadata":{"initiator":"github-actions","run_id":"123456789","environment":"production"}}`

func TestDecodeRequest(t *testing.T) {
	r, err := tollgate.DecodeRequest([]byte(validRequest))
	if err != nil {
		t.Fatal(err)
	}
	want := tollgate.Request{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod",
		Metadata: tollgate.Metadata{Initiator: "github-actions", RunID: "123456789", Environment: "production"}}
	if r != want {
		t.Fatalf("got %+v", r)
	}
}

func TestDecodeRequestRejectsBadInput(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty", ``, "empty body"},
		{"not JSON", `repository=org/x`, "malformed JSON"},
		{"truncated", `{"repository": "org/x"`, "invalid JSON"},
		{"array", `[]`, "expected an object, got array"},
		{"missing repository", `{"branch":"main","pipeline":"p","metadata":{"environment":"production"}}`, "repository is required"},
		{"missing branch", `{"repository":"r","pipeline":"p","metadata":{"environment":"production"}}`, "branch is required"},
		{"missing pipeline", `{"repository":"r","branch":"main","metadata":{"environment":"production"}}`, "pipeline is required"},
		{"missing metadata", `{"repository":"r","branch":"main","pipeline":"p"}`, "metadata.environment is required"},
		{"blank environment", `{"repository":"r","branch":"main","pipeline":"p","metadata":{"environment":"  "}}`, "metadata.environment is required"},
		{"wrong type", `{"repository":1,"branch":"main","pipeline":"p","metadata":{"environment":"production"}}`, "repository must be a string, got number"},
		{"wrong nested type", `{"repository":"r","branch":"main","pipeline":"p","metadata":{"environment":true}}`, "metadata.environment must be a string, got bool"},
		{"metadata not an object", `{"repository":"r","branch":"main","pipeline":"p","metadata":"prod"}`, "metadata must be an object"},
		{"unknown field", `{"repository":"r","branch":"main","pipeline":"p","metadata":{"environment":"e"},"context":{}}`, `unknown field "context"`},
		{"trailing data", validRequest + `{}`, "unexpected data after"},
		{"null", `null`, "repository is required"},
		{"NUL in branch", `{"repository":"r","branch":"ma\u0000in","pipeline":"p","metadata":{"environment":"e"}}`, "branch must not contain control characters (found U+0000 at byte 2)"},
		{"newline in run id", `{"repository":"r","branch":"main","pipeline":"p","metadata":{"environment":"e","run_id":"1\n2"}}`, "metadata.run_id must not contain control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tollgate.DecodeRequest([]byte(tt.body))
			if err == nil {
				t.Fatal("want an error")
			}
			if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %s %q, want invalid_input containing %q", tollgate.ErrorCode(err), err, tt.want)
			}
		})
	}
}

// FuzzDecodeRequest: any body either decodes to a request with every
// required field, or fails with invalid_input; it never panics.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(validRequest))
	f.Add([]byte(`{"repository":"r","branch":"b","pipeline":"p","metadata":{"environment":"e","run_id":7}}`))
	f.Add([]byte(`{"metadata":{}}`))
	f.Add([]byte(`{"repository":"\u0000","branch":"b","pipeline":"p","metadata":{"environment":"e"}} `))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := tollgate.DecodeRequest(body)
		if err != nil {
			if tollgate.ErrorCode(err) != tollgate.EInvalid {
				t.Fatalf("error code %s for %q", tollgate.ErrorCode(err), err)
			}
			return
		}
		for _, v := range []string{r.Repository, r.Branch, r.Pipeline, r.Metadata.Environment} {
			if strings.TrimSpace(v) == "" {
				t.Fatalf("accepted a request with an empty required field: %+v", r)
			}
		}
		if strings.ContainsRune(r.Repository+r.Branch+r.Pipeline+r.Metadata.Environment+r.Metadata.Initiator+r.Metadata.RunID, 0) {
			t.Fatalf("accepted a request with a NUL: %+v", r)
		}
	})
}

func TestPolicyErrorIsRefused(t *testing.T) {
	d := tollgate.PolicyError(tollgate.Request{Pipeline: "p", Branch: "b", Metadata: tollgate.Metadata{Environment: "e"}}, "boom")
	if d.Status != tollgate.Refused || len(d.Reasons) != 1 || d.Reasons[0].Code != tollgate.CodePolicyError || d.Warnings == nil {
		t.Fatalf("got %+v", d)
	}
}
