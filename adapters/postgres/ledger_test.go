package postgres

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// TestLegacyRecordsAreChainedOnce: records made before the ledger existed
// (no seq, an empty chain, as migration 00006 leaves them) are chained,
// oldest first, when the store opens.
func TestLegacyRecordsAreChainedOnce(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := mustOpen(t, url)
	var ids []string
	for i := range 5 {
		rec := record(tollgate.Accepted, time.Now().Add(time.Duration(i)*time.Second))
		if _, err := s.Decide(t.Context(), nil, fixed(rec)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.Decision.ID)
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
