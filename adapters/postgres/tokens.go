package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.TokenStore = (*Store)(nil)

// CreateToken implements tollgate.TokenStore: one transaction retires the
// expired tokens of the name and inserts t; the unique index on the names
// of unrevoked tokens turns a name taken meanwhile, by any process, into
// EConflict.
func (s *Store) CreateToken(ctx context.Context, t tollgate.Token, hash []byte) error {
	args, err := storekit.TokenArgs(t, hash)
	if err != nil {
		return err
	}
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	err = pgx.BeginFunc(opCtx, s.pool, func(tx pgx.Tx) error {
		now := storekit.UnixNano(t.CreatedAt)
		if _, err := tx.Exec(opCtx, `UPDATE tokens SET revoked_at = $1
			WHERE name = $2 AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1`, now, t.Name); err != nil {
			return err
		}
		_, err := tx.Exec(opCtx, `INSERT INTO tokens (`+storekit.TokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`, args...)
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "tokens_unrevoked_name":
		return tollgate.Errorf(tollgate.EConflict, "a token named %q exists already: revoke it first, or choose another name", t.Name)
	case err != nil:
		return s.dbError(ctx, "create token", err)
	}
	return nil
}

// RevokeToken implements tollgate.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, name string, at time.Time) (tollgate.Token, error) {
	leave, err := s.enter()
	if err != nil {
		return tollgate.Token{}, err
	}
	defer leave()
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var row storekit.TokenRow
	err = s.pool.QueryRow(opCtx, `UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL
		RETURNING `+storekit.TokenColumns, storekit.UnixNano(at), name).Scan(row.Dest()...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tollgate.Token{}, tollgate.Errorf(tollgate.ENotFound, "no token named %q (or it is revoked already): `tollgate token list` shows them", name)
	case err != nil:
		return tollgate.Token{}, s.dbError(ctx, "revoke token", err)
	}
	return row.Token()
}

// TokenByID implements tollgate.TokenStore.
func (s *Store) TokenByID(ctx context.Context, id string) (tollgate.Token, []byte, error) {
	if s.isClosed() {
		return tollgate.Token{}, nil, s.errClosed()
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var row storekit.TokenRow
	err := s.pool.QueryRow(opCtx, `SELECT `+storekit.TokenColumns+` FROM tokens WHERE id = $1`, id).Scan(row.Dest()...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tollgate.Token{}, nil, tollgate.Errorf(tollgate.ENotFound, "token %q not found", id)
	case err != nil:
		return tollgate.Token{}, nil, s.dbError(ctx, "read token", err)
	}
	t, err := row.Token()
	return t, row.Hash, err
}

// Tokens implements tollgate.TokenStore.
func (s *Store) Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error) {
	if s.isClosed() {
		return nil, s.errClosed()
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	query := `SELECT ` + storekit.TokenColumns + ` FROM tokens`
	if !withRevoked {
		query += ` WHERE revoked_at IS NULL`
	}
	rows, err := s.pool.Query(opCtx, query+` ORDER BY name, created_at, id`)
	if err != nil {
		return nil, s.dbError(ctx, "list tokens", err)
	}
	defer rows.Close()
	tokens := []tollgate.Token{}
	for rows.Next() {
		var row storekit.TokenRow
		if err := rows.Scan(row.Dest()...); err != nil {
			return nil, s.dbError(ctx, "list tokens", err)
		}
		t, err := row.Token()
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbError(ctx, "list tokens", err)
	}
	return tokens, nil
}
