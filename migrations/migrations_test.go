package migrations

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"modernc.org/sqlite"
)

func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	connector, err := sqlite.NewConnector(filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestApplySQLiteIsIdempotent(t *testing.T) {
	db := openSQLite(t)
	applied, err := Apply(t.Context(), db, SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[0] != "00001_decisions.sql" {
		t.Fatalf("first Apply applied %q, want 00001_decisions.sql first", applied)
	}
	for _, table := range []string{"decisions", "cooldowns"} {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: count %d, err %v", table, n, err)
		}
	}
	again, err := Apply(t.Context(), db, SQLite)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("second Apply applied %q, want nothing", again)
	}
}

func TestApplyNamesTheFailedMigration(t *testing.T) {
	good, err := fs.ReadFile(files, "sqlite/00001_decisions.sql")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"00001_decisions.sql": {Data: good},
		"00002_broken.sql":    {Data: []byte("-- +goose Up\nCREATE TABLE decisions (id TEXT);\n")},
	}
	db := openSQLite(t)
	_, err = apply(t.Context(), db, SQLite, fsys)
	if err == nil || !strings.Contains(err.Error(), "00002_broken.sql") {
		t.Fatalf("error %v, want one naming 00002_broken.sql", err)
	}
	// The good migration before it stays applied; the broken one left nothing.
	var versions []int64
	rows, err := db.Query(`SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if !slices.Equal(versions, []int64{1}) {
		t.Fatalf("applied versions %v, want [1]", versions)
	}
}

func TestUnknownDialect(t *testing.T) {
	if _, err := Apply(t.Context(), openSQLite(t), "mysql"); err == nil || !strings.Contains(err.Error(), "mysql") {
		t.Fatalf("error %v, want one naming the dialect", err)
	}
}

// Both databases must go through the same versions, or a store moved from
// one to the other would not have the shape the code expects.
func TestDialectsHaveTheSameVersions(t *testing.T) {
	names := func(d Dialect) []string {
		fsys, err := Files(d)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}
	lite, postgres := names(SQLite), names(Postgres)
	if len(lite) == 0 || !slices.Equal(lite, postgres) {
		t.Fatalf("sqlite migrations %q, postgres %q: want the same non-empty list", lite, postgres)
	}
}
