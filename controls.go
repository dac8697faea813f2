package tollgate

import (
	"context"
	"slices"
	"time"
)

// A control is a decision-time rule that people switch on and off while the
// service runs, as opposed to the bundle's configuration: an exception
// (a waiver, or a break-glass), an emergency freeze, or incident mode. Each
// has a lifecycle, every step of which is recorded, and an expiry that
// holds even if nobody acts.

// ControlKind says which of the three a control is.
type ControlKind string

// Control kinds.
const (
	KindException ControlKind = "exception" // a waiver or a break-glass
	KindFreeze    ControlKind = "freeze"    // an emergency freeze
	KindIncident  ControlKind = "incident"  // incident mode
)

// ControlState is where a control is in its lifecycle.
type ControlState string

// Control states. Exceptions go requested → approved | rejected, and
// approved → revoked | expired (a request nobody approved in time expires
// too). Freezes and incidents are active → lifted | expired.
const (
	StateRequested ControlState = "requested"
	StateApproved  ControlState = "approved"
	StateRejected  ControlState = "rejected"
	StateRevoked   ControlState = "revoked"
	StateActive    ControlState = "active"
	StateLifted    ControlState = "lifted"
	StateExpired   ControlState = "expired"
)

// Live reports whether a control in state s can still change, and so
// expire: the expiry worker looks at these only.
func (s ControlState) Live() bool {
	return s == StateRequested || s == StateApproved || s == StateActive
}

// InForce reports whether a control in state s applies to evaluations
// (until its expiry, which evaluation checks itself).
func (s ControlState) InForce() bool { return s == StateApproved || s == StateActive }

// Exception kinds.
const (
	ExceptionWaiver     = "waiver"      // asked for, then approved by someone else
	ExceptionBreakGlass = "break_glass" // granted at once by an approver, for a short time
)

// Control is one exception, emergency freeze or incident. The fields that
// do not apply to its kind are empty.
type Control struct {
	ID        string       `json:"id"`
	Kind      ControlKind  `json:"kind"`
	State     ControlState `json:"state"`
	Reason    string       `json:"reason"` // the justification, the freeze's or the incident's reason
	CreatedBy string       `json:"created_by"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at"`

	// Exceptions.
	ExceptionKind     string     `json:"exception_kind,omitempty"` // ExceptionWaiver or ExceptionBreakGlass
	Code              string     `json:"code,omitempty"`           // the reason code waived
	FindingID         string     `json:"finding_id,omitempty"`     // waives that finding only
	Project           string     `json:"project,omitempty"`
	Pipeline          string     `json:"pipeline,omitempty"`    // "" = every pipeline of the project
	Environment       string     `json:"environment,omitempty"` // "" = every environment
	Branch            string     `json:"branch,omitempty"`      // a glob; "" = every branch
	ApprovalsRequired int        `json:"approvals_required,omitempty"`
	Approvals         []Approval `json:"approvals,omitempty"`

	// Freezes: the environments frozen; none means every environment.
	Environments []string `json:"environments,omitempty"`

	// The append-only history of the control, oldest first.
	History []ControlEvent `json:"history"`
}

// Approval is one approver's yes.
type Approval struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// ControlEvent is one step of a control's lifecycle: who did what, when and
// why. Events are only ever appended.
type ControlEvent struct {
	At      time.Time    `json:"at"`
	By      string       `json:"by"` // an identity, or "tollgate" for the expiry worker
	Action  string       `json:"action"`
	From    ControlState `json:"from,omitempty"` // "" for the creation
	To      ControlState `json:"to"`
	Comment string       `json:"comment,omitempty"`
}

// Actions recorded in ControlEvent.Action.
const (
	ActionCreate  = "create"
	ActionApprove = "approve"
	ActionReject  = "reject"
	ActionRevoke  = "revoke"
	ActionLift    = "lift"
	ActionExpire  = "expire"
)

// WorkerIdentity is who the expiry worker acts as.
const WorkerIdentity = "tollgate"

// ControlFilter selects controls. Zero fields do not filter.
type ControlFilter struct {
	Kind    ControlKind
	State   ControlState
	Project string
	Code    string
	Limit   int // the store caps it at MaxPageSize; 0 means DefaultPageSize
}

// ControlStore keeps the controls and their history.
type ControlStore interface {
	// CreateControl stores c, whose History holds its creation event.
	CreateControl(ctx context.Context, c Control) error

	// Control returns a control by ID with its history, or an ENotFound
	// error.
	Control(ctx context.Context, id string) (Control, error)

	// Controls lists controls, newest first, without their history.
	Controls(ctx context.Context, f ControlFilter) ([]Control, error)

	// UpdateControl runs change on the stored control and stores the result
	// with the event change returns appended to its history, as one atomic
	// step: no other update of the same control runs in between, across
	// every process sharing the store. If change fails, nothing changes.
	UpdateControl(ctx context.Context, id string, change func(*Control) (ControlEvent, error)) (Control, error)

	// InForce returns the controls whose state is in force (approved or
	// active) and whose expiry is after at, without their history.
	InForce(ctx context.Context, at time.Time) ([]Control, error)

	// ExpireDue moves every live control whose expiry is at or before at to
	// StateExpired, recording the event, and returns them. Run by several
	// processes at once, each control expires exactly once.
	ExpireDue(ctx context.Context, at time.Time) ([]Control, error)
}

// Transition moves c from one of the states in from to to, for action, and
// returns the event to record. It fails with EConflict when c is in
// another state.
func (c *Control) Transition(action, by, comment string, at time.Time, to ControlState, from ...ControlState) (ControlEvent, error) {
	if !slices.Contains(from, c.State) {
		return ControlEvent{}, Errorf(EConflict, "%s %s is %s: it cannot be %s", c.Kind, c.ID, c.State, pastTense(action))
	}
	ev := ControlEvent{At: at, By: by, Action: action, From: c.State, To: to, Comment: comment}
	c.State = to
	return ev, nil
}

func pastTense(action string) string {
	switch action {
	case ActionApprove, ActionRevoke, ActionExpire:
		return action + "d"
	case ActionLift, ActionReject:
		return action + "ed"
	}
	return action
}
