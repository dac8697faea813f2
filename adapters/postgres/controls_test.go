package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// Two replicas (two Stores, two pools) on one database race the expiry
// worker's ExpireDue and approvals of one exception: each control expires
// once, each exception is approved once, whichever replica acts.
func TestTwoReplicasControls(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	storetest.RaceReplicas(t, openClosing(t, url), openClosing(t, url))
}

// BenchmarkInForce reads the controls in force among 10,000, as the gate
// does for every evaluation: 100 in force (the usual), or all of them.
//
//	go test -run '^$' -bench InForce ./adapters/postgres/
func BenchmarkInForce(b *testing.B) {
	for _, inForce := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("10000-controls/%d-in-force", inForce), func(b *testing.B) {
			s := openClosing(b, pgtest.Shared(b).NewDatabase(b))
			now := seedControls(b, s, 10_000, inForce)
			for b.Loop() {
				cs, err := s.InForce(context.Background(), now)
				if err != nil || len(cs) != inForce {
					b.Fatalf("InForce: %d controls, %v; want %d", len(cs), err, inForce)
				}
			}
		})
	}
}

// seedControls writes n controls in one transaction, a year of them, the
// last inForce of which are approved and expire in the future; the others
// ended long ago. It returns the time "now" of that store.
func seedControls(tb testing.TB, s *Store, n, inForce int) time.Time {
	tb.Helper()
	controls, events, now := storetest.SeededControls(tb, n, inForce)
	// COPY, in a transaction without the statement timeout: the tests
	// that seed run beside the whole suite on a busy machine.
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		tb.Fatal(err)
	}
	for _, table := range []struct {
		name    string
		columns []string
		rows    [][]any
	}{
		{"controls", storetest.ControlColumns, controls},
		{"control_events", storetest.EventColumns, events},
	} {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table.name}, table.columns, pgx.CopyFromRows(table.rows)); err != nil {
			tb.Fatalf("seed %s: %v", table.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.pool.Exec(context.Background(), "ANALYZE controls"); err != nil {
		tb.Fatal(err)
	}
	return now
}

// InForce and ExpireDue, which the gate and the worker run all the time,
// walk the (state, expires_at) index of 10,000 controls, not the table.
func TestControlQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	s := openClosing(t, url)
	now := seedControls(t, s, 10_000, 100)
	inForce, inForceArgs := storekit.InForceQuery(now)
	due, dueArgs := storekit.DueQuery(now)
	for name, q := range map[string]struct {
		query string
		args  []any
	}{"InForce": {inForce, inForceArgs}, "ExpireDue": {due + " FOR UPDATE", dueArgs}} {
		var raw []byte
		if err := s.pool.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+storekit.Rebind(q.query), q.args...).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var plan any
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		nodes := planNodes(plan)
		if slices.ContainsFunc(nodes, func(n string) bool { return strings.HasPrefix(n, "Seq Scan") }) {
			t.Errorf("%s: plan %q scans the table", name, nodes)
		}
		t.Logf("%s: %q", name, nodes)
	}
}
