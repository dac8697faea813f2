package tollgate_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// next_check_at has three states a worker must tell apart after a round
// trip through JSON (a recorded decision read back): absent (waiting cannot
// help), null (waiting, no known end) and a time.
func TestNextCheckRoundTrip(t *testing.T) {
	monday := time.Date(2026, 3, 30, 8, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	for _, tc := range []struct {
		name string
		next tollgate.NextCheck
		want string // in the JSON; "" for absent
	}{
		{"not waiting", tollgate.NextCheck{}, ""},
		{"waiting, no known end", tollgate.NextCheck{Waiting: true}, `"next_check_at":null`},
		{"waiting until a time", tollgate.NextCheck{Waiting: true, At: monday}, `"next_check_at":"2026-03-30T06:00:00Z"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tollgate.Decision{Status: tollgate.Refused, NextCheckAt: tc.next,
				ClearsAt: map[string]tollgate.ClearTime{tollgate.CodeFreezeActive: {}, tollgate.CodeCooldown: {Time: monday}}}
			data, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(data), "next_check_at"); got != (tc.want != "") || !strings.Contains(string(data), tc.want) {
				t.Fatalf("want %q in %s", tc.want, data)
			}
			if !strings.Contains(string(data), `"clears_at":{"cooldown":"2026-03-30T06:00:00Z","freeze_active":null}`) {
				t.Fatalf("clears_at: %s", data)
			}
			var back tollgate.Decision
			if err := tollgate.DecodeStrict(data, &back); err != nil {
				t.Fatal(err)
			}
			if back.NextCheckAt.Waiting != tc.next.Waiting || !back.NextCheckAt.At.Equal(tc.next.At) {
				t.Errorf("next_check_at read back as %+v, want %+v", back.NextCheckAt, tc.next)
			}
			if !back.ClearsAt[tollgate.CodeFreezeActive].IsZero() || !back.ClearsAt[tollgate.CodeCooldown].Equal(monday) {
				t.Errorf("clears_at read back as %v", back.ClearsAt)
			}
		})
	}
}

func TestClearTimeRejectsWhatIsNotATime(t *testing.T) {
	var d tollgate.Decision
	if err := json.Unmarshal([]byte(`{"next_check_at": "monday"}`), &d); err == nil {
		t.Fatal("next_check_at \"monday\" decoded")
	}
}
