package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// SeededControls are n controls over a year, as rows of the controls and
// control_events tables (in the order of ControlColumns and EventColumns),
// for a store's test to load in bulk: the last inForce are approved and
// expire after now; the others ended (expired, revoked, rejected, lifted)
// long ago, as most of a real store's controls have.
func SeededControls(tb testing.TB, n, inForce int) (controls, events [][]any, now time.Time) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now = epoch.Add(365 * 24 * time.Hour)
	ended := []tollgate.ControlState{tollgate.StateExpired, tollgate.StateRevoked, tollgate.StateRejected, tollgate.StateLifted}
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
		controls = append(controls, []any{row.ID, row.Kind, row.State, row.Project, row.Code, row.CreatedAt, row.ExpiresAt, string(row.Data)})
		ev := evs[0]
		events = append(events, []any{row.ID, 1, ev.At, ev.By, ev.Action, ev.From, ev.To, ev.Comment})
	}
	return controls, events, now
}

// ControlColumns and EventColumns are the columns of SeededControls' rows.
var (
	ControlColumns = []string{"id", "kind", "state", "project", "code", "created_at", "expires_at", "control"}
	EventColumns   = []string{"control_id", "seq", "at", "actor", "action", "from_state", "to_state", "comment"}
)
