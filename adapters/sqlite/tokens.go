package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.TokenStore = (*Store)(nil)

// Token writes go through the writer connection, as decisions do. They may
// also come from another process (`tollgate token create` beside a running
// server): SQLite's own file lock orders them, and no cooldown depends on
// them, so the one-process rule of the package does not apply to tokens.

// CreateToken implements tollgate.TokenStore. The writer's transactions
// begin IMMEDIATE, holding the write lock: retiring the expired tokens of
// the name, checking it is free and inserting are one step.
func (s *Store) CreateToken(ctx context.Context, t tollgate.Token, hash []byte) error {
	args, err := storekit.TokenArgs(t, hash)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, "create token", func(tx *sql.Tx) error {
		now := storekit.UnixNano(t.CreatedAt)
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?
			WHERE name = ? AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?`, now, t.Name, now); err != nil {
			return err
		}
		var id string
		err := tx.QueryRowContext(ctx, `SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL`, t.Name).Scan(&id)
		switch {
		case err == nil:
			return tollgate.Errorf(tollgate.EConflict, "a token named %q exists already (id %s): revoke it first, or choose another name", t.Name, id)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tokens (`+storekit.TokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`, args...)
		return err
	})
}

// RevokeToken implements tollgate.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, name string, at time.Time) (tollgate.Token, error) {
	var row storekit.TokenRow
	err := s.writeTx(ctx, "revoke token", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL
			RETURNING `+storekit.TokenColumns, storekit.UnixNano(at), name).Scan(row.Dest()...)
		if errors.Is(err, sql.ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "no token named %q (or it is revoked already): `tollgate token list` shows them", name)
		}
		return err
	})
	if err != nil {
		return tollgate.Token{}, err
	}
	return row.Token()
}

// writeTx runs fn in a transaction on the writer connection. A
// *tollgate.Error from fn is returned as it is; any other failure is the
// store's, "unavailable".
func (s *Store) writeTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	// Held for the whole transaction, so that Close waits for it to end
	// before it closes the writer connection.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return s.errClosed()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.readError(ctx, what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		var domErr *tollgate.Error
		if errors.As(err, &domErr) {
			return err
		}
		return s.readError(ctx, what, err)
	}
	if err := tx.Commit(); err != nil {
		return s.readError(ctx, what, err)
	}
	return nil
}

// TokenByID implements tollgate.TokenStore.
func (s *Store) TokenByID(ctx context.Context, id string) (tollgate.Token, []byte, error) {
	if s.isClosed() {
		return tollgate.Token{}, nil, s.errClosed()
	}
	var row storekit.TokenRow
	err := s.db.QueryRowContext(ctx, `SELECT `+storekit.TokenColumns+` FROM tokens WHERE id = ?`, id).Scan(row.Dest()...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return tollgate.Token{}, nil, tollgate.Errorf(tollgate.ENotFound, "token %q not found", id)
	case err != nil:
		return tollgate.Token{}, nil, s.readError(ctx, "read token", err)
	}
	t, err := row.Token()
	return t, row.Hash, err
}

// Tokens implements tollgate.TokenStore.
func (s *Store) Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error) {
	if s.isClosed() {
		return nil, s.errClosed()
	}
	query := `SELECT ` + storekit.TokenColumns + ` FROM tokens`
	if !withRevoked {
		query += ` WHERE revoked_at IS NULL`
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY name, created_at, id`)
	if err != nil {
		return nil, s.readError(ctx, "list tokens", err)
	}
	defer rows.Close()
	tokens := []tollgate.Token{}
	for rows.Next() {
		var row storekit.TokenRow
		if err := rows.Scan(row.Dest()...); err != nil {
			return nil, s.readError(ctx, "list tokens", err)
		}
		t, err := row.Token()
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readError(ctx, "list tokens", err)
	}
	return tokens, nil
}
