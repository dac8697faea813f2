package storekit

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate/tollgate"
)

// Tables implements, once for both stores, the stores' calls on the
// tokens, scans, baselines and bundles tables: tollgate.TokenStore,
// tollgate.ScanStore and tollgate.BundleStore, the reads of
// tollgate.ControlStore (its writes lock in each dialect's way) and the
// history reads of tollgate.DecisionStore (Decision, Decisions; history.go)
// and the derived-state reads of tollgate.LedgerStore (LedgerCooldowns,
// LedgerBaselines; ledger.go). A store embeds it, made by NewTables with
// its Dialect.
type Tables struct {
	d Dialect
}

// NewTables returns the shared calls, run through d.
func NewTables(d Dialect) Tables { return Tables{d: d} }

var (
	_ tollgate.TokenStore  = Tables{}
	_ tollgate.ScanStore   = Tables{}
	_ tollgate.BundleStore = Tables{}
)

// CreateToken implements tollgate.TokenStore: one write transaction
// retires the expired tokens of the name, checks that the name is free and
// inserts t. The unique index on the names of unrevoked tokens turns a
// name taken meanwhile, by any process, into EConflict too.
func (tb Tables) CreateToken(ctx context.Context, t tollgate.Token, hash []byte) error {
	args, err := TokenArgs(t, hash)
	if err != nil {
		return err
	}
	return tb.d.Write(ctx, "create token", func(ctx context.Context, q Querier) error {
		now := UnixNano(t.CreatedAt)
		if err := q.Exec(ctx, `UPDATE tokens SET revoked_at = ?
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
		err = q.Exec(ctx, `INSERT INTO tokens (`+TokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`, args...)
		if tb.d.Unique(err, "tokens_unrevoked_name", "tokens.name") {
			return tollgate.Errorf(tollgate.EConflict, "a token named %q exists already: revoke it first, or choose another name", t.Name)
		}
		return err
	})
}

// RevokeToken implements tollgate.TokenStore.
func (tb Tables) RevokeToken(ctx context.Context, name string, at time.Time) (tollgate.Token, error) {
	var row TokenRow
	err := tb.d.WriteOne(ctx, "revoke token", func(ctx context.Context, q Querier) error {
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
func (tb Tables) TokenByID(ctx context.Context, id string) (tollgate.Token, []byte, error) {
	var row TokenRow
	err := tb.d.Read(ctx, "read token", func(ctx context.Context, q Querier) error {
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
func (tb Tables) Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error) {
	query := `SELECT ` + TokenColumns + ` FROM tokens`
	if !withRevoked {
		query += ` WHERE revoked_at IS NULL`
	}
	var rows []TokenRow
	err := tb.d.Read(ctx, "list tokens", func(ctx context.Context, q Querier) error {
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
func (tb Tables) PutScan(ctx context.Context, scan tollgate.StoredScan) error {
	data, err := EncodeScan(scan)
	if err != nil {
		return err
	}
	return tb.d.WriteOne(ctx, "store scan "+scan.ID, func(ctx context.Context, q Querier) error {
		return q.Exec(ctx, `INSERT INTO scans (id, project, artifact, scanned_at, scan) VALUES (?, ?, ?, ?, ?)`,
			scan.ID, scan.Project, scan.Artifact, scan.ScannedAt.UnixNano(), string(data))
	})
}

// Scan implements tollgate.ScanStore.
func (tb Tables) Scan(ctx context.Context, id string) (tollgate.StoredScan, error) {
	var data []byte
	err := tb.d.Read(ctx, "read scan "+id, func(ctx context.Context, q Querier) error {
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
func (tb Tables) Baseline(ctx context.Context, project, environment string) (*tollgate.Baseline, error) {
	var data []byte
	err := tb.d.Read(ctx, "read the baseline of "+project, func(ctx context.Context, q Querier) error {
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
func (tb Tables) PutBundle(ctx context.Context, b tollgate.StoredBundle) error {
	args, err := BundleArgs(b)
	if err != nil {
		return err
	}
	return tb.d.WriteOne(ctx, "keep bundle", func(ctx context.Context, q Querier) error {
		return q.Exec(ctx, `INSERT INTO bundles (revision, files, stored_at) VALUES (?, ?, ?)
			ON CONFLICT (revision) DO NOTHING`, args...)
	})
}

// Bundle implements tollgate.BundleStore.
func (tb Tables) Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error) {
	var row BundleRow
	err := tb.d.Read(ctx, "read bundle", func(ctx context.Context, q Querier) error {
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
func (tb Tables) Control(ctx context.Context, id string) (tollgate.Control, error) {
	var (
		c     tollgate.Control
		found bool
	)
	err := tb.d.Read(ctx, "read control "+id, func(ctx context.Context, q Querier) error {
		var err error
		c, found, err = QueryControl(ctx, q, id)
		return err
	})
	switch {
	case err != nil:
		return tollgate.Control{}, err
	case !found:
		return tollgate.Control{}, ControlNotFound(id)
	}
	return c, nil
}

// QueryControl reads the control id with its history; found is false when
// there is no such control.
func QueryControl(ctx context.Context, q Querier, id string) (c tollgate.Control, found bool, err error) {
	rows, err := q.Query(ctx, ControlQuery(Question), id)
	if err != nil {
		return tollgate.Control{}, false, err
	}
	defer rows.Close()
	return ReadControl(id, rows)
}

// Controls implements tollgate.ControlStore.
func (tb Tables) Controls(ctx context.Context, f tollgate.ControlFilter) ([]tollgate.Control, error) {
	query, args := ControlsQuery(f, Question)
	return tb.listControls(ctx, "list controls", query, args)
}

// InForce implements tollgate.ControlStore.
func (tb Tables) InForce(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	query, args := InForceQuery(at, Question)
	return tb.listControls(ctx, "read the controls in force", query, args)
}

func (tb Tables) listControls(ctx context.Context, what, query string, args []any) (cs []tollgate.Control, err error) {
	err = tb.d.Read(ctx, what, func(ctx context.Context, q Querier) error {
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

// Question is the placeholder of Querier's SQL, for the query builders
// that take one (ph): `?`, whatever n.
func Question(int) string { return "?" }

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
