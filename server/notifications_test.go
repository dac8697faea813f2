package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// GET /v1/notifications lists the outbox's deliveries, filtered; a filter
// it cannot read is a 400, never an unfiltered list.
func TestListNotifications(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.Dev = true; c.Notifications = c.Store.(tollgate.Outbox) })
	code, d := f.post("/v1/evaluate", strings.Replace(exampleRequest, `"main"`, `"develop"`, 1))
	if code != http.StatusOK || d["status"] != "refused" {
		t.Fatalf("evaluate = %d %v", code, d)
	}
	route := func(string) []string { return []string{"hook", "chat"} }
	if n, err := f.store.FanOut(t.Context(), *f.now.Load(), route, 10); err != nil || n != 2 {
		t.Fatalf("FanOut = %d, %v", n, err)
	}
	for query, want := range map[string]int{
		"": 2, "?state=pending": 2, "?state=delivered": 0, "?sink=hook": 1, "?event=decision.refused&sink=chat&limit=1": 1,
		"?event=job.accepted": 0,
	} {
		code, body := f.do(http.MethodGet, "/v1/notifications"+query, "", "")
		list, _ := body["notifications"].([]any)
		if code != http.StatusOK || len(list) != want {
			t.Errorf("GET /v1/notifications%s = %d, %d deliveries; want %d", query, code, len(list), want)
			continue
		}
		for _, item := range list {
			n := item.(map[string]any)
			if n["event_id"] != "decision.refused:"+d["decision_id"].(string) || n["attempts"] != 0.0 || n["state"] != "pending" ||
				n["last_status"] != 0.0 || n["next_attempt_at"] == nil {
				t.Errorf("delivery %v", n)
			}
		}
	}
	for _, query := range []string{"?state=sent", "?event=decision.accepted", "?sink=a%0Ab", "?limit=-1", "?status=pending"} {
		if code, body := f.do(http.MethodGet, "/v1/notifications"+query, "", ""); code != http.StatusBadRequest {
			t.Errorf("GET /v1/notifications%s = %d %v, want 400", query, code, body)
		}
	}
}

func TestListNotificationsOff(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.do(http.MethodGet, "/v1/notifications", "", ""); code != http.StatusNotFound {
		t.Fatalf("GET /v1/notifications without an outbox = %d, want 404", code)
	}
}
