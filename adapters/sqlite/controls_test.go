package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// seedControls writes storetest.SeededControls in one transaction and
// returns the time "now" of that store.
func seedControls(tb testing.TB, s *Store, n, inForce int) time.Time {
	tb.Helper()
	controls, events, now := storetest.SeededControls(tb, n, inForce)
	err := s.onWriter(context.Background(), func(tx *sql.Tx) error {
		for i := range controls {
			if _, err := tx.Exec(`INSERT INTO controls (`+strings.Join(storetest.ControlColumns, ", ")+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, controls[i]...); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO control_events (`+strings.Join(storetest.EventColumns, ", ")+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, events[i]...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return now
}

// The control queries walk an index for InForce and ExpireDue (the gate and
// the worker run them all the time), and list newest first straight off an
// index when unfiltered or filtered by kind or project.
func TestControlQueriesUseIndexes(t *testing.T) {
	s := openClosing(t, t.TempDir())
	now := seedControls(t, s, 2_000, 100) // the plans are the same with 10,000
	inForce, inForceArgs := storekit.InForceQuery(now)
	due, dueArgs := storekit.DueQuery(now)
	for _, tc := range []struct {
		name, query string
		args        []any
		want        string // a step of the plan
		sortOK      bool
	}{
		{"InForce", inForce, inForceArgs, "SEARCH controls USING INDEX controls_state_expires_at (state=? AND expires_at>?)", true},
		{"ExpireDue", due, dueArgs, "SEARCH controls USING INDEX controls_state_expires_at (state=? AND expires_at<?)", true},
		{"list", "", nil, "SCAN controls USING INDEX controls_created_at", false},
		{"list by kind", "kind", nil, "SEARCH controls USING INDEX controls_kind (kind=?)", false},
		{"list by project", "project", nil, "SEARCH controls USING INDEX controls_project (project=?)", false},
		{"list by project and code", "project+code", nil, "SEARCH controls USING INDEX controls_project (project=?)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			query, args := tc.query, tc.args
			if tc.args == nil {
				var f tollgate.ControlFilter
				switch tc.query {
				case "kind":
					f.Kind = tollgate.KindException
				case "project":
					f.Project = "project-7"
				case "project+code":
					f.Project, f.Code = "project-7", "risk_threshold_exceeded"
				}
				query, args = storekit.ControlsQuery(f)
			}
			plan := queryPlan(t, s, query, args)
			if !strings.Contains(strings.Join(plan, "\n"), tc.want) {
				t.Errorf("plan %q, want the step %q", plan, tc.want)
			}
			if !tc.sortOK && strings.Contains(strings.Join(plan, "\n"), "TEMP B-TREE") {
				t.Errorf("plan %q sorts", plan)
			}
			t.Logf("%q", plan)
		})
	}
}

func queryPlan(t *testing.T, s *Store, query string, args []any) []string {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}

// BenchmarkInForce reads the controls in force among 10,000, as the gate
// does for every evaluation: 100 in force (the usual), or all of them.
//
//	go test -run '^$' -bench InForce ./adapters/sqlite/
func BenchmarkInForce(b *testing.B) {
	for _, inForce := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("10000-controls/%d-in-force", inForce), func(b *testing.B) {
			s := mustOpen(b, b.TempDir())
			defer s.Close()
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

// BenchmarkExpireDueNothingDue is the expiry worker's usual round: nothing
// due among 10,000 controls. It never takes the writer.
func BenchmarkExpireDueNothingDue(b *testing.B) {
	s := mustOpen(b, b.TempDir())
	defer s.Close()
	now := seedControls(b, s, 10_000, 100)
	for b.Loop() {
		if cs, err := s.ExpireDue(context.Background(), now); err != nil || len(cs) != 0 {
			b.Fatalf("ExpireDue: %d, %v", len(cs), err)
		}
	}
}
