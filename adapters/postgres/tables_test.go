package postgres

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/adapters/pgtest"
)

// TestUniqueNamesTheIndex: the dialect tells a violation of the unique
// index on the names of unrevoked tokens from that of another constraint,
// here the primary key; and the shared queries' `?` reach PostgreSQL as $n.
func TestUniqueNamesTheIndex(t *testing.T) {
	s := openClosing(t, pgtest.Shared(t).NewDatabase(t))
	ctx := context.Background()
	q := querier{s.pool}
	insert := `INSERT INTO tokens (id, name, scopes, secret_hash, created_at) VALUES (?, ?, 'read', decode(repeat('00', 32), 'hex'), 1)`
	if n, err := q.Exec(ctx, insert, "id-1", "deployer"); err != nil || n != 1 {
		t.Fatalf("insert: %d rows, %v", n, err)
	}
	_, sameName := q.Exec(ctx, insert, "id-2", "deployer")
	_, sameID := q.Exec(ctx, insert, "id-1", "other")
	if sameName == nil || sameID == nil {
		t.Fatalf("the inserts did not fail: %v, %v", sameName, sameID)
	}
	unique := s.dialect().Unique
	if !unique(sameName, "tokens_unrevoked_name", "tokens.name") {
		t.Errorf("Unique(%v, tokens_unrevoked_name) = false, want true", sameName)
	}
	if unique(sameID, "tokens_unrevoked_name", "tokens.name") {
		t.Errorf("Unique(%v, tokens_unrevoked_name) = true, want false", sameID)
	}
	if unique(nil, "tokens_unrevoked_name", "tokens.name") {
		t.Error("Unique(nil) = true")
	}
}
