package test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	jobInWait      = regexp.MustCompile(`job ([0-9a-f-]{36})`)
	decisionInWait = regexp.MustCompile(`(?m)^  decision ([0-9a-f-]{36})$`)
)

// TestCheckWaitsAtTheGate: `tollgate check --wait` on a request refused
// by a freeze that ends 5 seconds later waits at the gate, says what it
// waits for, and ends accepted, exit 0, its last check a recorded
// acceptance. A refusal time cannot clear ends at once, exit 1. The real
// binary, a real server.
func TestCheckWaitsAtTheGate(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	server := []string{"check", "--server", s.cliBase(t), "--wait", "2m"}
	flags := func(branch string) []string {
		return append(server, "--repository", "org/service-api", "--branch", branch, "--pipeline", "deploy-staging", "--environment", envStaging, "--run-id", branch)
	}

	code, raw := s.postJSON(t, "/v1/freezes", map[string]any{"reason": "database failover", "environments": []string{envStaging}, "ttl": "5s"})
	if code != http.StatusCreated {
		t.Fatalf("freeze: %d %s", code, raw)
	}
	start := time.Now()
	code, stdout, stderr := runTollgate(t, nil, nil, flags("main")...)
	took := time.Since(start)
	if code != 0 || !strings.HasPrefix(stdout, "accepted: job") || !strings.Contains(stderr, "waiting for freeze_active: ") ||
		!strings.Contains(stderr, "database failover") || !strings.Contains(stderr, "next check at ") {
		t.Fatalf("check --wait: exit %d, stdout %q, stderr %q; want 0, accepted, after waiting for the freeze", code, stdout, stderr)
	}
	if took < 3*time.Second {
		t.Fatalf("accepted after %s: the freeze was on for 5 s", took)
	}
	m := decisionInWait.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("check --wait does not print the decision: %q", stdout)
	}
	if rec := s.decisionByID(t, m[1]); rec.Status != "accepted" {
		t.Fatalf("the last check's decision is %s", rec.Status)
	}
	t.Logf("accepted after %s:\n%s%s", took.Round(time.Millisecond), stderr, stdout)

	code, stdout, stderr = runTollgate(t, nil, nil, flags("feature/x")...)
	if code != 1 || !strings.HasPrefix(stdout, "refused: job") || !strings.Contains(stdout, "branch_not_allowed") {
		t.Fatalf("check --wait, a branch not allowed: exit %d, stdout %q, stderr %q; want 1 and refused", code, stdout, stderr)
	}
	if jobInWait.FindString(stdout) == "" {
		t.Fatalf("no job id in %q", stdout)
	}
}

// TestCheckWaitCtrlCCancelsTheJob: Ctrl-C while `check --wait` waits
// cancels its job on the server, and check exits 2.
func TestCheckWaitCtrlCCancelsTheJob(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	code, raw := s.postJSON(t, "/v1/freezes", map[string]any{"reason": "maintenance", "environments": []string{envStaging}, "ttl": "1h"})
	if code != http.StatusCreated {
		t.Fatalf("freeze: %d %s", code, raw)
	}
	cmd := exec.Command(binPath, "check", "--server", s.base, "--wait", "30m", "--repository", "org/service-api",
		"--branch", "main", "--pipeline", "deploy-staging", "--environment", envStaging, "--run-id", "ctrl-c")
	cmd.Env = cleanEnv()
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "check waits for the freeze", func() bool { return strings.Contains(stderr.String(), "waiting for freeze_active") })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(stderr.String(), "cancelled") {
		t.Fatalf("after Ctrl-C: %v, stderr %q; want exit 2 saying the job was cancelled", err, stderr.String())
	}
	id := jobInWait.FindStringSubmatch(stderr.String())[1]
	code, raw = s.get(t, "/v1/jobs/"+id)
	if j := decode[map[string]any](t, raw); code != http.StatusOK || j["state"] != "cancelled" {
		t.Fatalf("the job after Ctrl-C: %d %s", code, raw)
	}
}

// TestWaitingJobSurvivesKill9: a job waiting at the gate is in the store,
// not in the server: after `kill -9` of the server, the next one on the
// same data carries it on, and lifting the freeze it waits for there
// accepts it.
func TestWaitingJobSurvivesKill9(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	bundle := newBundle(t)
	s := startServer(t, serverOptions{bundle: bundle, dataDir: dataDir})
	code, raw := s.postJSON(t, "/v1/freezes", map[string]any{"reason": "maintenance", "environments": []string{envStaging}, "ttl": "1h"})
	if code != http.StatusCreated {
		t.Fatalf("freeze: %d %s", code, raw)
	}
	freeze := decode[map[string]any](t, raw)["id"].(string)
	body := map[string]any{"repository": "org/service-api", "branch": "main", "pipeline": "deploy-staging",
		"metadata":   map[string]string{"run_id": "kill-9", "environment": envStaging},
		"wait_until": time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)}
	code, raw = s.postJSON(t, "/v1/jobs", body)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %s", code, raw)
	}
	id := decode[map[string]any](t, raw)["job_id"].(string)
	eventually(t, 30*time.Second, "the job waits for the freeze", func() bool {
		_, raw := s.get(t, "/v1/jobs/"+id)
		return decode[map[string]any](t, raw)["state"] == "waiting"
	})
	if err := s.cmd.Process.Kill(); err != nil { // kill -9
		t.Fatal(err)
	}
	<-s.done

	s = startServer(t, serverOptions{bundle: bundle, dataDir: dataDir})
	if code, raw := s.do(t, http.MethodDelete, "/v1/freezes/"+freeze, "application/json", []byte(`{}`)); code != http.StatusOK {
		t.Fatalf("lift the freeze: %d %s", code, raw)
	}
	eventually(t, 30*time.Second, "the next server accepts the job", func() bool {
		_, raw := s.get(t, "/v1/jobs/"+id)
		return decode[map[string]any](t, raw)["state"] == "accepted"
	})
	_, raw = s.get(t, "/v1/jobs/"+id)
	if j := decode[map[string]any](t, raw); len(j["decisions"].([]any)) != 2 {
		t.Fatalf("the job after the restart: %v, want two checks (refused by the freeze, then accepted)", j)
	}
}
