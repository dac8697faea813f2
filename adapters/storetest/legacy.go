package storetest

import (
	"database/sql"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"
)

// MigrateTo leaves the database db at schema version of dialect, with
// recs made at that version: written by SQL, as the store of that time
// wrote them. A store's Tamper.MigratedTo calls it.
func MigrateTo(t testing.TB, db *sql.DB, dialect migrations.Dialect, version int64, recs []tollgate.Record) {
	t.Helper()
	fsys, err := migrations.Files(dialect)
	if err != nil {
		t.Fatal(err)
	}
	gd, insert := goose.DialectSQLite3, `INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if dialect == migrations.Postgres {
		gd, insert = goose.DialectPostgres, storekit.Rebind(insert)
	}
	p, err := goose.NewProvider(gd, db, fsys, goose.WithDisableGlobalRegistry(true))
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
		if _, err := db.Exec(insert, d.ID, d.EvaluatedAt.UnixNano(), d.Project, d.Pipeline, d.Branch, d.Environment,
			string(d.Status), d.BundleRevision, string(data)); err != nil {
			t.Fatal(err)
		}
	}
}

// legacyChained is what a store says of the records it chained when it
// opened.
type legacyChained interface {
	LegacyChained() int64
}

// testLegacyChainedOnce: records made before the ledger existed are
// chained, oldest first, by the open that applies the ledger's migration,
// which says how many, and the chain goes on from there; a record written
// around the store later is not chained by the next open, and
// verification reports it.
func testLegacyChainedOnce(t *testing.T, tp Tamper) {
	var recs []tollgate.Record
	for i := range 5 {
		recs = append(recs, Record(tollgate.Refused, time.Now().Add(time.Duration(i)*time.Second)))
	}
	tp.MigratedTo(5, recs)

	s := tp.Open()
	if n := s.(legacyChained).LegacyChained(); n != 5 {
		t.Fatalf("LegacyChained = %d, want 5", n)
	}
	ls := s.(tollgate.LedgerStore)
	if sum := VerifyLedger(t, ls); sum.Records != 5 {
		t.Fatalf("Verify after chaining legacy records: %+v; want 5", sum)
	}
	i := 0
	ls.LedgerEntries(t.Context(), 1, 5, func(e tollgate.LedgerEntry) error {
		if e.ID != recs[i].Decision.ID {
			t.Errorf("seq %d is decision %s; want %s (oldest first)", e.Seq, e.ID, recs[i].Decision.ID)
		}
		i++
		return nil
	})
	fresh := Record(tollgate.Refused, time.Now())
	put(t, s, fresh)
	if sum := VerifyLedger(t, ls); sum.Records != 6 {
		t.Fatalf("Verify after one more record: %+v; want 6", sum)
	}
	// Refusals older than the outbox are not notified, chained as they
	// were after its migration: only the new one is.
	outbox := s.(tollgate.Outbox)
	if n, err := outbox.FanOut(t.Context(), time.Now(), func(string) []string { return []string{"hook"} }, 100); err != nil || n != 1 {
		t.Fatalf("FanOut after chaining legacy refusals = %d, %v; want the one new refusal", n, err)
	}
	if ds, err := outbox.Deliveries(t.Context(), tollgate.DeliveryFilter{}); err != nil || len(ds) != 1 || ds[0].EventID != "decision.refused:"+fresh.Decision.ID {
		t.Fatalf("deliveries %+v, %v; want the new refusal's", ds, err)
	}

	if tp.Postgres {
		mustExec(t, tp, `ALTER TABLE decisions DROP CONSTRAINT decisions_chained`)
	}
	mustExec(t, tp, `INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record)
		SELECT 'forged', evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record FROM decisions WHERE seq = 1`)
	s.Close()
	s = tp.Open()
	defer s.Close()
	if n := s.(legacyChained).LegacyChained(); n != 0 {
		t.Fatalf("LegacyChained on the next open = %d, want 0", n)
	}
	BrokenAt(t, s.(tollgate.LedgerStore), 6, "1 records have no place in the chain")
}

// testUnchainedNotChainedAgain: records whose chain positions were
// removed in SQL, with the chain head reset, are not chained again when
// the store opens (the old code did, and verify then passed): verify
// reports them, read-only too.
func testUnchainedNotChainedAgain(t *testing.T, tp Tamper) {
	s := tp.Open()
	for i := range 5 {
		put(t, s, Record(tollgate.Refused, time.Now().Add(time.Duration(i)*time.Second)))
	}
	queries := []string{
		`UPDATE decisions SET seq = NULL, prev_hash = NULL, hash = NULL`,
		`UPDATE ledger SET seq = 0, hash = zeroblob(32)`,
	}
	if tp.Postgres {
		queries = []string{
			`ALTER TABLE decisions DROP CONSTRAINT decisions_chained`,
			queries[0],
			`UPDATE ledger SET seq = 0, prev_hash = decode(repeat('00', 32), 'hex'), hash = decode(repeat('00', 32), 'hex')`,
		}
	}
	for _, q := range queries {
		mustExec(t, tp, q)
	}
	s.Close()

	s = tp.Open()
	defer s.Close()
	if n := s.(legacyChained).LegacyChained(); n != 0 {
		t.Fatalf("LegacyChained = %d, want 0: only the run that applies the ledger's migration chains", n)
	}
	BrokenAt(t, s.(tollgate.LedgerStore), 0, "5 records have no place in the chain")
	BrokenAt(t, tp.readOnly(t), 0, "5 records have no place in the chain")
}
