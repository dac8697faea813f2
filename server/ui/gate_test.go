package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// fakeControls serves the requested exceptions given, nothing in force.
type fakeControls struct {
	tollgate.ControlStore
	requested []tollgate.Control
}

func (f fakeControls) Controls(_ context.Context, cf tollgate.ControlFilter) ([]tollgate.Control, error) {
	return f.requested[:min(len(f.requested), cf.Limit)], nil
}

func (fakeControls) InForce(context.Context, time.Time) ([]tollgate.Control, error) { return nil, nil }

// fakeJobs serves perState open jobs of each state, at most a page, and
// open as their count.
type fakeJobs struct {
	tollgate.JobStore
	perState, open int
}

func (f fakeJobs) Jobs(_ context.Context, jf tollgate.JobFilter) ([]tollgate.Job, error) {
	jobs := make([]tollgate.Job, min(f.perState, jf.Limit))
	for i := range jobs {
		jobs[i] = tollgate.Job{ID: jf.Environment + string(jf.State) + strings.Repeat("x", i%3), State: jf.State}
	}
	return jobs, nil
}

func (f fakeJobs) JobStats(context.Context) (tollgate.JobStats, error) {
	return tollgate.JobStats{Open: map[tollgate.JobState]int{tollgate.JobWaiting: f.open}}, nil
}

// TestGateViewSaysWhenItDoesNotListAll: the jobs and the exceptions stop
// at the page size, and the page says so, never dropping them silently.
func TestGateViewSaysWhenItDoesNotListAll(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		perState, open, pending int
		moreJobs, moreRequested bool
	}{
		{"all listed", 3, 6, 4, false, false},
		{"more than a page", tollgate.MaxPageSize + 1, 2*tollgate.MaxPageSize + 2, tollgate.MaxPageSize + 1, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requested := make([]tollgate.Control, tc.pending)
			for i := range requested {
				requested[i] = tollgate.Control{ID: "e", Kind: tollgate.KindException, State: tollgate.StateRequested, ExpiresAt: testNow.Add(time.Hour)}
			}
			u := New(Config{Dev: true, Now: func() time.Time { return testNow }, Gate: &GateConfig{
				Gates:      func(context.Context) ([]rego.EnvironmentGate, error) { return nil, nil },
				Controls:   &rego.Controls{Store: fakeControls{requested: requested}},
				Jobs:       fakeJobs{perState: tc.perState, open: tc.open},
				CanApprove: func(*http.Request) bool { return false },
			}})
			rec := httptest.NewRecorder()
			if err := u.Gate(echo.New().NewContext(httptest.NewRequest(http.MethodGet, GatePath, nil), rec)); err != nil {
				t.Fatal(err)
			}
			body := rec.Body.String()
			if got := strings.Contains(body, `id="more-jobs"`); got != tc.moreJobs {
				t.Errorf("more jobs noted: %v, want %v", got, tc.moreJobs)
			}
			if tc.moreJobs && !strings.Contains(body, "1002 jobs are open; the newest 1000 are shown") {
				t.Errorf("the note does not count them:\n%s", body)
			}
			if got := strings.Contains(body, `id="more-exceptions"`); got != tc.moreRequested {
				t.Errorf("more exceptions noted: %v, want %v", got, tc.moreRequested)
			}
		})
	}
}
