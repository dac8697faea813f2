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

	"github.com/tollgate/tollgate"
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
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := epoch.Add(365 * 24 * time.Hour)
	ended := []tollgate.ControlState{tollgate.StateExpired, tollgate.StateRevoked, tollgate.StateRejected, tollgate.StateLifted}
	var controls, events [][]any
	for i := range n {
		created := epoch.Add(time.Duration(i) * 365 * 24 * time.Hour / time.Duration(n))
		c := tollgate.Control{ID: fmt.Sprintf("%012x-7000-8000-000000000000", i), Kind: tollgate.KindException,
			State: ended[i%len(ended)], Reason: "seeded", CreatedBy: "jane", CreatedAt: created,
			ExpiresAt: created.Add(time.Hour), Code: "risk_threshold_exceeded", Project: fmt.Sprintf("project-%d", i%50)}
		if i >= n-inForce {
			c.State, c.ExpiresAt = tollgate.StateApproved, now.Add(time.Duration(i+1)*time.Minute)
		}
		c.History = []tollgate.ControlEvent{{At: created, By: "jane", Action: tollgate.ActionCreate, To: c.State}}
		row, evs, err := storekit.NewControl(c)
		if err != nil {
			tb.Fatal(err)
		}
		controls = append(controls, []any{row.ID, row.Kind, row.State, row.Project, row.Code, row.CreatedAt, row.ExpiresAt, row.Data})
		ev := evs[0]
		events = append(events, []any{row.ID, 1, ev.At, ev.By, ev.Action, ev.From, ev.To, ev.Comment})
	}
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
		{"controls", []string{"id", "kind", "state", "project", "code", "created_at", "expires_at", "control"}, controls},
		{"control_events", []string{"control_id", "seq", "at", "actor", "action", "from_state", "to_state", "comment"}, events},
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
	inForce, inForceArgs := storekit.InForceQuery(now, storekit.Question)
	due, dueArgs := storekit.DueQuery(now, storekit.Question)
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
