package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/attest"
)

// attestedDecision is the evaluate reply of a server that signs decisions:
// the decision, as always, and its attestation.
type attestedDecision struct {
	tollgate.Decision
	Attestation *attest.Envelope `json:"attestation"`
}

// attested answers rec, which the store has recorded, with its
// attestation. A decision that cannot be signed is not given: the deploy
// step that asked for a signed decision would have none.
func (s *Server) attested(c echo.Context, rec tollgate.Record) error {
	env, err := s.cfg.Attestor.Sign(c.Request().Context(), rec)
	if err != nil {
		s.cfg.Logger.Error("sign a recorded decision", "decision_id", rec.Decision.ID, "error", err)
		return tollgate.Errorf(tollgate.EInternal, "decision %s is recorded but could not be signed, so it is not given: ask again", rec.Decision.ID)
	}
	return c.JSON(http.StatusOK, attestedDecision{Decision: rec.Decision, Attestation: env})
}
