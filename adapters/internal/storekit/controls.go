package storekit

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

var (
	controlKinds  = []tollgate.ControlKind{tollgate.KindException, tollgate.KindFreeze, tollgate.KindIncident}
	controlStates = []tollgate.ControlState{tollgate.StateRequested, tollgate.StateApproved, tollgate.StateRejected,
		tollgate.StateRevoked, tollgate.StateActive, tollgate.StateLifted, tollgate.StateExpired}
	liveStates = statesWhere(tollgate.ControlState.Live)

	// LiveStates are the states ExpireDue looks at, for the stores' SQL:
	// those the domain's ControlState.Live accepts.
	LiveStates = names(liveStates)
	// InForceStates are the states InForce returns, for the stores' SQL:
	// those ControlState.InForce accepts.
	InForceStates = names(statesWhere(tollgate.ControlState.InForce))
)

func statesWhere(pred func(tollgate.ControlState) bool) []tollgate.ControlState {
	var out []tollgate.ControlState
	for _, s := range controlStates {
		if pred(s) {
			out = append(out, s)
		}
	}
	return out
}

func names(states []tollgate.ControlState) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// ControlRow is a control as both stores write it: the columns it is found
// by, and the rest as JSON.
type ControlRow struct {
	ID, Kind, State, Project, Code string
	CreatedAt, ExpiresAt           int64 // unix nanoseconds
	Data                           []byte
}

// EventRow is a ControlEvent as both stores write it.
type EventRow struct {
	At                            int64 // unix nanoseconds
	By, Action, From, To, Comment string
}

// NewControl checks c before a store creates it and encodes it and its
// history. A control that fails is a bug of the caller: EInternal.
func NewControl(c tollgate.Control) (ControlRow, []EventRow, error) {
	row, err := EncodeControl(c)
	if err != nil {
		return ControlRow{}, nil, err
	}
	if len(c.History) == 0 {
		return ControlRow{}, nil, tollgate.Errorf(tollgate.EInternal, "store control %s: its history has no creation event", c.ID)
	}
	if last := c.History[len(c.History)-1]; last.To != c.State {
		return ControlRow{}, nil, tollgate.Errorf(tollgate.EInternal, "store control %s: it is %s but its last event moves it to %q", c.ID, c.State, last.To)
	}
	events := make([]EventRow, len(c.History))
	for i, ev := range c.History {
		if events[i], err = EncodeEvent(c.ID, ev); err != nil {
			return ControlRow{}, nil, err
		}
	}
	return row, events, nil
}

// EncodeControl checks what both stores need of a control (an ID, a known
// kind and state, creation and expiry times int64 nanoseconds can hold) and
// encodes it without its history, which the stores keep apart. Times are
// stored in UTC: a control comes back with every time in UTC.
func EncodeControl(c tollgate.Control) (ControlRow, error) {
	switch {
	case c.ID == "":
		return ControlRow{}, tollgate.Errorf(tollgate.EInternal, "store control: the control has no ID")
	case !slices.Contains(controlKinds, c.Kind):
		return ControlRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: unknown kind %q", c.ID, c.Kind)
	case !slices.Contains(controlStates, c.State):
		return ControlRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: unknown state %q", c.ID, c.State)
	case !storable(c.CreatedAt):
		return ControlRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: creation time %s is missing or out of range", c.ID, c.CreatedAt)
	case !storable(c.ExpiresAt):
		return ControlRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: expiry %s is missing or out of range", c.ID, c.ExpiresAt)
	}
	c = utcControl(c)
	c.History = nil
	data, err := json.Marshal(c)
	if err != nil {
		return ControlRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: encode: %v", c.ID, err)
	}
	return ControlRow{
		ID: c.ID, Kind: string(c.Kind), State: string(c.State), Project: c.Project, Code: c.Code,
		CreatedAt: c.CreatedAt.UnixNano(), ExpiresAt: c.ExpiresAt.UnixNano(), Data: data,
	}, nil
}

// EncodeEvent checks an event of control id (a time, an action, a known
// state reached) and returns its row.
func EncodeEvent(id string, ev tollgate.ControlEvent) (EventRow, error) {
	switch {
	case !storable(ev.At):
		return EventRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: event time %s is missing or out of range", id, ev.At)
	case ev.Action == "":
		return EventRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: an event has no action", id)
	case !slices.Contains(controlStates, ev.To):
		return EventRow{}, tollgate.Errorf(tollgate.EInternal, "store control %s: %s event to unknown state %q", id, ev.Action, ev.To)
	}
	return EventRow{At: ev.At.UnixNano(), By: ev.By, Action: ev.Action, From: string(ev.From), To: string(ev.To), Comment: ev.Comment}, nil
}

// Event is the event of r.
func (r EventRow) Event() tollgate.ControlEvent {
	return tollgate.ControlEvent{At: time.Unix(0, r.At).UTC(), By: r.By, Action: r.Action,
		From: tollgate.ControlState(r.From), To: tollgate.ControlState(r.To), Comment: r.Comment}
}

// DecodeControl decodes the stored control id, without its history.
func DecodeControl(id string, data []byte) (tollgate.Control, error) {
	var c tollgate.Control
	if err := json.Unmarshal(data, &c); err != nil {
		return tollgate.Control{}, tollgate.Errorf(tollgate.EInternal, "control %s: stored value is not valid JSON: %v", id, err)
	}
	return c, nil
}

// ControlNotFound is the error of a control ID that is not stored.
func ControlNotFound(id string) error {
	return tollgate.Errorf(tollgate.ENotFound, "no control %q: list them with their filters to find its ID", id)
}

// Change runs change, as UpdateControl does, on a copy of the stored control
// c (with its history), and returns the control to store, with the event
// appended to its history, and the rows to write. An error of change is
// returned as it is; a change that moves the ID, or whose result or event
// cannot be stored, is a bug of the caller: EInternal.
func Change(c tollgate.Control, change func(*tollgate.Control) (tollgate.ControlEvent, error)) (tollgate.Control, ControlRow, EventRow, error) {
	history := c.History
	next := c
	next.History = slices.Clone(history)
	next.Approvals = slices.Clone(c.Approvals)
	next.Environments = slices.Clone(c.Environments)
	ev, err := change(&next)
	if err != nil {
		return tollgate.Control{}, ControlRow{}, EventRow{}, err
	}
	if next.ID != c.ID {
		return tollgate.Control{}, ControlRow{}, EventRow{}, tollgate.Errorf(tollgate.EInternal, "update control %s: the change set its ID to %q", c.ID, next.ID)
	}
	row, err := EncodeControl(next)
	if err != nil {
		return tollgate.Control{}, ControlRow{}, EventRow{}, err
	}
	evRow, err := EncodeEvent(c.ID, ev)
	if err != nil {
		return tollgate.Control{}, ControlRow{}, EventRow{}, err
	}
	if ev.From != c.State || ev.To != next.State {
		return tollgate.Control{}, ControlRow{}, EventRow{}, tollgate.Errorf(tollgate.EInternal,
			"update control %s: the change moved it from %s to %s but its %s event says from %q to %q (use Control.Transition)",
			c.ID, c.State, next.State, ev.Action, ev.From, ev.To)
	}
	// The history is the store's: whatever change did to it, the stored
	// one gets the event, and only it.
	next = utcControl(next)
	next.History = append(slices.Clip(history), evRow.Event())
	return next, row, evRow, nil
}

// Expire moves the stored control c, live and due, to StateExpired as the
// expiry worker at time at, and returns what to store and the control
// without its history.
func Expire(c tollgate.Control, at time.Time) (tollgate.Control, ControlRow, EventRow, error) {
	c.History = nil
	next, row, ev, err := Change(c, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		return c.Transition(tollgate.ActionExpire, tollgate.WorkerIdentity, "", at, tollgate.StateExpired, liveStates...)
	})
	next.History = nil
	return next, row, ev, err
}

// utcControl is c with every time in UTC, as it reads back from a store.
func utcControl(c tollgate.Control) tollgate.Control {
	c.CreatedAt = c.CreatedAt.UTC()
	c.ExpiresAt = c.ExpiresAt.UTC()
	if c.Approvals != nil {
		approvals := make([]tollgate.Approval, len(c.Approvals))
		for i, a := range c.Approvals {
			approvals[i] = tollgate.Approval{By: a.By, At: a.At.UTC()}
		}
		c.Approvals = approvals
	}
	if c.History != nil {
		history := make([]tollgate.ControlEvent, len(c.History))
		for i, ev := range c.History {
			ev.At = ev.At.UTC()
			history[i] = ev
		}
		c.History = history
	}
	return c
}

// storable reports whether t is set and int64 nanoseconds can hold it.
func storable(t time.Time) bool {
	return !t.IsZero() && !t.Before(time.Unix(0, math.MinInt64)) && !t.After(time.Unix(0, math.MaxInt64))
}

// Rows is what both stores' query results offer: *sql.Rows and pgx.Rows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ReadControl reads the rows of ControlQuery: the control id with its
// history, oldest first. found is false when there is no such control.
// Errors of rows are returned as they are, for the store to classify.
func ReadControl(id string, rows Rows) (c tollgate.Control, found bool, err error) {
	for rows.Next() {
		var (
			data                          []byte
			at                            *int64
			by, action, from, to, comment *string
		)
		if err := rows.Scan(&data, &at, &by, &action, &from, &to, &comment); err != nil {
			return tollgate.Control{}, false, err
		}
		if !found {
			if c, err = DecodeControl(id, data); err != nil {
				return tollgate.Control{}, false, err
			}
			c.History = []tollgate.ControlEvent{}
			found = true
		}
		if at != nil {
			c.History = append(c.History, EventRow{At: *at, By: deref(by), Action: deref(action),
				From: deref(from), To: deref(to), Comment: deref(comment)}.Event())
		}
	}
	return c, found, rows.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ReadControls reads rows of an ID and a control as JSON, as Controls,
// InForce and ExpireDue select them.
func ReadControls(rows Rows) ([]tollgate.Control, error) {
	out := []tollgate.Control{}
	for rows.Next() {
		var (
			id   string
			data []byte
		)
		if err := rows.Scan(&id, &data); err != nil {
			return nil, err
		}
		c, err := DecodeControl(id, data)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// controlQuery selects a control and its events, oldest first, in one
// statement, hence one snapshot: the history matches the control's state.
// Its single argument is the ID.
const controlQuery = `SELECT c.control, e.at, e.actor, e.action, e.from_state, e.to_state, e.comment
	FROM controls c LEFT JOIN control_events e ON e.control_id = c.id
	WHERE c.id = ? ORDER BY e.seq`

// ControlsQuery is the SQL of Controls for f, newest first.
func ControlsQuery(f tollgate.ControlFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	for _, c := range []struct{ column, value string }{
		{"kind", string(f.Kind)},
		{"state", string(f.State)},
		{"project", f.Project},
		{"code", f.Code},
	} {
		if c.value != "" {
			args = append(args, c.value)
			where = append(where, c.column+" = ?")
		}
	}
	query := "SELECT id, control FROM controls"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, PageSize(f.Limit))
	return query + " ORDER BY created_at DESC, id DESC LIMIT ?", args
}

// InForceQuery is the SQL of InForce at at, newest first.
func InForceQuery(at time.Time) (string, []any) {
	in, args := inList(InForceStates)
	return `SELECT id, control FROM controls WHERE state IN ` + in + ` AND expires_at > ? ORDER BY created_at DESC, id DESC`,
		append(args, UnixNano(at))
}

// DueQuery selects the controls ExpireDue expires at at, by ID: the order
// in which PostgreSQL locks them, the same in every replica, so that two
// replicas expiring at once never wait for each other in a circle.
func DueQuery(at time.Time) (string, []any) {
	in, args := inList(LiveStates)
	return `SELECT id, control FROM controls WHERE state IN ` + in + ` AND expires_at <= ? ORDER BY id`,
		append(args, UnixNano(at))
}

func inList(values []string) (string, []any) {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return "(?" + strings.Repeat(", ?", len(values)-1) + ")", args
}

// incidentOnQuery finds the incident in force at a time, if any, from the
// kind, the state and the time. It runs in the transaction that creates an
// incident, under a lock that orders incident creations, so that one
// incident at a time holds across replicas.
const incidentOnQuery = `SELECT id, expires_at FROM controls WHERE kind = ? AND state = ? AND expires_at > ? LIMIT 1`

// IncidentOnArgs are the arguments of incidentOnQuery for a new incident.
func IncidentOnArgs(row ControlRow) []any {
	return []any{string(tollgate.KindIncident), string(tollgate.StateActive), row.CreatedAt}
}

// IncidentOn is the conflict of starting an incident while id is on.
func IncidentOn(id string, expiresAt int64) error {
	return tollgate.Errorf(tollgate.EConflict, "incident %s is already on until %s: end it first",
		id, time.Unix(0, expiresAt).UTC().Format(time.RFC3339))
}
