package test

import (
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
