package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/storetest"
	"github.com/tollgate/tollgate/migrations"
)

// migratedTo leaves a store in dir at schema version, with recs.
func migratedTo(t *testing.T, dir string, version int64, recs []tollgate.Record) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.MigrateTo(t, db, migrations.SQLite, version, recs)
}

// TestOpenReadOnlyCreatesNothing: verify's read-only open of a directory
// without a store fails, saying so, and leaves nothing behind; a store at
// an older schema is not migrated.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no-store")
	if _, err := OpenReadOnly(t.Context(), dir); tollgate.ErrorCode(err) != tollgate.ENotFound || !strings.Contains(err.Error(), "no tollgate store in") {
		t.Fatalf("OpenReadOnly(a missing directory) = %v; want ENotFound saying there is no store", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory was created: %v", err)
	}
	empty := t.TempDir()
	if _, err := OpenReadOnly(t.Context(), empty); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("OpenReadOnly(an empty directory) = %v; want ENotFound", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("OpenReadOnly left %d files in an empty directory", len(entries))
	}

	old := t.TempDir()
	migratedTo(t, old, 5, nil)
	before, err := os.ReadFile(filepath.Join(old, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(t.Context(), old); tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "schema is at version 5") {
		t.Fatalf("OpenReadOnly(a store at version 5) = %v; want EInvalid naming the version", err)
	}
	after, err := os.ReadFile(filepath.Join(old, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("OpenReadOnly changed the database file")
	}
}

// TestTamper runs the tamper suite on the file, edited with a connection
// of its own, as the sqlite3 shell would.
func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) storetest.Tamper {
		dir := t.TempDir()
		return storetest.Tamper{
			Open: func() tollgate.DecisionStore { return mustOpen(t, dir) },
			Exec: func(query string) error {
				db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName)))
				if err != nil {
					return err
				}
				defer db.Close()
				_, err = db.Exec(query)
				return err
			},
			OpenReadOnly: func() (storetest.ReadOnly, error) { return OpenReadOnly(t.Context(), dir) },
			MigratedTo:   func(version int64, recs []tollgate.Record) { migratedTo(t, dir, version, recs) },
		}
	})
}
