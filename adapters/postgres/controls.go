package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.ControlStore = (*Store)(nil)

const (
	insertControl = `INSERT INTO controls (id, kind, state, project, code, created_at, expires_at, control)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

	updateControl = `UPDATE controls SET kind = $2, state = $3, project = $4, code = $5, created_at = $6, expires_at = $7, control = $8
	WHERE id = $1`

	// Events are numbered in the transaction that writes them, which holds
	// the control's row lock (or created the row): no other can take the
	// same number.
	insertEvent = `INSERT INTO control_events (control_id, seq, at, actor, action, from_state, to_state, comment)
	VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM control_events WHERE control_id = $1), $2, $3, $4, $5, $6, $7)`

	lockControl = `SELECT FROM controls WHERE id = $1 FOR UPDATE`
)

func placeholder(n int) string { return "$" + strconv.Itoa(n) }

// CreateControl implements tollgate.ControlStore: the control and its
// history in one transaction.
func (s *Store) CreateControl(ctx context.Context, c tollgate.Control) error {
	row, events, err := storekit.NewControl(c)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if row.Kind == string(tollgate.KindIncident) {
			if err := noIncidentOn(ctx, tx, row); err != nil {
				return err
			}
		}
		b := &pgx.Batch{}
		b.Queue(insertControl, row.ID, row.Kind, row.State, row.Project, row.Code, row.CreatedAt, row.ExpiresAt, row.Data)
		for _, ev := range events {
			queueEvent(b, row.ID, ev)
		}
		return execBatch(ctx, tx, b)
	})
	if err != nil {
		return s.controlError(ctx, "create control "+c.ID, err)
	}
	return nil
}

// noIncidentOn fails with EConflict if an incident is on when row starts.
// The transaction-scoped advisory lock orders the incident creations of all
// replicas: the second waits for the first to commit, then sees its
// incident (READ COMMITTED reads what committed before each statement).
func noIncidentOn(ctx context.Context, tx pgx.Tx, row storekit.ControlRow) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, incidentLockKey); err != nil {
		return err
	}
	var id string
	var expiresAt int64
	err := tx.QueryRow(ctx, incidentOnQuery, storekit.IncidentOnArgs(row)...).Scan(&id, &expiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return storekit.IncidentOn(id, expiresAt)
}

var incidentOnQuery = storekit.IncidentOnQuery(func(n int) string { return fmt.Sprintf("$%d", n) })

// incidentLockKey is the advisory lock of incident creation. A cooldown
// key hashing to the same value would only make one wait for the other.
const incidentLockKey int64 = 0x746f6c6c67617465 // "tollgate"

// UpdateControl implements tollgate.ControlStore. One transaction takes the
// control's row lock (SELECT … FOR UPDATE), then reads it with its history,
// runs change, writes the result and the event, and commits: an update of
// the same control in any process waits for the lock, and under READ
// COMMITTED its next statement reads what this one committed. change runs
// holding the lock: it must be quick and must not use the store (the
// server ends a transaction idle for longer than the statement timeout).
func (s *Store) UpdateControl(ctx context.Context, id string, change func(*tollgate.Control) (tollgate.ControlEvent, error)) (tollgate.Control, error) {
	var (
		updated   tollgate.Control
		changeErr error // change's, or a checked field's: returned as it is
	)
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, lockControl, id)
		switch {
		case err != nil:
			return err
		case tag.RowsAffected() == 0:
			changeErr = storekit.ControlNotFound(id)
			return changeErr
		}
		c, _, err := storekit.QueryControl(ctx, querier{tx}, id)
		if err != nil {
			return err
		}
		next, row, ev, err := storekit.Change(c, change)
		if err != nil {
			changeErr = err
			return err
		}
		b := &pgx.Batch{}
		queueUpdate(b, row, ev)
		if err := execBatch(ctx, tx, b); err != nil {
			return err
		}
		updated = next
		return nil
	})
	switch {
	case changeErr != nil:
		return tollgate.Control{}, changeErr
	case err != nil:
		return tollgate.Control{}, s.controlError(ctx, "update control "+id, err)
	}
	return updated, nil
}

// ExpireDue implements tollgate.ControlStore, in one transaction: it selects
// the due controls FOR UPDATE, expires them and records the events. Two
// replicas expiring at once cannot expire a control twice: the second one's
// SELECT waits for the rows the first has locked, and when the first
// commits, PostgreSQL checks the WHERE again on the rows as committed (READ
// COMMITTED) and skips those no longer live. Rows are locked in ID order,
// the same in every replica, so that they never wait for each other in a
// circle; UpdateControl locks one row only.
//
// Not one UPDATE … RETURNING: the event needs the state the control left,
// which RETURNING cannot give, and the transition is the domain's
// (Control.Transition, the same as in the SQLite store), not SQL's.
func (s *Store) ExpireDue(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	var expired []tollgate.Control
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		query, args := storekit.DueQuery(at, placeholder)
		rows, err := tx.Query(ctx, query+" FOR UPDATE", args...)
		if err != nil {
			return err
		}
		due, err := storekit.ReadControls(rows)
		rows.Close()
		if err != nil {
			return err
		}
		expired = make([]tollgate.Control, 0, len(due))
		b := &pgx.Batch{}
		for _, c := range due {
			next, row, ev, err := storekit.Expire(c, at)
			if err != nil {
				return err
			}
			queueUpdate(b, row, ev)
			expired = append(expired, next)
		}
		if b.Len() == 0 {
			return nil
		}
		return execBatch(ctx, tx, b)
	})
	if err != nil {
		return nil, s.controlError(ctx, "expire controls", err)
	}
	return expired, nil
}

// inFlight runs fn within the statement timeout (and the grace after it),
// counted as in flight for Close.
func (s *Store) inFlight(ctx context.Context, fn func(context.Context) error) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	return fn(opCtx)
}

// inTx runs fn in a transaction and commits it, in flight as inFlight says.
func (s *Store) inTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	return s.inFlight(ctx, func(opCtx context.Context) error {
		return pgx.BeginFunc(opCtx, s.pool, func(tx pgx.Tx) error { return fn(opCtx, tx) })
	})
}

func queueUpdate(b *pgx.Batch, row storekit.ControlRow, ev storekit.EventRow) {
	b.Queue(updateControl, row.ID, row.Kind, row.State, row.Project, row.Code, row.CreatedAt, row.ExpiresAt, row.Data)
	queueEvent(b, row.ID, ev)
}

func queueEvent(b *pgx.Batch, id string, ev storekit.EventRow) {
	b.Queue(insertEvent, id, ev.At, ev.By, ev.Action, ev.From, ev.To, ev.Comment)
}

// controlError turns a failed control operation into the error callers
// see: an *tollgate.Error as it is (a control that cannot be stored, one
// not found, the store closed), the rest as dbError says.
func (s *Store) controlError(ctx context.Context, what string, err error) error {
	var tErr *tollgate.Error
	if errors.As(err, &tErr) {
		return err
	}
	return s.dbError(ctx, what, err)
}
