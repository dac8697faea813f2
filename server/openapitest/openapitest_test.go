package openapitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const doc = `
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /v1/things/{id}:
    post:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, additionalProperties: false, required: [name], properties: {name: {type: string}}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [id]
                properties: {id: {type: string}, at: {type: string, format: date-time}}
        "400":
          description: bad
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Error'}
components:
  schemas:
    Error:
      type: object
      required: [error]
      properties: {error: {type: object, required: [code, message]}}
`

// Check holds each side of an exchange to the document by its rules.
func TestCheck(t *testing.T) {
	v, err := New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	errBody := `{"error": {"code": "invalid_input", "message": "no"}}`
	for _, c := range []struct {
		name, method, path, reqBody string
		status                      int
		body, wantErr               string
	}{
		{"a documented exchange", "POST", "/v1/things/1", `{"name": "a"}`, 200, `{"id": "1"}`, ""},
		{"an answer with a field the document lacks", "POST", "/v1/things/1", `{"name": "a"}`, 200, `{"id": "1", "extra": 1}`, "extra"},
		{"a time that is not one", "POST", "/v1/things/1", `{"name": "a"}`, 200, `{"id": "1", "at": "yesterday"}`, "date-time"},
		{"a status the document lacks", "POST", "/v1/things/1", `{"name": "a"}`, 201, `{"id": "1"}`, "status is not supported"},
		{"an accepted request the document forbids", "POST", "/v1/things/1", `{"nom": "a"}`, 200, `{"id": "1"}`, "the request does not match"},
		{"a refused request the document forbids", "POST", "/v1/things/1", `{"nom": "a"}`, 400, errBody, ""},
		{"an error not in the error shape", "POST", "/v1/things/1", `{"nom": "a"}`, 400, `{"message": "no"}`, "error"},
		{"an unknown path answered 404", "GET", "/v1/nothing", "", 404, errBody, ""},
		{"an unknown method answered 405", "GET", "/v1/things/1", "", 405, errBody, ""},
		{"an unknown path answered 200", "GET", "/v1/nothing", "", 200, `{}`, "not in the OpenAPI document"},
		{"an unknown path's 404 not in the error shape", "GET", "/v1/nothing", "", 404, `not found`, "not JSON"},
		{"the history page", "GET", "/ui/", "", 200, `<html>`, ""},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.reqBody))
		req.Header.Set("Content-Type", "application/json")
		header := http.Header{"Content-Type": {"application/json"}}
		err := v.Check(req, []byte(c.reqBody), c.status, header, []byte(c.body))
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.wantErr)
		}
	}
}

// recorder is a testing.TB that keeps what Errorf reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// Transport and Handler report a mismatch and pass the exchange through
// untouched; an empty request body leaves as no body (Content-Length 0):
// sent as a body of unknown length, it reached the server chunked, and the
// server read a JSON body where the client sent none (415).
func TestTransportAndHandler(t *testing.T) {
	v, err := New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var lengths []int64
	answer := `{"id": "1", "extra": 1}`
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lengths = append(lengths, r.ContentLength)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(answer))
	})
	for _, wrap := range []string{"Transport", "Handler"} {
		rec := &recorder{TB: t}
		srv := httptest.NewServer(api)
		client := srv.Client()
		if wrap == "Transport" {
			client.Transport = v.Transport(rec, client.Transport)
		} else {
			srv.Config.Handler = v.Handler(rec, api)
		}
		lengths = nil
		resp, err := client.Post(srv.URL+"/v1/things/1", "application/json", strings.NewReader(`{"name": "a"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != answer || len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "extra") {
			t.Errorf("%s: the client read %q; reported %q", wrap, body, rec.errs)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/things/1", strings.NewReader(""))
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(lengths) != 2 || lengths[1] != 0 {
			t.Errorf("%s: the server saw Content-Lengths %v, want 0 for the empty body", wrap, lengths)
		}
		srv.Close()
	}
}
