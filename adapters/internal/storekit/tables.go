package storekit

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate/tollgate"
)

var (
	_ tollgate.TokenStore  = (*Core)(nil)
	_ tollgate.ScanStore   = (*Core)(nil)
	_ tollgate.BundleStore = (*Core)(nil)
)

// CreateToken implements tollgate.TokenStore: one write transaction
// retires the expired tokens of the name, checks that the name is free and
// inserts t. The unique index on the names of unrevoked tokens turns a
// name taken meanwhile, by any process, into EConflict too.
func (c *Core) CreateToken(ctx context.Context, t tollgate.Token, hash []byte) error {
	args, err := TokenArgs(t, hash)
	if err != nil {
		return err
	}
	return c.write(ctx, "create token", func(ctx context.Context, q Querier) error {
		now := UnixNano(t.CreatedAt)
		if _, err := q.Exec(ctx, `UPDATE tokens SET revoked_at = ?
			WHERE name = ? AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?`, now, t.Name, now); err != nil {
			return err
		}
		var id string
		err := q.QueryRow(ctx, `SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL`, t.Name).Scan(&id)
		switch {
		case err == nil:
			return tollgate.Errorf(tollgate.EConflict, "a token named %q exists already (id %s): revoke it first, or choose another name", t.Name, id)
		case !errors.Is(err, ErrNoRows):
			return err
		}
		_, err = q.Exec(ctx, `INSERT INTO tokens (`+TokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`, args...)
		if c.d.Unique(err, "tokens_unrevoked_name", "tokens.name") {
			return tollgate.Errorf(tollgate.EConflict, "a token named %q exists already: revoke it first, or choose another name", t.Name)
		}
		return err
	})
}

// RevokeToken implements tollgate.TokenStore.
func (c *Core) RevokeToken(ctx context.Context, name string, at time.Time) (tollgate.Token, error) {
	var row TokenRow
	err := c.writeOne(ctx, "revoke token", func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL
			RETURNING `+TokenColumns, UnixNano(at), name).Scan(row.Dest()...)
		if errors.Is(err, ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "no token named %q (or it is revoked already): `tollgate token list` shows them", name)
		}
		return err
	})
	if err != nil {
		return tollgate.Token{}, err
	}
	return row.Token()
}

// TokenByID implements tollgate.TokenStore.
func (c *Core) TokenByID(ctx context.Context, id string) (tollgate.Token, []byte, error) {
	var row TokenRow
	err := c.read(ctx, "read token", func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `SELECT `+TokenColumns+` FROM tokens WHERE id = ?`, id).Scan(row.Dest()...)
		if errors.Is(err, ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "token %q not found", id)
		}
		return err
	})
	if err != nil {
		return tollgate.Token{}, nil, err
	}
	t, err := row.Token()
	return t, row.Hash, err
}

// Tokens implements tollgate.TokenStore.
func (c *Core) Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error) {
	query := `SELECT ` + TokenColumns + ` FROM tokens`
	if !withRevoked {
		query += ` WHERE revoked_at IS NULL`
	}
	var rows []TokenRow
	err := c.read(ctx, "list tokens", func(ctx context.Context, q Querier) error {
		var err error
		rows, err = scanAll(ctx, q, query+` ORDER BY name, created_at, id`, nil, (*TokenRow).Dest)
		return err
	})
	if err != nil {
		return nil, err
	}
	tokens := make([]tollgate.Token, 0, len(rows))
	for i := range rows {
		t, err := rows[i].Token()
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, t)
	}
	return tokens, nil
}

// PutScan implements tollgate.ScanStore.
func (c *Core) PutScan(ctx context.Context, scan tollgate.StoredScan) error {
	data, err := EncodeScan(scan)
	if err != nil {
		return err
	}
	return c.writeOne(ctx, "store scan "+scan.ID, func(ctx context.Context, q Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO scans (id, project, artifact, scanned_at, scan) VALUES (?, ?, ?, ?, ?)`,
			scan.ID, scan.Project, scan.Artifact, scan.ScannedAt.UnixNano(), string(data))
		return err
	})
}

// Scan implements tollgate.ScanStore.
func (c *Core) Scan(ctx context.Context, id string) (tollgate.StoredScan, error) {
	var data []byte
	err := c.read(ctx, "read scan "+id, func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `SELECT scan FROM scans WHERE id = ?`, id).Scan(&data)
		if errors.Is(err, ErrNoRows) {
			return ScanNotFound(id)
		}
		return err
	})
	if err != nil {
		return tollgate.StoredScan{}, err
	}
	return DecodeScan(id, data)
}

// Baseline implements tollgate.ScanStore.
func (c *Core) Baseline(ctx context.Context, project, environment string) (*tollgate.Baseline, error) {
	var data []byte
	err := c.read(ctx, "read the baseline of "+project, func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `SELECT baseline FROM baselines WHERE project = ? AND environment = ?`,
			project, environment).Scan(&data)
		if errors.Is(err, ErrNoRows) {
			data = nil
			return nil
		}
		return err
	})
	if err != nil || data == nil {
		return nil, err
	}
	return DecodeBaseline(project, environment, data)
}

// PutBundle implements tollgate.BundleStore. A revision is a content hash,
// so a revision kept already, by any process, is left as it is.
func (c *Core) PutBundle(ctx context.Context, b tollgate.StoredBundle) error {
	args, err := BundleArgs(b)
	if err != nil {
		return err
	}
	return c.writeOne(ctx, "keep bundle", func(ctx context.Context, q Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO bundles (revision, files, stored_at) VALUES (?, ?, ?)
			ON CONFLICT (revision) DO NOTHING`, args...)
		return err
	})
}

// Bundle implements tollgate.BundleStore.
func (c *Core) Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error) {
	var row BundleRow
	err := c.read(ctx, "read bundle", func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `SELECT revision, files, stored_at FROM bundles WHERE revision = ?`, revision).Scan(row.Dest()...)
		if errors.Is(err, ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "bundle revision %q is not in the store", revision)
		}
		return err
	})
	if err != nil {
		return tollgate.StoredBundle{}, err
	}
	return row.Bundle()
}

// Control implements tollgate.ControlStore, in one statement: the history
// read is the one of the state read.
func (c *Core) Control(ctx context.Context, id string) (tollgate.Control, error) {
	var (
		ctl   tollgate.Control
		found bool
	)
	err := c.read(ctx, "read control "+id, func(ctx context.Context, q Querier) (err error) {
		ctl, found, err = QueryControl(ctx, q, id)
		return err
	})
	switch {
	case err != nil:
		return tollgate.Control{}, err
	case !found:
		return tollgate.Control{}, ControlNotFound(id)
	}
	return ctl, nil
}

// QueryControl reads the control id with its history; found is false when
// there is no such control.
func QueryControl(ctx context.Context, q Querier, id string) (c tollgate.Control, found bool, err error) {
	rows, err := q.Query(ctx, controlQuery, id)
	if err != nil {
		return tollgate.Control{}, false, err
	}
	defer rows.Close()
	return ReadControl(id, rows)
}

// Controls implements tollgate.ControlStore.
func (c *Core) Controls(ctx context.Context, f tollgate.ControlFilter) ([]tollgate.Control, error) {
	query, args := ControlsQuery(f)
	return c.listControls(ctx, "list controls", query, args)
}

// InForce implements tollgate.ControlStore.
func (c *Core) InForce(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	query, args := InForceQuery(at)
	return c.listControls(ctx, "read the controls in force", query, args)
}

func (c *Core) listControls(ctx context.Context, what, query string, args []any) (cs []tollgate.Control, err error) {
	err = c.read(ctx, what, func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		cs, err = ReadControls(rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// scanAll runs query and scans every row into a T through dest.
func scanAll[T any](ctx context.Context, q Querier, query string, args []any, dest func(*T) []any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(dest(&v)...); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

var _ tollgate.ControlStore = (*Core)(nil)

const (
	insertControl = `INSERT INTO controls (id, kind, state, project, code, created_at, expires_at, control)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

	updateControl = `UPDATE controls SET kind = ?, state = ?, project = ?, code = ?, created_at = ?, expires_at = ?, control = ?
	WHERE id = ?`

	// Events are numbered in the transaction that writes them, which holds
	// the control's row lock (or created the row; on SQLite, the file's
	// write lock): no other can take the same number.
	insertEvent = `INSERT INTO control_events (control_id, seq, at, actor, action, from_state, to_state, comment)
	VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM control_events WHERE control_id = ?), ?, ?, ?, ?, ?, ?)`
)

// CreateControl implements tollgate.ControlStore: the control and its
// history in one transaction. An incident is created only if none is on
// when it starts: the check and the insert are one step, incident
// creations ordered across processes by the dialect's LockIncidents (on
// PostgreSQL, READ COMMITTED then reads what the one before committed).
func (c *Core) CreateControl(ctx context.Context, ctl tollgate.Control) error {
	row, events, err := NewControl(ctl)
	if err != nil {
		return err
	}
	return c.write(ctx, "create control "+ctl.ID, func(ctx context.Context, q Querier) error {
		if row.Kind == string(tollgate.KindIncident) {
			if err := c.noIncidentOn(ctx, q, row); err != nil {
				return err
			}
		}
		if _, err := q.Exec(ctx, insertControl, row.ID, row.Kind, row.State, row.Project, row.Code,
			row.CreatedAt, row.ExpiresAt, string(row.Data)); err != nil {
			return err
		}
		for _, ev := range events {
			if err := appendEvent(ctx, q, row.ID, ev); err != nil {
				return err
			}
		}
		return putControlEvent(ctx, q, row, EventRow{At: row.CreatedAt, To: row.State})
	})
}

// noIncidentOn fails with EConflict if an incident is on when row starts.
func (c *Core) noIncidentOn(ctx context.Context, q Querier, row ControlRow) error {
	if c.d.LockIncidents != "" {
		if _, err := q.Exec(ctx, c.d.LockIncidents); err != nil {
			return err
		}
	}
	var id string
	var expiresAt int64
	err := q.QueryRow(ctx, incidentOnQuery, IncidentOnArgs(row)...).Scan(&id, &expiresAt)
	switch {
	case errors.Is(err, ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return IncidentOn(id, expiresAt)
}

// UpdateControl implements tollgate.ControlStore. One transaction locks
// the control's row (SELECT … FOR UPDATE; on SQLite, the write
// transaction holds the file's lock), then reads it with its history, runs
// change, writes the result and the event, and commits: an update of the
// same control in any process waits, and then reads what this one
// committed. change runs holding the lock: it must be quick and must not
// use the store.
func (c *Core) UpdateControl(ctx context.Context, id string, change func(*tollgate.Control) (tollgate.ControlEvent, error)) (tollgate.Control, error) {
	var (
		updated   tollgate.Control
		changeErr error // change's, or a checked field's: returned as it is
	)
	err := c.write(ctx, "update control "+id, func(ctx context.Context, q Querier) error {
		var found string
		err := q.QueryRow(ctx, `SELECT id FROM controls WHERE id = ?`+c.d.ForUpdate, id).Scan(&found)
		if errors.Is(err, ErrNoRows) {
			return ControlNotFound(id)
		}
		if err != nil {
			return err
		}
		ctl, _, err := QueryControl(ctx, q, id)
		if err != nil {
			return err
		}
		next, row, ev, err := Change(ctl, change)
		if err != nil {
			changeErr = err
			return err
		}
		updated = next
		return putControl(ctx, q, row, ev)
	})
	switch {
	case changeErr != nil:
		return tollgate.Control{}, changeErr
	case err != nil:
		return tollgate.Control{}, err
	}
	return updated, nil
}

// ExpireDue implements tollgate.ControlStore. It looks for due controls
// in a read first, so that the expiry worker's rounds with nothing to do
// (nearly all of them) never hold up a writer; then one transaction
// selects them again FOR UPDATE, expires them and records the events. Two
// replicas expiring at once cannot expire a control twice: the second
// one's SELECT waits for the rows the first has locked, and PostgreSQL
// then checks the WHERE again on the rows as committed (READ COMMITTED)
// and skips those no longer live. Rows are locked in ID order, the same in
// every replica, so that they never wait for each other in a circle.
//
// Not one UPDATE … RETURNING: the event needs the state the control left,
// and the transition is the domain's (Control.Transition), not SQL's.
func (c *Core) ExpireDue(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	query, args := DueQuery(at)
	var due bool
	err := c.read(ctx, "look for due controls", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT EXISTS (`+query+`)`, args...).Scan(&due)
	})
	if err != nil || !due {
		return []tollgate.Control{}, err
	}
	var expired []tollgate.Control
	err = c.write(ctx, "expire controls", func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, query+c.d.ForUpdate, args...)
		if err != nil {
			return err
		}
		due, err := ReadControls(rows)
		rows.Close()
		if err != nil {
			return err
		}
		expired = make([]tollgate.Control, 0, len(due))
		for _, ctl := range due {
			next, row, ev, err := Expire(ctl, at)
			if err != nil {
				return err
			}
			if err := putControl(ctx, q, row, ev); err != nil {
				return err
			}
			expired = append(expired, next)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return expired, nil
}

// putControl writes a changed control and appends its event, and the
// notification event of its step, if any, in the same transaction.
func putControl(ctx context.Context, q Querier, row ControlRow, ev EventRow) error {
	if _, err := q.Exec(ctx, updateControl, row.Kind, row.State, row.Project, row.Code,
		row.CreatedAt, row.ExpiresAt, string(row.Data), row.ID); err != nil {
		return err
	}
	if err := appendEvent(ctx, q, row.ID, ev); err != nil {
		return err
	}
	return putControlEvent(ctx, q, row, ev)
}

func appendEvent(ctx context.Context, q Querier, id string, ev EventRow) error {
	_, err := q.Exec(ctx, insertEvent, id, id, ev.At, ev.By, ev.Action, ev.From, ev.To, ev.Comment)
	return err
}
