package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/storetest"
	"github.com/tollgate/tollgate/migrations"
)

// migratedTo leaves a store in dir at schema version, with records made
// at that version: written by SQL, as the store of that time wrote them.
func migratedTo(t *testing.T, dir string, version int64, recs []tollgate.Record) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys, err := migrations.Files(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), version); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		data, err := storekit.EncodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		d := rec.Decision
		if _, err := db.Exec(`INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.ID, d.EvaluatedAt.UnixNano(), d.Project, d.Pipeline, d.Branch, d.Environment, string(d.Status), d.BundleRevision, string(data)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLegacyRecordsAreChainedOnce: records made before the ledger existed
// are chained, oldest first, by the Open that applies the ledger's
// migration, which says how many; a record written around the store later
// is not, and verification reports it.
func TestLegacyRecordsAreChainedOnce(t *testing.T) {
	dir := t.TempDir()
	var recs []tollgate.Record
	var ids []string
	for i := range 5 {
		rec := record(tollgate.Accepted, time.Now().Add(time.Duration(i)*time.Second))
		recs = append(recs, rec)
		ids = append(ids, rec.Decision.ID)
	}
	migratedTo(t, dir, 5, recs)

	s := openClosing(t, dir)
	if n := s.LegacyChained(); n != 5 {
		t.Fatalf("LegacyChained = %d, want 5", n)
	}
	if sum := storetest.VerifyLedger(t, s); sum.Records != 5 {
		t.Fatalf("Verify after chaining legacy records: %+v; want 5", sum)
	}
	i := 0
	s.LedgerEntries(t.Context(), 1, 5, func(e tollgate.LedgerEntry) error {
		if e.ID != ids[i] {
			t.Errorf("seq %d is decision %s; want %s (oldest first)", e.Seq, e.ID, ids[i])
		}
		i++
		return nil
	})

	if _, err := s.db.Exec(`INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record)
		SELECT 'forged', evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record FROM decisions WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openClosing(t, dir)
	if n := s.LegacyChained(); n != 0 {
		t.Fatalf("LegacyChained on the next open = %d, want 0", n)
	}
	storetest.BrokenAt(t, s, 5, "1 records have no place in the chain")
}

// TestUnchainedRecordsAreNotChainedAgain: records whose chain positions
// were removed in SQL, with the chain head reset, are not chained again
// when the store opens (the old code did, and verify then passed): verify
// reports them, read-only too.
func TestUnchainedRecordsAreNotChainedAgain(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	for i := range 5 {
		if _, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now().Add(time.Duration(i)*time.Second)))); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`UPDATE decisions SET seq = NULL, prev_hash = NULL, hash = NULL`,
		`UPDATE ledger SET seq = 0, hash = zeroblob(32)`,
	} {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s = openClosing(t, dir)
	if n := s.LegacyChained(); n != 0 {
		t.Fatalf("LegacyChained = %d, want 0: only the run that applies the ledger's migration chains", n)
	}
	storetest.BrokenAt(t, s, 0, "5 records have no place in the chain")
	l, err := OpenReadOnly(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	storetest.BrokenAt(t, l, 0, "5 records have no place in the chain")
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
			OpenReadOnly: func() tollgate.LedgerStore {
				l, err := OpenReadOnly(t.Context(), dir)
				if err != nil {
					t.Fatalf("OpenReadOnly: %v", err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			},
		}
	})
}
