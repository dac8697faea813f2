package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// Bounds of POST /v1/impact: an analysis re-evaluates every decision it
// reads, so a server bounds how many one request may ask for.
const (
	DefaultImpactLimit = 1000
	MaxImpactLimit     = 10000
)

// replayDecision re-evaluates a recorded decision with the bundle revision
// and context it was made with.
func (s *Server) replayDecision(c echo.Context) error {
	if s.cfg.Bundles == nil {
		return tollgate.Errorf(tollgate.EUnavailable, "this server keeps no bundle revisions, so it cannot replay")
	}
	ctx := c.Request().Context()
	rec, err := s.cfg.Store.Decision(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	release, err := s.limits.evaluation(ctx)
	if err != nil {
		return err
	}
	defer release()
	replay, err := rego.ReplayRecord(ctx, s.cfg.Bundles, rec)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, replay)
}

// impactBody is POST /v1/impact's request: a candidate configuration, as
// in a simulation, and the history to re-evaluate, as in GET /v1/decisions.
type impactBody struct {
	Config   *configBody `json:"config"`
	Project  string      `json:"project"`
	Pipeline string      `json:"pipeline"`
	Branch   string      `json:"branch"`
	Status   string      `json:"status"`
	Since    string      `json:"since"`
	Until    string      `json:"until"`
	Limit    *int        `json:"limit"`
	Examples *int        `json:"examples"`
}

// impact re-evaluates recorded decisions under the active bundle with the
// candidate configuration and reports what would change. Nothing is
// recorded.
func (s *Server) impact(c echo.Context) error {
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var ib impactBody
	if err := tollgate.DecodeStrict(body, &ib); err != nil {
		return err
	}
	// The filters follow the rules of the query's (checkURL): shown back
	// in errors, and asked of the store.
	for _, f := range []struct{ name, value string }{{"project", ib.Project}, {"pipeline", ib.Pipeline}, {"branch", ib.Branch}} {
		if err := tollgate.CheckIdentifier(f.name, f.value); err != nil {
			return err
		}
	}
	opts := rego.ImpactOptions{Limit: DefaultImpactLimit, Filter: tollgate.DecisionFilter{
		Project: ib.Project, Pipeline: ib.Pipeline, Branch: ib.Branch, Status: tollgate.Status(ib.Status)}}
	if opts.Filter.Status != "" && opts.Filter.Status != tollgate.Accepted && opts.Filter.Status != tollgate.Refused {
		return tollgate.Errorf(tollgate.EInvalid, "status must be accepted or refused, got %q", ib.Status)
	}
	for _, t := range []struct {
		name, value string
		dst         *time.Time
	}{{"since", ib.Since, &opts.Filter.Since}, {"until", ib.Until, &opts.Filter.Until}} {
		if t.value != "" {
			if *t.dst, err = parseTime(t.name, t.value); err != nil {
				return err
			}
		}
	}
	if ib.Limit != nil {
		if *ib.Limit < 1 || *ib.Limit > MaxImpactLimit {
			return tollgate.Errorf(tollgate.EInvalid, "limit must be a number from 1 to %d, got %d: run `tollgate impact` against the store for more", MaxImpactLimit, *ib.Limit)
		}
		opts.Limit = *ib.Limit
	}
	if ib.Examples != nil {
		if *ib.Examples < 1 || *ib.Examples > 100 {
			return tollgate.Errorf(tollgate.EInvalid, "examples must be a number from 1 to 100, got %d", *ib.Examples)
		}
		opts.Examples = *ib.Examples
	}
	ctx := c.Request().Context()
	candidate := s.cfg.Engine.Policy()
	if ib.Config != nil && (ib.Config.GlobalPolicy != nil || ib.Config.Projects != nil) {
		b, err := candidate.Bundle().WithConfig(ib.Config.GlobalPolicy, ib.Config.Projects)
		if err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "config: %v", err)
		}
		if candidate, err = rego.Compile(ctx, b); err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "config: %v", err)
		}
	}
	release, err := s.limits.evaluation(ctx)
	if err != nil {
		return err
	}
	defer release()
	impact, err := rego.AnalyseImpact(ctx, s.cfg.Store, candidate, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, impact)
}
