package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// GateConfig is what the Gate view needs, in Config.Gate. The server
// provides each part from the same code as its API.
type GateConfig struct {
	// Gates is the gate of every environment now, as the active policy
	// says (rego.Gate.Gates).
	Gates func(ctx context.Context) ([]rego.EnvironmentGate, error)
	// Controls gives the freezes and incident in force and the exceptions
	// awaiting approval.
	Controls *rego.Controls
	// Jobs, if set, gives the jobs waiting at the gate.
	Jobs tollgate.JobStore
	// CanApprove reports whether the login of a request may approve and
	// reject exceptions (a token with the approve scope).
	CanApprove func(r *http.Request) bool
	// Decide approves (approve true) or rejects exception id in the name of
	// the identity of ctx, as POST /v1/exceptions/{id}/approve|reject do:
	// the same rules, the same wake-up of the waiting jobs.
	Decide func(ctx context.Context, approve bool, id, comment string) (tollgate.Control, error)
}

// GatePath is the Gate view; ActionPrefix the forms that approve and reject
// exceptions, which the login cookie authorizes with a CSRF token.
const (
	GatePath     = Prefix + "gate"
	ActionPrefix = Prefix + "exceptions/"
)

// gateView is what the Gate view shows.
type gateView struct {
	Now      time.Time
	Gates    []rego.EnvironmentGate
	Freezes  []tollgate.Control // emergency freezes in force
	Incident *tollgate.Control
	Jobs     []tollgate.Job // open: queued or waiting, next check first
	OpenJobs int            // how many there are: more than Jobs past the page size
	JobsOff  bool           // this server keeps no jobs
	// MoreExceptions says that more exceptions await approval than the
	// page lists (the newest are).
	MoreExceptions bool
	Exceptions     []tollgate.Control
	CanApprove     bool
	Identity       string
	CSRF           string
}

// Gate is the Gate view: the gate of every environment, the controls in
// force, the jobs waiting and the exceptions awaiting approval.
func (u *UI) Gate(c echo.Context) error {
	g := u.cfg.Gate
	if g == nil || g.Gates == nil || g.Controls == nil {
		return tollgate.Errorf(tollgate.ENotFound, "this server has no Gate view: it keeps no exceptions, freezes or incidents")
	}
	ctx := c.Request().Context()
	now := u.cfg.Now().UTC()
	v := gateView{Now: now, CanApprove: g.CanApprove != nil && g.Decide != nil && g.CanApprove(c.Request()),
		Identity: tollgate.IdentityFrom(ctx)}
	var err error
	if v.Gates, err = g.Gates(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Said on the page: an operator must fix the bundle.
		return tollgate.Errorf(tollgate.EInternal, "the active policy cannot say whether the gates are open: %v", err)
	}
	inForce, err := g.Controls.InForce(ctx, now)
	if err != nil {
		return err
	}
	for _, ctl := range inForce {
		if !ctl.ExpiresAt.After(now) {
			continue
		}
		switch ctl.Kind {
		case tollgate.KindFreeze:
			v.Freezes = append(v.Freezes, ctl)
		case tollgate.KindIncident:
			v.Incident = &ctl
		}
	}
	requested, err := g.Controls.Store.Controls(ctx, tollgate.ControlFilter{Kind: tollgate.KindException,
		State: tollgate.StateRequested, Limit: tollgate.MaxPageSize})
	if err != nil {
		return err
	}
	v.MoreExceptions = len(requested) == tollgate.MaxPageSize
	for _, e := range requested {
		if e.ExpiresAt.After(now) { // the expiry worker has not got to the others yet
			v.Exceptions = append(v.Exceptions, e)
		}
	}
	if g.Jobs == nil {
		v.JobsOff = true
	} else {
		for _, state := range []tollgate.JobState{tollgate.JobWaiting, tollgate.JobQueued} {
			jobs, err := g.Jobs.Jobs(ctx, tollgate.JobFilter{State: state, Limit: tollgate.MaxPageSize})
			if err != nil {
				return err
			}
			v.Jobs = append(v.Jobs, jobs...)
		}
		slices.SortStableFunc(v.Jobs, func(a, b tollgate.Job) int { return a.NextCheckAt.Compare(b.NextCheckAt) })
		// Each state's list stops at the page size: the count says when
		// the page does not show them all.
		stats, err := g.Jobs.JobStats(ctx)
		if err != nil {
			return err
		}
		for _, n := range stats.Open {
			v.OpenJobs += n
		}
	}
	if v.CanApprove {
		v.CSRF = csrfToken(Token(c.Request()))
	}
	return u.render(c, http.StatusOK, "gate", "Gate", v)
}

// Approve and Reject are the forms of the Gate view's buttons.
func (u *UI) Approve(c echo.Context) error { return u.decide(c, true) }

// Reject turns an exception request down.
func (u *UI) Reject(c echo.Context) error { return u.decide(c, false) }

func (u *UI) decide(c echo.Context, approve bool) error {
	g := u.cfg.Gate
	if g == nil || g.Decide == nil {
		return tollgate.Errorf(tollgate.ENotFound, "this server keeps no exceptions")
	}
	req := c.Request()
	if err := checkCSRF(req); err != nil {
		return err
	}
	comment := c.FormValue("comment")
	if err := tollgate.CheckText("comment", comment); err != nil {
		return err
	}
	e, err := g.Decide(req.Context(), approve, c.Param("id"), comment)
	if err != nil {
		return err
	}
	return u.render(c, http.StatusOK, "exception", "Exception "+e.ID, map[string]any{"Exception": e, "Approved": approve})
}

// checkCSRF refuses a form that another site's page could have sent: it
// must come from a page of this server (Sec-Fetch-Site, or Origin for
// browsers without it; a request with neither is refused) and carry the
// CSRF token of the login's cookie, which only a page of this server shows.
// A request that sends an Authorization header is authenticated by it, not
// by the cookie (the server prefers the header), and needs neither: no
// other site can have a browser send that header (it takes a CORS
// preflight, which tollgate never grants).
func checkCSRF(r *http.Request) error {
	if r.Header.Get("Authorization") != "" {
		return nil
	}
	if !sameOriginAction(r) {
		return tollgate.Errorf(tollgate.EForbidden, "the form must be sent from this server's own Gate page (Sec-Fetch-Site or Origin says it was not)")
	}
	want := csrfToken(Token(r))
	if got := r.PostFormValue("csrf"); got == "" || !hmac.Equal([]byte(got), []byte(want)) {
		return tollgate.Errorf(tollgate.EForbidden, "the form's CSRF token is missing or not this login's: reload the Gate page and try again")
	}
	return nil
}

// sameOriginAction is sameOrigin for the forms that change something: a
// browser always says where a form comes from, so a request that says
// nothing is refused, and "none" (typed in the address bar) is not a form.
func sameOriginAction(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	return r.Header.Get("Origin") != "" && sameOrigin(r)
}

// csrfToken is the CSRF token of a login: an HMAC of a fixed label keyed
// with the login's API token. Only who holds the token (which the
// HttpOnly cookie hides from scripts and other sites) can make it, and it
// reveals nothing of the token. Keyed with the token rather than with a
// secret of the process, it is the same on every replica behind a load
// balancer, with nothing to share or rotate; logging in with another token
// changes it.
func csrfToken(token string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("tollgate history page CSRF v1"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// isAction reports whether a request is one of the forms the cookie
// authorizes besides the GET pages.
func isAction(r *http.Request) bool {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, ActionPrefix) {
		return false
	}
	return strings.HasSuffix(r.URL.Path, "/approve") || strings.HasSuffix(r.URL.Path, "/reject")
}
