package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// The controls API: exceptions, emergency freezes and incidents. Every
// change is made in the name of the caller's identity, which the history of
// the control records.

// identity is who is asking: the authenticated token's name.
func identity(c echo.Context) string { return tollgate.IdentityFrom(c.Request().Context()) }

// controls returns the server's controls service, or a 404 when it has none.
func (s *Server) controls() (*rego.Controls, error) {
	if s.cfg.Controls == nil {
		return nil, tollgate.Errorf(tollgate.ENotFound, "this server keeps no exceptions, freezes or incidents")
	}
	return s.cfg.Controls, nil
}

// decodeBody reads a JSON body into v; an empty body leaves v as it is.
func (s *Server) decodeBody(c echo.Context, v any) error {
	if c.Request().ContentLength == 0 {
		return nil
	}
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	return tollgate.DecodeStrict(body, v)
}

func (s *Server) requestException(c echo.Context) error {
	return s.createException(c, (*rego.Controls).RequestException)
}

func (s *Server) breakGlass(c echo.Context) error {
	return s.createException(c, (*rego.Controls).BreakGlass)
}

func (s *Server) createException(c echo.Context, create func(*rego.Controls, context.Context, string, rego.ExceptionRequest) (tollgate.Control, error)) error {
	ctl, err := s.controls()
	if err != nil {
		return err
	}
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var b struct {
		rego.ExceptionRequest
		ExpiresAt string `json:"expires_at"` // parsed here, to name the field in errors
	}
	if err := tollgate.DecodeStrict(body, &b); err != nil {
		return err
	}
	r := b.ExceptionRequest
	if err := firstError(
		tollgate.CheckIdentifier("code", r.Code), tollgate.CheckIdentifier("finding_id", r.FindingID),
		tollgate.CheckIdentifier("project", r.Project), tollgate.CheckIdentifier("pipeline", r.Pipeline),
		tollgate.CheckIdentifier("environment", r.Environment), tollgate.CheckIdentifier("branch", r.Branch), // a glob, not a ref
		tollgate.CheckText("justification", r.Justification),
	); err != nil {
		return err
	}
	if b.ExpiresAt != "" {
		if r.ExpiresAt, err = parseTime("expires_at", b.ExpiresAt); err != nil {
			return err
		}
	}
	e, err := create(ctl, c.Request().Context(), identity(c), r)
	if err != nil {
		return unavailableUnlessInvalid(err, "the exception could not be recorded")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/exceptions/"+e.ID)
	return c.JSON(http.StatusCreated, e)
}

// transition is an approve, reject, revoke, lift or end: body {"comment"}.
func (s *Server) transition(do func(ctl *rego.Controls, ctx context.Context, id, by, comment string) (tollgate.Control, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctl, err := s.controls()
		if err != nil {
			return err
		}
		var body struct {
			Comment string `json:"comment"`
		}
		if err := s.decodeBody(c, &body); err != nil {
			return err
		}
		if err := tollgate.CheckText("comment", body.Comment); err != nil {
			return err
		}
		out, err := s.change(c.Request().Context(), ctl, do, c.Param("id"), body.Comment)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// change makes a transition of control id in the name of the identity of
// ctx: for the API and the Gate view's forms alike.
func (s *Server) change(ctx context.Context, ctl *rego.Controls, do func(ctl *rego.Controls, ctx context.Context, id, by, comment string) (tollgate.Control, error), id, comment string) (tollgate.Control, error) {
	out, err := do(ctl, ctx, id, tollgate.IdentityFrom(ctx), comment)
	if err != nil {
		return out, unavailableUnlessInvalid(err, "the change could not be recorded")
	}
	// An exception approved, a freeze lifted, an incident ended: the
	// jobs waiting at the gate are checked again now.
	s.WakeJobs(ctx)
	return out, nil
}

// decideException is the Gate view's approve and reject forms.
func (s *Server) decideException(ctx context.Context, approve bool, id, comment string) (tollgate.Control, error) {
	ctl, err := s.controls()
	if err != nil {
		return tollgate.Control{}, err
	}
	do := (*rego.Controls).Reject
	if approve {
		do = (*rego.Controls).Approve
	}
	return s.change(ctx, ctl, do, id, comment)
}

// lift ends a freeze or an incident of kind.
func (s *Server) lift(kind tollgate.ControlKind) echo.HandlerFunc {
	return s.transition(func(ctl *rego.Controls, ctx context.Context, id, by, comment string) (tollgate.Control, error) {
		return ctl.Lift(ctx, kind, id, by, comment)
	})
}

// ttlBody is the body that starts a freeze or an incident.
type ttlBody struct {
	Reason       string   `json:"reason"`
	Environments []string `json:"environments"`
	TTL          string   `json:"ttl"`
}

func (s *Server) decodeTTL(c echo.Context) (ttlBody, time.Duration, error) {
	var b ttlBody
	body, err := s.readJSON(c)
	if err != nil {
		return b, 0, err
	}
	if err := tollgate.DecodeStrict(body, &b); err != nil {
		return b, 0, err
	}
	if err := tollgate.CheckText("reason", b.Reason); err != nil {
		return b, 0, err
	}
	for i, env := range b.Environments {
		if err := tollgate.CheckIdentifier(fmt.Sprintf("environments[%d]", i), env); err != nil {
			return b, 0, err
		}
	}
	if b.TTL == "" {
		return b, 0, tollgate.Errorf(tollgate.EInvalid, `ttl is required: a duration such as "2h"`)
	}
	ttl, err := time.ParseDuration(b.TTL)
	if err != nil {
		return b, 0, tollgate.Errorf(tollgate.EInvalid, `ttl must be a duration such as "90m" or "2h", got %q`, b.TTL)
	}
	return b, ttl, nil
}

func (s *Server) createFreeze(c echo.Context) error {
	ctl, err := s.controls()
	if err != nil {
		return err
	}
	b, ttl, err := s.decodeTTL(c)
	if err != nil {
		return err
	}
	f, err := ctl.Freeze(c.Request().Context(), identity(c), b.Reason, b.Environments, ttl)
	if err != nil {
		return unavailableUnlessInvalid(err, "the freeze could not be recorded")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/freezes/"+f.ID)
	return c.JSON(http.StatusCreated, f)
}

func (s *Server) startIncident(c echo.Context) error {
	ctl, err := s.controls()
	if err != nil {
		return err
	}
	b, ttl, err := s.decodeTTL(c)
	if err != nil {
		return err
	}
	if b.Environments != nil {
		return tollgate.Errorf(tollgate.EInvalid, "environments: an incident applies to every environment")
	}
	i, err := ctl.StartIncident(c.Request().Context(), identity(c), b.Reason, ttl)
	if err != nil {
		return unavailableUnlessInvalid(err, "the incident could not be recorded")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/incidents/"+i.ID)
	return c.JSON(http.StatusCreated, i)
}

// listControls lists controls of kind, filtered by the query.
func (s *Server) listControls(kind tollgate.ControlKind, key string, filters ...string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctl, err := s.controls()
		if err != nil {
			return err
		}
		f := tollgate.ControlFilter{Kind: kind}
		q := c.QueryParams()
		for name := range q {
			if name != "limit" && !slices.Contains(filters, name) {
				return tollgate.Errorf(tollgate.EInvalid, "unknown query parameter %q: filters are %v and limit", name, filters)
			}
			switch v := q.Get(name); name {
			case "state":
				f.State = tollgate.ControlState(v)
			case "project":
				f.Project = v
			case "code":
				f.Code = v
			case "limit":
				if f.Limit, err = parseLimit(v); err != nil {
					return err
				}
			}
		}
		list, err := ctl.Store.Controls(c.Request().Context(), f)
		if err != nil {
			return err
		}
		if list == nil {
			list = []tollgate.Control{}
		}
		return c.JSON(http.StatusOK, map[string]any{key: list})
	}
}

// getControl returns one control of kind with its history.
func (s *Server) getControl(kind tollgate.ControlKind) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctl, err := s.controls()
		if err != nil {
			return err
		}
		out, err := ctl.Store.Control(c.Request().Context(), c.Param("id"))
		if err == nil && out.Kind != kind {
			err = tollgate.Errorf(tollgate.ENotFound, "no %s %q", kind, c.Param("id"))
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// firstError is the first of errs that is not nil: the checks of a body's
// fields, in the order the body lists them.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
