package server

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openapiJSON is the OpenAPI 3.1 document of this API, generated from
// openapi.yaml (its source: edit that, then go generate).
//
//go:generate go test -run ^TestOpenAPIJSONIsGenerated$ -update-openapi .
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI document the server serves at
// GET /v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapiJSON)
}
