package tollgate

import (
	"context"
	"encoding/json"
	"time"
)

// Notification events: what a sink of global_policy.notifications may
// subscribe to.
const (
	EventDecisionRefused    = "decision.refused"
	EventJobWaiting         = "job.waiting"
	EventJobAccepted        = "job.accepted"
	EventJobRefused         = "job.refused"
	EventJobExpired         = "job.expired"
	EventJobCancelled       = "job.cancelled"
	EventExceptionRequested = "exception.requested"
	EventExceptionApproved  = "exception.approved"
	EventExceptionExpiring  = "exception.expiring"
	EventFreezeStarted      = "freeze.started"
	EventFreezeEnded        = "freeze.ended"
	EventIncidentStarted    = "incident.started"
	EventIncidentEnded      = "incident.ended"
)

// CallbackSinks are the built-in sinks: the systems a job's Callback may
// name (its key), told when the job ends (accepted, refused, expired,
// cancelled). No configured sink may take their names.
var CallbackSinks = []string{"github"}

// JobEnds are the events of a job's end.
var JobEnds = []string{EventJobAccepted, EventJobRefused, EventJobExpired, EventJobCancelled}

// NotificationEvents are every event, in the order the README lists them.
var NotificationEvents = []string{
	EventDecisionRefused,
	EventJobWaiting, EventJobAccepted, EventJobRefused, EventJobExpired, EventJobCancelled,
	EventExceptionRequested, EventExceptionApproved, EventExceptionExpiring,
	EventFreezeStarted, EventFreezeEnded, EventIncidentStarted, EventIncidentEnded,
}

// JobEvent is the event of a job that moved from one state to another,
// "" for none (a job checked again and still waiting).
func JobEvent(from, to JobState) string {
	if from == to {
		return ""
	}
	switch to {
	case JobWaiting:
		return EventJobWaiting
	case JobAccepted:
		return EventJobAccepted
	case JobRefused:
		return EventJobRefused
	case JobExpired:
		return EventJobExpired
	case JobCancelled:
		return EventJobCancelled
	}
	return ""
}

// ControlEventName is the event of a control of kind that moved from one
// state to another (from "" when it was created), "" for none (an
// exception rejected or revoked: its requester acted or was answered).
func ControlEventName(kind ControlKind, from, to ControlState) string {
	switch {
	case from == to:
		return ""
	case kind == KindException && to == StateRequested:
		return EventExceptionRequested
	case kind == KindException && to == StateApproved:
		return EventExceptionApproved
	case kind == KindFreeze && to == StateActive:
		return EventFreezeStarted
	case kind == KindFreeze && from == StateActive:
		return EventFreezeEnded
	case kind == KindIncident && to == StateActive:
		return EventIncidentStarted
	case kind == KindIncident && from == StateActive:
		return EventIncidentEnded
	}
	return ""
}

// DeliveryState is where the delivery of one event to one sink stands.
type DeliveryState string

// A delivery is pending until an attempt succeeds (delivered) or its last
// attempt fails, or the sink refuses it for good (failed).
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// DeliveryStates are every delivery state.
var DeliveryStates = []DeliveryState{DeliveryPending, DeliveryDelivered, DeliveryFailed}

// Delivery is one event on its way to one sink (GET /v1/notifications).
// Its ID is stable across attempts: receivers de-duplicate on it.
type Delivery struct {
	ID            string        `json:"id"`
	EventID       string        `json:"event_id"`
	Event         string        `json:"event"`
	Sink          string        `json:"sink"`
	State         DeliveryState `json:"state"`
	Attempts      int           `json:"attempts"`
	OccurredAt    time.Time     `json:"occurred_at"` // the event's
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	NextAttemptAt time.Time     `json:"next_attempt_at"` // pending: when it is tried next
	// LastStatus is the HTTP status of the last attempt, 0 when it got
	// none (a timeout, a refused connection: LastError says).
	LastStatus int    `json:"last_status"`
	LastError  string `json:"last_error"`
	// Subject is what the event tells of ({"job": …}, {"control": …},
	// {"decision": …}), for the worker; not listed.
	Subject json.RawMessage `json:"-"`
}

// Attempt is the outcome of one attempt to deliver.
type Attempt struct {
	At     time.Time
	Status int    // HTTP status, 0 for none
	Error  string // "" when delivered
	// Delivered ends the delivery delivered; otherwise it is tried again
	// at RetryAt, or, RetryAt zero, it ends failed.
	Delivered bool
	RetryAt   time.Time
}

// DeliveryFilter selects deliveries: every field set must match.
type DeliveryFilter struct {
	State DeliveryState
	Sink  string
	Event string
	Limit int // 0: DefaultPageSize; at most MaxPageSize
}

// Outbox keeps the notifications: events, written by the store in the
// transaction of the change they tell of (a job's state, a control's
// step), or derived after the fact from the ledger (refused decisions,
// behind a cursor), and their deliveries, one per event and sink, shared
// by every process of a store under leases.
type Outbox interface {
	// FanOut turns at most n events not yet fanned out, and refused
	// decisions recorded since the last call, into pending deliveries, one
	// per sink route names for the event (none: the event is dropped), due
	// at at; in one transaction that also moves the cursor, so that a
	// crash either makes all of them or none. The end of a job whose
	// Callback names a system (github) is also delivered to that system's
	// built-in sink (CallbackSinks), whatever route says. It returns how
	// many deliveries it made.
	FanOut(ctx context.Context, at time.Time, route func(event string) []string, n int) (int, error)

	// NoticeExpiring records once, as exception.expiring, each approved
	// exception that expires after at and no later than at+within.
	NoticeExpiring(ctx context.Context, at time.Time, within time.Duration) (int, error)

	// ClaimDeliveries leases to owner, until at+lease, at most n pending
	// deliveries due at at and not leased, soonest due first, with their
	// subject. A delivery is claimed by one owner at a time, across
	// processes.
	ClaimDeliveries(ctx context.Context, owner string, at time.Time, lease time.Duration, n int) ([]Delivery, error)

	// FinishAttempt records an attempt of a delivery leased to owner and
	// frees it (EConflict if its lease ran out and another process has
	// it).
	FinishAttempt(ctx context.Context, id, owner string, a Attempt) (Delivery, error)

	// Deliveries lists deliveries, newest first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)

	// PendingDeliveries counts the pending deliveries by sink.
	PendingDeliveries(ctx context.Context) (map[string]int, error)

	// PruneNotifications deletes the deliveries that ended (delivered or
	// failed) before before, and the events fanned out before it that no
	// pending delivery needs, in chunks; it returns how many rows went.
	PruneNotifications(ctx context.Context, before time.Time) (int64, error)
}
