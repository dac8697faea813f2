package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// TestLegacyRecordsAreChainedOnce: records made before the ledger existed
// (no seq, an empty chain, as migration 00006 leaves them) are chained,
// oldest first, when the store opens; a record written around the store
// later is not, and verification reports it.
func TestLegacyRecordsAreChainedOnce(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	var ids []string
	for i := range 5 {
		rec := record(tollgate.Accepted, time.Now().Add(time.Duration(i)*time.Second))
		if _, err := s.Decide(t.Context(), nil, fixed(rec)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.Decision.ID)
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
	storetest.BrokenAt(t, s, 5, "1 records have no place in the chain")
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
				l, err := OpenLedger(t.Context(), dir)
				if err != nil {
					t.Fatalf("OpenLedger: %v", err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			},
		}
	})
}
