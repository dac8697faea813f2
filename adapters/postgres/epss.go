package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// epssImportTimeout bounds the statements of an import, in place of the
// statement timeout meant for decisions: a COPY of FIRST's 300,000 scores
// takes about a second, but must not fail on a slow day.
const epssImportTimeout = 2 * time.Minute

// epssLock is the advisory lock that makes concurrent imports (from two
// replicas, say) run one after the other rather than collide on the keys.
const epssLock = int64(0x746f6c6c65707373) // "tollepss"

// ImportEPSS implements tollgate.EPSSStore: in one transaction, it deletes
// every score and COPYs set's in. DELETE rather than TRUNCATE: TRUNCATE
// would lock the table against the gate's lookups until the import commits;
// DELETE lets them read the previous set meanwhile.
func (s *Store) ImportEPSS(ctx context.Context, set tollgate.EPSSSet) error {
	scores, err := storekit.CheckEPSS(set)
	if err != nil {
		return err
	}
	return s.Run(ctx, "import EPSS", func() error {
		opCtx, cancel := context.WithTimeout(ctx, epssImportTimeout+grace)
		defer cancel()
		return s.importEPSS(opCtx, set, scores)
	})
}

func (s *Store) importEPSS(ctx context.Context, set tollgate.EPSSSet, scores []tollgate.EPSSScore) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	ms := epssImportTimeout.Milliseconds()
	for _, q := range []string{
		`SET LOCAL statement_timeout = ` + strconv.FormatInt(ms, 10),
		`SET LOCAL idle_in_transaction_session_timeout = ` + strconv.FormatInt(ms, 10),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, epssLock); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM epss`); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"epss"}, []string{"cve", "epss", "percentile"},
		pgx.CopyFromSlice(len(scores), func(i int) ([]any, error) {
			return []any{scores[i].CVE, scores[i].EPSS, scores[i].Percentile}, nil
		})); err != nil {
		return err
	}
	query, args := storekit.EPSSImportInfo(set, len(scores))
	if _, err := tx.Exec(ctx, storekit.Rebind(query), args...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
