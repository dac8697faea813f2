package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.ControlStore = (*Store)(nil)

const (
	insertControl = `INSERT INTO controls (id, kind, state, project, code, created_at, expires_at, control)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

	updateControl = `UPDATE controls SET kind = ?, state = ?, project = ?, code = ?, created_at = ?, expires_at = ?, control = ?
	WHERE id = ?`

	// Events are numbered in the transaction that writes them, which holds
	// the write lock of the file: no other can take the same number.
	insertEvent = `INSERT INTO control_events (control_id, seq, at, actor, action, from_state, to_state, comment)
	VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM control_events WHERE control_id = ?), ?, ?, ?, ?, ?, ?)`
)

var placeholder = storekit.Question

// CreateControl implements tollgate.ControlStore: the control and its
// history in one transaction on the writer connection.
func (s *Store) CreateControl(ctx context.Context, c tollgate.Control) error {
	row, events, err := storekit.NewControl(c)
	if err != nil {
		return err
	}
	err = s.onWriter(ctx, func(tx *sql.Tx) error {
		if row.Kind == string(tollgate.KindIncident) {
			// The writer runs one transaction at a time: check and insert
			// are one step.
			if err := noIncidentOn(ctx, tx, row); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, insertControl, row.ID, row.Kind, row.State, row.Project, row.Code,
			row.CreatedAt, row.ExpiresAt, string(row.Data)); err != nil {
			return err
		}
		for _, ev := range events {
			if err := appendEvent(ctx, tx, row.ID, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.controlError(ctx, "create control "+c.ID, err)
	}
	return nil
}

// noIncidentOn fails with EConflict if an incident is on when row starts.
func noIncidentOn(ctx context.Context, tx *sql.Tx, row storekit.ControlRow) error {
	var id string
	var expiresAt int64
	err := tx.QueryRowContext(ctx, incidentOnQuery, storekit.IncidentOnArgs(row)...).Scan(&id, &expiresAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return storekit.IncidentOn(id, expiresAt)
}

var incidentOnQuery = storekit.IncidentOnQuery(func(int) string { return "?" })

// UpdateControl implements tollgate.ControlStore. It runs in a write
// transaction on the writer connection, from the read to the commit:
// updates are one at a time in this process, and SQLite's write lock
// keeps any other process out meanwhile. change runs holding that lock:
// it must be quick and must not use the store.
func (s *Store) UpdateControl(ctx context.Context, id string, change func(*tollgate.Control) (tollgate.ControlEvent, error)) (tollgate.Control, error) {
	var (
		updated   tollgate.Control
		changeErr error // change's, or a checked field's: returned as it is
	)
	err := s.onWriter(ctx, func(tx *sql.Tx) error {
		c, found, err := storekit.QueryControl(ctx, querier{tx}, id)
		switch {
		case err != nil:
			return err
		case !found:
			changeErr = storekit.ControlNotFound(id)
			return changeErr
		}
		next, row, ev, err := storekit.Change(c, change)
		if err != nil {
			changeErr = err
			return err
		}
		if err := putControl(ctx, tx, row, ev); err != nil {
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

// ExpireDue implements tollgate.ControlStore. It looks for due controls on
// a reader first, so that the expiry worker's rounds with nothing to do
// (nearly all of them) never hold up the writer; then it selects them
// again, expires them and records the events in one write transaction.
func (s *Store) ExpireDue(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	if s.isClosed() {
		return nil, s.errClosed()
	}
	query, args := storekit.DueQuery(at, placeholder)
	var one int
	switch err := s.db.QueryRowContext(ctx, `SELECT 1 FROM (`+query+`) LIMIT 1`, args...).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return []tollgate.Control{}, nil
	case err != nil:
		return nil, s.controlError(ctx, "look for due controls", err)
	}

	var expired []tollgate.Control
	err := s.onWriter(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		due, err := storekit.ReadControls(rows)
		rows.Close()
		if err != nil {
			return err
		}
		expired = make([]tollgate.Control, 0, len(due))
		for _, c := range due {
			next, row, ev, err := storekit.Expire(c, at)
			if err != nil {
				return err
			}
			if err := putControl(ctx, tx, row, ev); err != nil {
				return err
			}
			expired = append(expired, next)
		}
		return nil
	})
	if err != nil {
		return nil, s.controlError(ctx, "expire controls", err)
	}
	return expired, nil
}

// putControl writes a changed control and appends its event.
func putControl(ctx context.Context, tx *sql.Tx, row storekit.ControlRow, ev storekit.EventRow) error {
	if _, err := tx.ExecContext(ctx, updateControl, row.Kind, row.State, row.Project, row.Code,
		row.CreatedAt, row.ExpiresAt, string(row.Data), row.ID); err != nil {
		return err
	}
	return appendEvent(ctx, tx, row.ID, ev)
}

func appendEvent(ctx context.Context, tx *sql.Tx, id string, ev storekit.EventRow) error {
	_, err := tx.ExecContext(ctx, insertEvent, id, id, ev.At, ev.By, ev.Action, ev.From, ev.To, ev.Comment)
	return err
}

// controlError turns a failed control operation into the error callers
// see: an *tollgate.Error as it is (a control that cannot be stored, one
// not found), a constraint the database enforces (a duplicate ID: the
// caller's bug) as EInternal, the rest as readError says.
func (s *Store) controlError(ctx context.Context, what string, err error) error {
	var tErr *tollgate.Error
	if errors.As(err, &tErr) {
		return err
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) && sqliteErr.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return tollgate.Errorf(tollgate.EInternal, "control store %s: %s: %v (is the ID already stored?)", s.path, what, err)
	}
	return s.readError(ctx, what, err)
}
