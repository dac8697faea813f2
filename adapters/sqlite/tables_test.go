package sqlite

import (
	"context"
	"testing"
)

// TestUniqueNamesTheIndex: the dialect tells a violation of the unique
// index on the names of unrevoked tokens (SQLite names its columns) from
// that of another constraint, here the primary key.
func TestUniqueNamesTheIndex(t *testing.T) {
	s := openClosing(t, t.TempDir())
	ctx := context.Background()
	insert := `INSERT INTO tokens (id, name, scopes, secret_hash, created_at) VALUES (?, ?, 'read', zeroblob(32), 1)`
	if _, err := s.db.ExecContext(ctx, insert, "id-1", "deployer"); err != nil {
		t.Fatal(err)
	}
	_, sameName := s.db.ExecContext(ctx, insert, "id-2", "deployer")
	_, sameID := s.db.ExecContext(ctx, insert, "id-1", "other")
	unique := s.dialect().Unique
	for _, tc := range []struct {
		name string
		err  error
		cols string
		want bool
	}{
		{"same name", sameName, "tokens.name", true},
		{"same name, other columns", sameName, "tokens.id", false},
		{"same name, a prefix of the columns", sameName, "tokens.nam", false},
		{"same id", sameID, "tokens.name", false},
		{"no error", nil, "tokens.name", false},
	} {
		if tc.err == nil && tc.name != "no error" {
			t.Fatalf("%s: the insert did not fail", tc.name)
		}
		if got := unique(tc.err, "tokens_unrevoked_name", tc.cols); got != tc.want {
			t.Errorf("%s: Unique(%v, %q) = %v, want %v", tc.name, tc.err, tc.cols, got, tc.want)
		}
	}
}
