package test

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/server/openapitest"
)

var (
	validatorOnce sync.Once
	validator     *openapitest.Validator
	validatorErr  error
)

// apiValidator is the API's OpenAPI document (server/openapi.json, which
// the binary embeds and serves), loaded once for the package.
func apiValidator(t *testing.T) *openapitest.Validator {
	t.Helper()
	validatorOnce.Do(func() {
		doc, err := os.ReadFile("../server/openapi.json")
		if err != nil {
			validatorErr = err
			return
		}
		validator, validatorErr = openapitest.New(doc)
	})
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	return validator
}

// cliBase is the URL of a reverse proxy to s through the helpers'
// validating client transport: give it to the CLI (--server,
// TOLLGATE_SERVER) so that the requests tollgate's own client sends, and
// the answers it reads, are held to the OpenAPI document too. Over plain
// HTTP; it closes when the test ends.
func (s *server) cliBase(t *testing.T) string {
	t.Helper()
	target, err := url.Parse(s.base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = s.client.Transport
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}
