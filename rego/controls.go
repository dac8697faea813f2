package rego

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/glob"

	"github.com/tollgate/tollgate"
)

// Controls manages exceptions, emergency freezes and incident mode over a
// ControlStore: who may move them from one state to another, within which
// bounds (global_policy.exceptions and .incident). The policy decides what
// they do to a request; this only keeps them.
type Controls struct {
	Store    tollgate.ControlStore
	Policies PolicySource
	Now      func() time.Time
	NewID    func() string
	// Refresh is how long the controls in force are cached between reads
	// of the store: a change made through another replica applies here
	// within Refresh. Changes made through this one apply at once.
	Refresh time.Duration

	mu      sync.Mutex
	cached  []tollgate.Control
	readAt  time.Time // zero: nothing cached
	version uint64    // bumped by every local change, so a read that raced one is not cached
}

// Bounds of what a control may ask.
const (
	MaxFreezeTTL = 7 * 24 * time.Hour // an emergency freeze; a longer one belongs in global_policy
	minTTL       = time.Second
)

// InForce returns the controls in force at at, from the cache when it is
// fresh. The policy checks each expiry again at the evaluation time.
func (c *Controls) InForce(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	c.mu.Lock()
	if !c.readAt.IsZero() && time.Since(c.readAt) < c.Refresh {
		list := c.cached
		c.mu.Unlock()
		return list, nil
	}
	version := c.version
	c.mu.Unlock()

	list, err := c.Store.InForce(ctx, at)
	if err != nil {
		return nil, fmt.Errorf("controls in force: %w", err)
	}
	c.mu.Lock()
	if c.version == version {
		c.cached, c.readAt = list, time.Now()
	}
	c.mu.Unlock()
	return list, nil
}

// Invalidate drops the cache: the next evaluation reads the store.
func (c *Controls) Invalidate() {
	c.mu.Lock()
	c.cached, c.readAt = nil, time.Time{}
	c.version++
	c.mu.Unlock()
}

// ExceptionRequest is what an exception waives, where, why and until when.
type ExceptionRequest struct {
	Code          string    `json:"code"`
	FindingID     string    `json:"finding_id"`
	Project       string    `json:"project"`
	Pipeline      string    `json:"pipeline"`
	Environment   string    `json:"environment"`
	Branch        string    `json:"branch"`
	Justification string    `json:"justification"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// neverWaived lists the codes no exception waives (exceptions.rego says the
// same; this refuses to record a request for them).
var neverWaived = []string{tollgate.CodeLicenceInvalid, tollgate.CodeLicenceExpired, tollgate.CodeProjectNotManaged, tollgate.CodePolicyError}

// breakGlassCodes are the codes a break-glass may waive: freezes and windows.
var breakGlassCodes = []string{tollgate.CodeFreezeActive, tollgate.CodeTimeWindowViolation, tollgate.CodeWeekendViolation}

// findingCodes are the codes an exception may waive for one finding.
var findingCodes = []string{"risk_threshold_exceeded", "risk_drift"}

func invalid(format string, args ...any) error {
	return tollgate.Errorf(tollgate.EInvalid, format, args...)
}

// check validates r against the active configuration, for an exception
// that may last at most maxTTL from now.
func (r ExceptionRequest) check(config *Config, now time.Time, maxTTL time.Duration) error {
	switch {
	case r.Code == "":
		return invalid("code is required: the reason code to waive, such as branch_not_allowed")
	case slices.Contains(neverWaived, r.Code):
		return invalid("%s cannot be waived: no exception applies to the licence, to project resolution or to policy errors", r.Code)
	case r.FindingID != "" && !slices.Contains(findingCodes, r.Code):
		return invalid("finding_id goes with the codes %s only", strings.Join(findingCodes, " and "))
	case r.Project == "":
		return invalid("project is required: the name of the project in the projects registry")
	case strings.TrimSpace(r.Justification) == "":
		return invalid("justification is required: say why the rule should not apply")
	case r.ExpiresAt.IsZero():
		return invalid("expires_at is required: an exception always ends")
	case !r.ExpiresAt.After(now):
		return invalid("expires_at %s is not in the future", r.ExpiresAt.Format(time.RFC3339))
	case r.ExpiresAt.Sub(now) > maxTTL:
		return invalid("expires_at %s is too far: an exception lasts at most %s (global_policy.exceptions)", r.ExpiresAt.Format(time.RFC3339), maxTTL)
	}
	if !config.hasProject(r.Project) {
		return invalid("project %q is not in the projects registry of the active bundle", r.Project)
	}
	if _, ok := config.pipeline(r.Project, r.Pipeline); r.Pipeline != "" && !ok {
		return invalid("project %q has no pipeline %q", r.Project, r.Pipeline)
	}
	if r.Branch != "" {
		if _, err := glob.Compile(r.Branch, '/'); err != nil {
			return invalid("branch %q is not a valid glob pattern: %v", r.Branch, err)
		}
	}
	return nil
}

func (c *Controls) config() *Config { return c.Policies.Policy().Bundle().Config }

func (c *Controls) exceptionPolicy() ExceptionPolicy {
	if e := c.config().GlobalPolicy.Exceptions; e != nil {
		return *e
	}
	return ExceptionPolicy{}
}

// approvalsRequired is how many approvers an exception for environment
// needs: the largest number of any environment when it is for all.
func (p ExceptionPolicy) approvalsRequired(environment string) int {
	if environment != "" {
		return max(1, p.Approvals[environment])
	}
	n := 1
	for _, v := range p.Approvals {
		n = max(n, v)
	}
	return n
}

// create stores a new control made by by now, with its creation event.
func (c *Controls) create(ctx context.Context, ctl tollgate.Control, by string, now time.Time) (tollgate.Control, error) {
	if by == "" {
		return tollgate.Control{}, tollgate.Errorf(tollgate.EInternal, "a control needs the identity of who makes it")
	}
	ctl.ID, ctl.CreatedBy, ctl.CreatedAt = c.NewID(), by, now
	ctl.History = []tollgate.ControlEvent{{At: now, By: by, Action: tollgate.ActionCreate, To: ctl.State, Comment: ctl.Reason}}
	if err := c.Store.CreateControl(ctx, ctl); err != nil {
		return tollgate.Control{}, err
	}
	c.Invalidate()
	return ctl, nil
}

// RequestException records a request for an exception, to be approved by
// someone else.
func (c *Controls) RequestException(ctx context.Context, by string, r ExceptionRequest) (tollgate.Control, error) {
	now := c.Now().UTC()
	policy := c.exceptionPolicy()
	maxDays := policy.MaxDays
	if maxDays == 0 {
		maxDays = DefaultExceptionMaxDays
	}
	if err := r.check(c.config(), now, time.Duration(maxDays)*24*time.Hour); err != nil {
		return tollgate.Control{}, err
	}
	return c.create(ctx, exceptionControl(r, tollgate.ExceptionWaiver, tollgate.StateRequested, policy.approvalsRequired(r.Environment)), by, now)
}

// BreakGlass lets one pipeline through freezes or windows at once, for a
// short time: an exception granted by its approver, recorded like the others.
func (c *Controls) BreakGlass(ctx context.Context, by string, r ExceptionRequest) (tollgate.Control, error) {
	now := c.Now().UTC()
	policy := c.exceptionPolicy()
	maxHours := policy.BreakGlassMaxHours
	if maxHours == 0 {
		maxHours = DefaultBreakGlassMaxHours
	}
	switch {
	case !slices.Contains(breakGlassCodes, r.Code):
		return tollgate.Control{}, invalid("a break-glass waives %s only, not %q", strings.Join(breakGlassCodes, ", "), r.Code)
	case r.Pipeline == "":
		return tollgate.Control{}, invalid("pipeline is required: a break-glass lets one named pipeline through")
	case r.FindingID != "":
		return tollgate.Control{}, invalid("finding_id does not go with a break-glass")
	}
	if err := r.check(c.config(), now, time.Duration(maxHours)*time.Hour); err != nil {
		return tollgate.Control{}, err
	}
	ctl := exceptionControl(r, tollgate.ExceptionBreakGlass, tollgate.StateApproved, 1)
	ctl.Approvals = []tollgate.Approval{{By: by, At: now}}
	return c.create(ctx, ctl, by, now)
}

func exceptionControl(r ExceptionRequest, kind string, state tollgate.ControlState, approvals int) tollgate.Control {
	return tollgate.Control{
		Kind: tollgate.KindException, State: state, Reason: r.Justification, ExpiresAt: r.ExpiresAt.UTC(),
		ExceptionKind: kind, Code: r.Code, FindingID: r.FindingID,
		Project: r.Project, Pipeline: r.Pipeline, Environment: r.Environment, Branch: r.Branch,
		ApprovalsRequired: approvals,
	}
}

// update applies change to control id of kind, then drops the cache.
func (c *Controls) update(ctx context.Context, id string, kind tollgate.ControlKind, change func(*tollgate.Control, time.Time) (tollgate.ControlEvent, error)) (tollgate.Control, error) {
	now := c.Now().UTC()
	ctl, err := c.Store.UpdateControl(ctx, id, func(ctl *tollgate.Control) (tollgate.ControlEvent, error) {
		if ctl.Kind != kind {
			return tollgate.ControlEvent{}, tollgate.Errorf(tollgate.ENotFound, "no %s %q: it is a %s", kind, id, ctl.Kind)
		}
		return change(ctl, now)
	})
	if err != nil {
		return tollgate.Control{}, err
	}
	c.Invalidate()
	return ctl, nil
}

// Approve adds by's approval to a requested exception; with enough
// approvals, it is approved. Nobody approves their own request.
func (c *Controls) Approve(ctx context.Context, id, by, comment string) (tollgate.Control, error) {
	return c.update(ctx, id, tollgate.KindException, func(e *tollgate.Control, now time.Time) (tollgate.ControlEvent, error) {
		switch {
		case by == e.CreatedBy:
			return tollgate.ControlEvent{}, tollgate.Errorf(tollgate.EForbidden, "%s requested exception %s: someone else must approve it", by, e.ID)
		case slices.ContainsFunc(e.Approvals, func(a tollgate.Approval) bool { return a.By == by }):
			return tollgate.ControlEvent{}, tollgate.Errorf(tollgate.EConflict, "%s has already approved exception %s: it needs %d different approvers", by, e.ID, e.ApprovalsRequired)
		case e.State == tollgate.StateRequested && !now.Before(e.ExpiresAt):
			return tollgate.ControlEvent{}, tollgate.Errorf(tollgate.EConflict, "exception %s expired at %s before it was approved", e.ID, e.ExpiresAt.Format(time.RFC3339))
		}
		to := tollgate.StateRequested
		if len(e.Approvals)+1 >= e.ApprovalsRequired {
			to = tollgate.StateApproved
		}
		ev, err := e.Transition(tollgate.ActionApprove, by, comment, now, to, tollgate.StateRequested)
		if err == nil {
			e.Approvals = append(e.Approvals, tollgate.Approval{By: by, At: now})
		}
		return ev, err
	})
}

// Reject turns a request down (its requester may withdraw it this way).
func (c *Controls) Reject(ctx context.Context, id, by, comment string) (tollgate.Control, error) {
	return c.update(ctx, id, tollgate.KindException, func(e *tollgate.Control, now time.Time) (tollgate.ControlEvent, error) {
		return e.Transition(tollgate.ActionReject, by, comment, now, tollgate.StateRejected, tollgate.StateRequested)
	})
}

// Revoke ends an approved exception before its expiry.
func (c *Controls) Revoke(ctx context.Context, id, by, comment string) (tollgate.Control, error) {
	return c.update(ctx, id, tollgate.KindException, func(e *tollgate.Control, now time.Time) (tollgate.ControlEvent, error) {
		return e.Transition(tollgate.ActionRevoke, by, comment, now, tollgate.StateRevoked, tollgate.StateApproved)
	})
}

// checkTTL validates the time to live of a freeze or an incident.
func checkTTL(ttl, maxTTL time.Duration) error {
	switch {
	case ttl < minTTL:
		return invalid("ttl is required: a duration such as \"2h\" (at least %s), after which it ends by itself", minTTL)
	case ttl > maxTTL:
		return invalid("ttl %s is too long: at most %s", ttl, maxTTL)
	}
	return nil
}

// Freeze declares an emergency freeze of environments (all when none) for
// ttl, on top of the freezes in global_policy.
func (c *Controls) Freeze(ctx context.Context, by, reason string, environments []string, ttl time.Duration) (tollgate.Control, error) {
	if strings.TrimSpace(reason) == "" {
		return tollgate.Control{}, invalid("reason is required: it is shown in every refusal the freeze causes")
	}
	if environments != nil && len(environments) == 0 {
		return tollgate.Control{}, invalid("environments: empty list: omit it to freeze every environment")
	}
	if err := checkTTL(ttl, MaxFreezeTTL); err != nil {
		return tollgate.Control{}, err
	}
	now := c.Now().UTC()
	return c.create(ctx, tollgate.Control{Kind: tollgate.KindFreeze, State: tollgate.StateActive, Reason: reason,
		ExpiresAt: now.Add(ttl), Environments: environments}, by, now)
}

// Lift ends an emergency freeze or an incident before its expiry.
func (c *Controls) Lift(ctx context.Context, kind tollgate.ControlKind, id, by, comment string) (tollgate.Control, error) {
	return c.update(ctx, id, kind, func(ctl *tollgate.Control, now time.Time) (tollgate.ControlEvent, error) {
		return ctl.Transition(tollgate.ActionLift, by, comment, now, tollgate.StateLifted, tollgate.StateActive)
	})
}

// StartIncident turns incident mode on for ttl. One incident at a time.
func (c *Controls) StartIncident(ctx context.Context, by, reason string, ttl time.Duration) (tollgate.Control, error) {
	if strings.TrimSpace(reason) == "" {
		return tollgate.Control{}, invalid("reason is required: it is shown in every decision made during the incident")
	}
	maxHours := DefaultIncidentMaxHours
	if i := c.config().GlobalPolicy.Incident; i != nil && i.MaxHours > 0 {
		maxHours = i.MaxHours
	}
	if err := checkTTL(ttl, time.Duration(maxHours)*time.Hour); err != nil {
		return tollgate.Control{}, err
	}
	now := c.Now().UTC()
	inForce, err := c.Store.InForce(ctx, now)
	if err != nil {
		return tollgate.Control{}, err
	}
	for _, ctl := range inForce {
		if ctl.Kind == tollgate.KindIncident {
			return tollgate.Control{}, tollgate.Errorf(tollgate.EConflict, "incident %s is already on until %s: end it first", ctl.ID, ctl.ExpiresAt.Format(time.RFC3339))
		}
	}
	return c.create(ctx, tollgate.Control{Kind: tollgate.KindIncident, State: tollgate.StateActive, Reason: reason,
		ExpiresAt: now.Add(ttl)}, by, now)
}

// forRequest sorts the controls in force into what an evaluation of a
// request of project gets: the project's exceptions, the freezes and the
// incident.
func forRequest(list []tollgate.Control, project string, at time.Time) (exceptions, freezes []tollgate.Control, incident *tollgate.Control) {
	for _, ctl := range list {
		if !ctl.ExpiresAt.After(at) {
			continue
		}
		switch ctl.Kind {
		case tollgate.KindException:
			if project != "" && ctl.Project == project && ctl.State == tollgate.StateApproved {
				exceptions = append(exceptions, ctl)
			}
		case tollgate.KindFreeze:
			freezes = append(freezes, ctl)
		case tollgate.KindIncident:
			if incident == nil {
				incident = &ctl
			}
		}
	}
	return exceptions, freezes, incident
}
