package postgres

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for goose

	"github.com/tollgate/tollgate/migrations"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// migratedTo leaves the database at url at schema version, with recs.
func migratedTo(t *testing.T, url string, version int64, recs []tollgate.Record) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.MigrateTo(t, db, migrations.Postgres, version, recs)
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
			OpenReadOnly: func() (storetest.ReadOnly, error) { return OpenReadOnly(t.Context(), url) },
			MigratedTo:   func(version int64, recs []tollgate.Record) { migratedTo(t, url, version, recs) },
		}
	})
}
