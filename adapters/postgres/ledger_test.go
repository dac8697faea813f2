package postgres

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for goose
	"github.com/pressly/goose/v3"

	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// migratedTo leaves the database at url at schema version, with records
// made at that version: written by SQL, as the store of that time wrote
// them.
func migratedTo(t *testing.T, url string, version int64, recs []tollgate.Record) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys, err := migrations.Files(migrations.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
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
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, d.ID, d.EvaluatedAt.UnixNano(), d.Project, d.Pipeline, d.Branch, d.Environment, string(d.Status), d.BundleRevision, string(data)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLegacyRecordsAreChainedOnce: records made before the ledger existed
// are chained, oldest first, by the Open that applies the ledger's
// migration, which says how many.
func TestLegacyRecordsAreChainedOnce(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	var recs []tollgate.Record
	var ids []string
	for i := range 5 {
		rec := record(tollgate.Accepted, time.Now().Add(time.Duration(i)*time.Second))
		recs = append(recs, rec)
		ids = append(ids, rec.Decision.ID)
	}
	migratedTo(t, url, 5, recs)

	s := openClosing(t, url)
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
	// And the chain goes on from there.
	if _, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
		t.Fatal(err)
	}
	if sum := storetest.VerifyLedger(t, s); sum.Records != 6 {
		t.Fatalf("Verify after one more record: %+v; want 6", sum)
	}
}

// TestMigrateChainsLegacyRecords: `tollgate migrate` applies the ledger's
// migration, so it chains the records made before it, as Open would.
func TestMigrateChainsLegacyRecords(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	migratedTo(t, url, 5, []tollgate.Record{record(tollgate.Accepted, time.Now()), record(tollgate.Refused, time.Now())})
	if _, err := Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	s := openClosing(t, url)
	if sum := storetest.VerifyLedger(t, s); sum.Records != 2 {
		t.Fatalf("Verify after migrate: %+v; want 2 records", sum)
	}
}

// TestUnchainedRecordsAreNotChainedAgain: records whose chain positions
// were removed in SQL, with the chain head reset, are not chained again
// when the store opens (the old code did, and verify then passed): verify
// reports them, read-only too.
func TestUnchainedRecordsAreNotChainedAgain(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := mustOpen(t, url)
	for i := range 5 {
		if _, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now().Add(time.Duration(i)*time.Second)))); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`ALTER TABLE decisions DROP CONSTRAINT decisions_chained`,
		`UPDATE decisions SET seq = NULL, prev_hash = NULL, hash = NULL`,
		`UPDATE ledger SET seq = 0, prev_hash = decode(repeat('00', 32), 'hex'), hash = decode(repeat('00', 32), 'hex')`,
		`ALTER TABLE decisions ADD CONSTRAINT decisions_chained CHECK (seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL) NOT VALID`,
	} {
		if _, err := s.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s = openClosing(t, url)
	if n := s.LegacyChained(); n != 0 {
		t.Fatalf("LegacyChained = %d, want 0: only the run that applies the ledger's migration chains", n)
	}
	storetest.BrokenAt(t, s, 0, "5 records have no place in the chain")
	l, err := OpenReadOnly(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	storetest.BrokenAt(t, l, 0, "5 records have no place in the chain")
}

// TestOpenReadOnlyCreatesNothing: verify's read-only open of a database
// tollgate never migrated fails, saying so, and creates no table there;
// one at an older schema is not migrated.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	tables := func() int {
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := OpenReadOnly(t.Context(), url); tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "no tollgate schema") {
		t.Fatalf("OpenReadOnly(an empty database) = %v; want EInvalid saying there is no tollgate schema", err)
	}
	if n := tables(); n != 0 {
		t.Fatalf("OpenReadOnly created %d tables in an empty database", n)
	}
	migratedTo(t, url, 5, nil)
	before := tables()
	if _, err := OpenReadOnly(t.Context(), url); tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "schema is at version 5") {
		t.Fatalf("OpenReadOnly(a database at version 5) = %v; want EInvalid naming the version", err)
	}
	if after := tables(); after != before {
		t.Fatalf("OpenReadOnly changed the schema: %d tables, then %d", before, after)
	}
}

// TestTamper runs the tamper suite on a database edited with a
// connection of its own, as psql would.
func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) storetest.Tamper {
		url := pgtest.Shared(t).NewDatabase(t)
		return storetest.Tamper{
			Open:     func() tollgate.DecisionStore { return mustOpen(t, url) },
			Postgres: true,
			Exec: func(query string) error {
				conn, err := pgx.Connect(t.Context(), url)
				if err != nil {
					return err
				}
				defer conn.Close(context.Background())
				_, err = conn.Exec(t.Context(), query)
				return err
			},
			OpenReadOnly: func() tollgate.LedgerStore {
				l, err := OpenReadOnly(t.Context(), url)
				if err != nil {
					t.Fatalf("OpenReadOnly: %v", err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			},
		}
	})
}
