package storekit

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
)

// The outbox. Durability: an event is never lost once the change it
// tells of is committed, even if the process is killed right after.
//
//   - Job and control events are written in the transaction of the change
//     (UpdateJob, CreateControl, putControl): one commit holds both, or
//     neither. The cost on those paths is one INSERT.
//   - Refused decisions are derived after the fact from the decisions
//     table, by ledger seq, behind a cursor that FanOut moves in the
//     transaction that makes their deliveries. The decision hot path (the
//     group commit) is untouched. This is sound because seq is the
//     ledger's: it is given under the chain head's lock, held until
//     commit, so the decisions visible at any time are a prefix of seq
//     and nothing committed later can land behind the cursor.
//
// Deliveries (one per event and sink) are made by FanOut from the
// events, so that the routing is the configuration of the time the
// worker picks the event up, not of the code that wrote it.
var _ tollgate.Outbox = (*Core)(nil)

// callbackSink is the built-in sink an event goes to besides the
// configured ones: the system a job's Callback names, when the job ends;
// "" for none.
func callbackSink(event, subject string) string {
	if !slices.Contains(tollgate.JobEnds, event) {
		return ""
	}
	var s struct {
		Job struct {
			Callback map[string]json.RawMessage `json:"callback"`
		} `json:"job"`
	}
	if json.Unmarshal([]byte(subject), &s) != nil {
		return ""
	}
	for _, sink := range tollgate.CallbackSinks {
		if _, ok := s.Job.Callback[sink]; ok {
			return sink
		}
	}
	return ""
}

// eventID is the ID of an event of a subject: one event of a kind per
// subject (a job is accepted once, a control expires once), so writing it
// twice is a no-op.
func eventID(event, subjectID string) string { return event + ":" + subjectID }

// putEvent writes event ("" for none) of the subject subjectID, which
// happened at at, in q's transaction.
func putEvent(ctx context.Context, q Querier, event, subjectID string, at time.Time, subject []byte) error {
	if event == "" {
		return nil
	}
	if !storable(at) {
		at = time.Now()
	}
	_, err := q.Exec(ctx, `INSERT INTO notification_events (id, event, occurred_at, subject, fanned)
		VALUES (?, ?, ?, ?, 0) ON CONFLICT (id) DO NOTHING`,
		eventID(event, subjectID), event, UnixNano(at), string(subject))
	return err
}

// jobSubject is {"job": j} without its request, which may hold a whole
// scan report: receivers get the job's fields and its reasons.
func jobSubject(j tollgate.Job) ([]byte, error) {
	j.Request = nil
	data, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	delete(fields, "request")
	return json.Marshal(map[string]any{"job": fields})
}

// controlSubject is {"control": the control without its history}, as
// EncodeControl encoded it.
func controlSubject(data []byte) []byte {
	return append(append([]byte(`{"control":`), data...), '}')
}

// putControlEvent writes the event of a control's step, if it has one.
func putControlEvent(ctx context.Context, q Querier, row ControlRow, ev EventRow) error {
	name := tollgate.ControlEventName(tollgate.ControlKind(row.Kind), tollgate.ControlState(ev.From), tollgate.ControlState(ev.To))
	return putEvent(ctx, q, name, row.ID, time.Unix(0, ev.At), controlSubject(row.Data))
}

// FanOut implements tollgate.Outbox. A read first, so that idle rounds
// never take a writer.
func (c *Core) FanOut(ctx context.Context, at time.Time, route func(event string) []string, n int) (int, error) {
	if n <= 0 {
		return 0, tollgate.Errorf(tollgate.EInternal, "fan out: %d events", n)
	}
	var (
		fresh       bool
		cursor, top int64
	)
	err := c.read(ctx, "look for new events", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notification_events WHERE fanned = 0),
			(SELECT decision_seq FROM notification_cursor WHERE id = 1),
			(SELECT coalesce(max(seq), 0) FROM decisions)`).Scan(&fresh, &cursor, &top)
	})
	if err != nil || (!fresh && top <= cursor) {
		return 0, err
	}
	made := 0
	err = c.write(ctx, "fan out events", func(ctx context.Context, q Querier) error {
		made = 0
		deliverTo := func(id, event string, occurred int64, sink string) error {
			m, err := q.Exec(ctx, `INSERT INTO notification_deliveries (`+deliveryColumns+`)
				VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, 0, '', '', 0) ON CONFLICT (event_id, sink) DO NOTHING`,
				uuid.Must(uuid.NewV7()).String(), id, event, sink, occurred, UnixNano(at), UnixNano(at), UnixNano(at))
			made += int(m)
			return err
		}
		deliver := func(id, event string, occurred int64) error {
			for _, sink := range route(event) {
				if err := deliverTo(id, event, occurred, sink); err != nil {
					return err
				}
			}
			return nil
		}
		if err := c.fanOutDecisions(ctx, q, n, deliver); err != nil {
			return err
		}
		type fresh struct {
			id, event, subject string
			at                 int64
		}
		rows, err := scanAll(ctx, q, `SELECT id, event, occurred_at, subject FROM notification_events WHERE fanned = 0
			ORDER BY occurred_at, id LIMIT ?`+c.d.ForUpdate+c.d.SkipLocked, []any{n},
			func(f *fresh) []any { return []any{&f.id, &f.event, &f.at, &f.subject} })
		if err != nil {
			return err
		}
		for _, f := range rows {
			if err := deliver(f.id, f.event, f.at); err != nil {
				return err
			}
			if sink := callbackSink(f.event, f.subject); sink != "" {
				if err := deliverTo(f.id, f.event, f.at, sink); err != nil {
					return err
				}
			}
			if _, err := q.Exec(ctx, `UPDATE notification_events SET fanned = 1 WHERE id = ?`, f.id); err != nil {
				return err
			}
		}
		return nil
	})
	return made, err
}

// fanOutDecisions makes the events and deliveries of at most n refused
// decisions after the cursor, and moves it. The cursor's row is locked
// first: one process at a time walks the decisions. The highest seq is
// read before the refusals: every decision up to it is committed (see
// the durability note above), so the cursor can move to it when fewer
// than n refusals lie behind it.
func (c *Core) fanOutDecisions(ctx context.Context, q Querier, n int, deliver func(id, event string, occurred int64) error) error {
	var cursor, top int64
	if err := q.QueryRow(ctx, `SELECT decision_seq FROM notification_cursor WHERE id = 1`+c.d.ForUpdate).Scan(&cursor); err != nil {
		return err
	}
	if err := q.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM decisions`).Scan(&top); err != nil {
		return err
	}
	if top <= cursor {
		return nil
	}
	type refusal struct {
		seq  int64
		id   string
		data []byte
	}
	rows, err := scanAll(ctx, q, `SELECT seq, id, record FROM decisions WHERE seq > ? AND seq <= ? AND status = 'refused'
		ORDER BY seq LIMIT ?`, []any{cursor, top, n}, func(r *refusal) []any { return []any{&r.seq, &r.id, &r.data} })
	if err != nil {
		return err
	}
	next := top
	if len(rows) == n {
		next = rows[len(rows)-1].seq
	}
	for _, r := range rows {
		rec, err := DecodeRecord(r.id, r.data)
		if err != nil {
			return err
		}
		subject, err := json.Marshal(map[string]any{"decision": rec.Decision, "request": rec.Request})
		if err != nil {
			return err
		}
		id := eventID(tollgate.EventDecisionRefused, r.id)
		occurred := UnixNano(rec.Decision.EvaluatedAt)
		if _, err := q.Exec(ctx, `INSERT INTO notification_events (id, event, occurred_at, subject, fanned)
			VALUES (?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING`, id, tollgate.EventDecisionRefused, occurred, string(subject)); err != nil {
			return err
		}
		if err := deliver(id, tollgate.EventDecisionRefused, occurred); err != nil {
			return err
		}
	}
	_, err = q.Exec(ctx, `UPDATE notification_cursor SET decision_seq = ? WHERE id = 1`, next)
	return err
}

// expiringWhere selects the approved exceptions that expire after its
// first argument and no later than its second.
const expiringWhere = `FROM controls c WHERE c.kind = 'exception' AND c.state = 'approved' AND c.expires_at > ? AND c.expires_at <= ?`

// NoticeExpiring implements tollgate.Outbox: a read first, so that the
// rounds with nothing new (nearly all) never take a writer, then one
// INSERT … SELECT, which the event's ID makes a no-op for an exception
// noticed already.
func (c *Core) NoticeExpiring(ctx context.Context, at time.Time, within time.Duration) (n int, err error) {
	prefix := eventID(tollgate.EventExceptionExpiring, "")
	from, until := UnixNano(at), UnixNano(at.Add(within))
	var fresh bool
	err = c.read(ctx, "look for expiring exceptions", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 `+expiringWhere+` AND NOT EXISTS
			(SELECT 1 FROM notification_events e WHERE e.id = CAST(? AS TEXT) || c.id))`, from, until, prefix).Scan(&fresh)
	})
	if err != nil || !fresh {
		return 0, err
	}
	err = c.writeOne(ctx, "notice expiring exceptions", func(ctx context.Context, q Querier) error {
		m, err := q.Exec(ctx, `INSERT INTO notification_events (id, event, occurred_at, subject, fanned)
			SELECT CAST(? AS TEXT) || c.id, ?, CAST(? AS BIGINT), '{"control":' || CAST(c.control AS TEXT) || '}', 0 `+expiringWhere+`
			ON CONFLICT (id) DO NOTHING`,
			prefix, tollgate.EventExceptionExpiring, from, from, until)
		n = int(m)
		return err
	})
	return n, err
}

// deliveryColumns are the columns of a delivery, in the order of
// deliveryRow.Dest.
const deliveryColumns = `id, event_id, event, sink, state, attempts, occurred_at, created_at, updated_at,
	next_attempt_at, last_status, last_error, lease_owner, lease_until`

type deliveryRow struct {
	id, eventID, event, sink, state  string
	attempts                         int
	occurred, created, updated, next int64
	status                           int
	lastError, leaseOwner            string
	leaseUntil                       int64
}

func (r *deliveryRow) Dest() []any {
	return []any{&r.id, &r.eventID, &r.event, &r.sink, &r.state, &r.attempts, &r.occurred, &r.created, &r.updated,
		&r.next, &r.status, &r.lastError, &r.leaseOwner, &r.leaseUntil}
}

func (r *deliveryRow) delivery() tollgate.Delivery {
	return tollgate.Delivery{ID: r.id, EventID: r.eventID, Event: r.event, Sink: r.sink, State: tollgate.DeliveryState(r.state),
		Attempts: r.attempts, OccurredAt: time.Unix(0, r.occurred).UTC(), CreatedAt: time.Unix(0, r.created).UTC(),
		UpdatedAt: time.Unix(0, r.updated).UTC(), NextAttemptAt: time.Unix(0, r.next).UTC(),
		LastStatus: r.status, LastError: r.lastError}
}

// claimDeliveries selects the pending deliveries not leased at its first
// argument and due at its second, at most its third, soonest due first.
const claimDeliveries = `SELECT ` + deliveryColumns + ` FROM notification_deliveries
	WHERE state = 'pending' AND lease_until <= ? AND next_attempt_at <= ?
	ORDER BY next_attempt_at, id LIMIT ?`

// ClaimDeliveries implements tollgate.Outbox, as ClaimJobs does: a read
// first, then one transaction selects (FOR UPDATE SKIP LOCKED on
// PostgreSQL: replicas take different deliveries) and leases them. The
// subjects are read after, from their events.
func (c *Core) ClaimDeliveries(ctx context.Context, owner string, at time.Time, lease time.Duration, n int) ([]tollgate.Delivery, error) {
	if owner == "" || lease <= 0 || n <= 0 {
		return nil, tollgate.Errorf(tollgate.EInternal, "claim deliveries: owner %q, lease %s, %d deliveries", owner, lease, n)
	}
	now, until := UnixNano(at), UnixNano(at.Add(lease))
	var due bool
	err := c.read(ctx, "look for due deliveries", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT EXISTS (`+claimDeliveries+`)`, now, now, n).Scan(&due)
	})
	if err != nil || !due {
		return []tollgate.Delivery{}, err
	}
	var out []tollgate.Delivery
	err = c.write(ctx, "claim deliveries", func(ctx context.Context, q Querier) error {
		rows, err := scanAll(ctx, q, claimDeliveries+c.d.ForUpdate+c.d.SkipLocked, []any{now, now, n}, (*deliveryRow).Dest)
		if err != nil {
			return err
		}
		out = make([]tollgate.Delivery, 0, len(rows))
		for _, r := range rows {
			if _, err := q.Exec(ctx, `UPDATE notification_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?`, owner, until, r.id); err != nil {
				return err
			}
			d := r.delivery()
			var subject string
			switch err := q.QueryRow(ctx, `SELECT subject FROM notification_events WHERE id = ?`, r.eventID).Scan(&subject); {
			case errors.Is(err, ErrNoRows): // pruned around tollgate: the worker fails it
			case err != nil:
				return err
			default:
				d.Subject = json.RawMessage(subject)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinishAttempt implements tollgate.Outbox.
func (c *Core) FinishAttempt(ctx context.Context, id, owner string, a tollgate.Attempt) (tollgate.Delivery, error) {
	if !storable(a.At) {
		return tollgate.Delivery{}, tollgate.Errorf(tollgate.EInternal, "delivery %s: attempt time %s is missing or out of range", id, a.At)
	}
	state, next := tollgate.DeliveryFailed, a.At
	switch {
	case a.Delivered:
		state = tollgate.DeliveryDelivered
	case !a.RetryAt.IsZero():
		state, next = tollgate.DeliveryPending, a.RetryAt
	}
	var row deliveryRow
	err := c.write(ctx, "record delivery attempt "+id, func(ctx context.Context, q Querier) error {
		var leased, current string
		err := q.QueryRow(ctx, `SELECT lease_owner, state FROM notification_deliveries WHERE id = ?`+c.d.ForUpdate, id).Scan(&leased, &current)
		switch {
		case errors.Is(err, ErrNoRows):
			return tollgate.Errorf(tollgate.ENotFound, "no delivery %q", id)
		case err != nil:
			return err
		case leased != owner || current != string(tollgate.DeliveryPending):
			return tollgate.Errorf(tollgate.EConflict, "delivery %s is no longer claimed by %s (its lease ran out)", id, owner)
		}
		if _, err := q.Exec(ctx, `UPDATE notification_deliveries SET state = ?, attempts = attempts + 1, updated_at = ?,
			next_attempt_at = ?, last_status = ?, last_error = ?, lease_owner = '', lease_until = 0 WHERE id = ?`,
			string(state), UnixNano(a.At), UnixNano(next), a.Status, a.Error, id); err != nil {
			return err
		}
		return q.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM notification_deliveries WHERE id = ?`, id).Scan(row.Dest()...)
	})
	if err != nil {
		return tollgate.Delivery{}, err
	}
	return row.delivery(), nil
}

// Deliveries implements tollgate.Outbox.
func (c *Core) Deliveries(ctx context.Context, f tollgate.DeliveryFilter) ([]tollgate.Delivery, error) {
	where, args := whereEqual("state", string(f.State), "sink", f.Sink, "event", f.Event)
	query := `SELECT ` + deliveryColumns + ` FROM notification_deliveries` + where
	var rows []deliveryRow
	err := c.read(ctx, "list deliveries", func(ctx context.Context, q Querier) (err error) {
		rows, err = scanAll(ctx, q, query+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, PageSize(f.Limit)), (*deliveryRow).Dest)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]tollgate.Delivery, len(rows))
	for i := range rows {
		out[i] = rows[i].delivery()
	}
	return out, nil
}

// PendingDeliveries implements tollgate.Outbox.
func (c *Core) PendingDeliveries(ctx context.Context) (map[string]int, error) {
	type count struct {
		sink string
		n    int
	}
	var rows []count
	err := c.read(ctx, "count pending deliveries", func(ctx context.Context, q Querier) (err error) {
		rows, err = scanAll(ctx, q, `SELECT sink, count(*) FROM notification_deliveries WHERE state = 'pending' GROUP BY sink`,
			nil, func(r *count) []any { return []any{&r.sink, &r.n} })
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.sink] = r.n
	}
	return out, nil
}

// PruneNotifications implements tollgate.Outbox, PruneChunk rows per
// transaction, so that a large backlog never holds the writer long.
func (c *Core) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	cutoff := UnixNano(before)
	var total int64
	for _, stmt := range []string{
		`DELETE FROM notification_deliveries WHERE id IN (SELECT id FROM notification_deliveries
			WHERE state <> 'pending' AND updated_at < ? LIMIT ?)`,
		`DELETE FROM notification_events WHERE id IN (SELECT e.id FROM notification_events e
			WHERE e.fanned = 1 AND e.occurred_at < ? AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
				WHERE d.event_id = e.id AND d.state = 'pending') LIMIT ?)`,
	} {
		for {
			var n int64
			err := c.writeOne(ctx, "prune notifications", func(ctx context.Context, q Querier) (err error) {
				n, err = q.Exec(ctx, stmt, cutoff, PruneChunk)
				return err
			})
			if err != nil {
				return total, err
			}
			total += n
			if n < PruneChunk {
				break
			}
		}
	}
	return total, nil
}
