// Package openapitest holds the API to its OpenAPI document in tests: a
// Validator checks every request and response that passes through a test
// client's transport or a test server's handler against the document,
// with github.com/getkin/kin-openapi's openapi3filter. It is for tests only
// (like adapters/pgtest), shared by the server's and the end-to-end tests.
package openapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Validator checks exchanges against an OpenAPI document.
type Validator struct {
	Doc    *openapi3.T
	router routers.Router
}

var registerDecoders sync.Once

// New loads and validates the document (JSON or YAML).
func New(document []byte) (*Validator, error) {
	registerDecoders.Do(func() {
		// The media types the API uses beyond openapi3filter's own: the
		// ledger export's NDJSON is checked line by line; gzip and
		// OpenMetrics bodies are opaque strings to the document.
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", ndjsonDecoder)
		openapi3filter.RegisterBodyDecoder("text/csv", openapi3filter.FileBodyDecoder) // FIRST's CSV starts with a comment line
		openapi3filter.RegisterBodyDecoder("application/gzip", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/x-gzip", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.FileBodyDecoder)
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(document)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &Validator{Doc: doc, router: router}, nil
}

// IsPage reports whether a path is the history page's, for browsers: GET /
// and everything under /ui answer HTML and are left out of the document.
func IsPage(path string) bool {
	return path == "/" || path == "/ui" || strings.HasPrefix(path, "/ui/")
}

// Check validates one exchange. The response must always match the
// document, status included. The request must match when the server
// accepted it (2xx): a request the server refused (4xx) may well be one
// the document forbids — tests send those on purpose. A path the document
// does not have must have been answered 404 or 405 in the error shape.
func (v *Validator) Check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	if IsPage(req.URL.Path) {
		return nil
	}
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s is not in the OpenAPI document, yet answered %d", req.Method, req.URL.Path, status)
		}
		var e any
		if err := json.Unmarshal(body, &e); err != nil {
			return fmt.Errorf("%s %s: the %d answer is not JSON: %v", req.Method, req.URL.Path, status, err)
		}
		if err := v.Doc.Components.Schemas["Error"].Value.VisitJSON(e); err != nil {
			return fmt.Errorf("%s %s: the %d answer is not the error shape: %v", req.Method, req.URL.Path, status, err)
		}
		return nil
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // the server's to check; the tests check it does
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	if status >= 200 && status < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return fmt.Errorf("%s %s was answered %d, but the request does not match the OpenAPI document: %v", req.Method, req.URL, status, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%s %s: the %d answer does not match the OpenAPI document: %v\nbody: %.2000s", req.Method, req.URL, status, err, body)
	}
	return nil
}

// Transport checks every exchange of a client; t.Errorf reports a
// mismatch. The response body is read in full, then given to the caller.
func (v *Validator) Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		var reqBody []byte
		if req.Body != nil {
			var err error
			if reqBody, err = io.ReadAll(req.Body); err != nil {
				return nil, err
			}
			req.Body.Close()
			req = req.Clone(req.Context())
			req.Body = http.NoBody // a length of 0, not an unknown length
			if len(reqBody) > 0 {
				req.Body = io.NopCloser(bytes.NewReader(reqBody))
			}
		}
		resp, err := base.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return resp, nil // the caller sees the short body; nothing whole to check
		}
		if err := v.Check(req, reqBody, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("OpenAPI: %v", err)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Handler checks every exchange h serves; t.Errorf reports a mismatch.
// The answer is written to the client once h has finished.
func (v *Validator) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		reqBody, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if err := v.Check(req, reqBody, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("OpenAPI: %v", err)
		}
		for name, values := range rec.Header() {
			w.Header()[name] = values
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// ndjsonDecoder reads newline-delimited JSON as an array of its lines.
func ndjsonDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	lines := []any{}
	scanner := bufio.NewScanner(body)
	scanner.Buffer(nil, 64<<20)
	for scanner.Scan() {
		if len(bytes.TrimSpace(scanner.Bytes())) == 0 {
			return nil, errors.New("an empty line in NDJSON")
		}
		var line any
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("NDJSON line %d: %w", len(lines)+1, err)
		}
		lines = append(lines, line)
	}
	return lines, scanner.Err()
}
