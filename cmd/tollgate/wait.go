package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

// waitAtTheGate submits body as a gate job waiting up to wait, then
// follows it (GET /v1/jobs/{id}?wait=30s) until it ends, printing each
// change; each request is bounded by timeout. If ctx ends first (Ctrl-C),
// the job is cancelled.
func waitAtTheGate(ctx context.Context, c *cli, fail func(string, ...any) int, report func(checkResult) error,
	server, token, languages string, body []byte, wait, timeout time.Duration) int {
	var e map[string]json.RawMessage
	if err := json.Unmarshal(body, &e); err != nil {
		return fail("the request is not a JSON object: %v", err)
	}
	deadline := time.Now().Add(wait).UTC()
	e["wait_until"], _ = json.Marshal(deadline.Format(time.RFC3339))
	body, _ = json.Marshal(e)

	call := func(ctx context.Context, method, path string, body []byte) (tollgate.Job, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, server+path, bytes.NewReader(body))
		if err != nil {
			return tollgate.Job{}, err
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if languages != "" {
			req.Header.Set("Accept-Language", languages)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return tollgate.Job{}, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return tollgate.Job{}, err
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
				return tollgate.Job{}, fmt.Errorf("HTTP %d, %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
			}
			return tollgate.Job{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
		}
		var j tollgate.Job
		if err := json.Unmarshal(raw, &j); err != nil || j.ID == "" {
			return tollgate.Job{}, fmt.Errorf("the server answered something that is not a job: %s", strings.TrimSpace(string(raw)))
		}
		return j, nil
	}

	j, err := call(ctx, http.MethodPost, "/v1/jobs", body)
	if err != nil {
		return fail("no decision: %v", err)
	}
	fmt.Fprintf(c.stderr, "waiting at the gate until %s (job %s)\n", deadline.Format(time.RFC3339), j.ID)
	seen := -1
	for j.State.Open() {
		if len(j.Decisions) != seen && j.State == tollgate.JobWaiting {
			seen = len(j.Decisions)
			for _, r := range j.WaitingOn {
				fmt.Fprintf(c.stderr, "  waiting for %s: %s\n", r.Code, r.Message)
			}
			fmt.Fprintf(c.stderr, "  next check at %s\n", j.NextCheckAt.Format(time.RFC3339))
		}
		next, err := call(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%s?wait=30s&checks=%d", j.ID, len(j.Decisions)), nil)
		if ctx.Err() != nil {
			// Ctrl-C: the job must not go on deploying without us.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, err := call(cctx, http.MethodDelete, "/v1/jobs/"+j.ID, nil); err != nil {
				return fail("interrupted; the job %s could not be cancelled: %v", j.ID, err)
			}
			return fail("interrupted: job %s cancelled", j.ID)
		}
		if err != nil {
			return fail("no decision: job %s: %v", j.ID, err)
		}
		j = next
	}
	fmt.Fprintf(c.stdout, "%s: job %s for %s to %s after %d checks\n", j.State, j.ID, j.Repository, j.Environment, len(j.Decisions))
	for _, r := range j.Reasons {
		fmt.Fprintf(c.stdout, "  reason  %s: %s\n", r.Code, r.Message)
	}
	last := ""
	if len(j.Decisions) > 0 {
		last = j.Decisions[len(j.Decisions)-1]
		fmt.Fprintf(c.stdout, "  decision %s\n", last)
	}
	if err := report(checkResult{Status: string(j.State), DecisionID: last, JobID: j.ID, Reasons: j.Reasons}); err != nil {
		c.errorf("check", "%v", err)
		return exitError
	}
	if j.State != tollgate.JobAccepted {
		return exitNo
	}
	return exitOK
}
