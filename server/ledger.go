package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// exportIdle is how long an export waits for its client to take a page.
const exportIdle = time.Minute

// exportDecisions streams the ledger as NDJSON (adapters/ledger's export
// format), the filters of GET /v1/decisions selecting the records written
// whole, the end signed with the server's ledger key if it has one. A
// failure before the first line is an error reply; after it, the stream
// ends with an error line instead of a signed end, which the reader (and
// `tollgate ledger verify-export`) sees.
func (s *Server) exportDecisions(c echo.Context) error {
	for _, name := range []string{"limit", "cursor"} {
		if c.QueryParams().Has(name) {
			return tollgate.Errorf(tollgate.EInvalid,
				"%s does not apply to an export, which streams every record: filters are project, pipeline, branch, status, since, until", name)
		}
	}
	f, err := decisionFilter(c)
	if err != nil {
		return err
	}
	store, ok := s.cfg.Store.(tollgate.LedgerStore)
	if !ok {
		return tollgate.Errorf(tollgate.EInternal, "the decision store %T keeps no ledger", s.cfg.Store)
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	// A long history takes longer than the server's write timeout: instead,
	// a client that has not taken a page of lines within exportIdle is
	// dropped.
	rc := http.NewResponseController(res)
	rc.SetWriteDeadline(time.Now().Add(exportIdle))
	start := time.Now()
	_, err = ledger.Export(c.Request().Context(), res, store, ledger.ExportOptions{
		Filter: f,
		Signer: s.cfg.LedgerSigner,
		Flush: func() {
			res.Flush()
			rc.SetWriteDeadline(time.Now().Add(exportIdle))
		},
	})
	s.cfg.Metrics.observeStore("export", time.Since(start), err)
	if err != nil && !res.Committed {
		// The error reply is JSON (echo keeps a content type already set).
		res.Header().Del(echo.HeaderContentType)
		return err
	}
	if err != nil {
		s.cfg.Logger.Warn("ledger export stopped", "error", err)
		return nil
	}
	if !res.Committed { // nothing written at all: cannot happen, the start line always is
		res.WriteHeader(http.StatusOK)
	}
	return nil
}
