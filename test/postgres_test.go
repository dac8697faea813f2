package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/adapters/pgtest"
)

// These tests run `tollgate serve --database-url` against a real PostgreSQL
// started by pgtest (never skipped: .ci/run installs PostgreSQL).

// TestPostgresReplicasShareCooldown: two replicas on one database receive
// simultaneous requests for one project + pipeline + branch: exactly one is
// accepted, and both see the whole history.
func TestPostgresReplicasShareCooldown(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t).NewDatabase(t)
	bundle := newBundle(t)
	a := startServer(t, serverOptions{bundle: bundle, args: []string{"--database-url", url}})
	b := startServer(t, serverOptions{bundle: bundle, args: []string{"--database-url", url}})

	const n = 30
	body := mustJSON(t, req("org/service-api", "main", "deploy-prod", "production"))
	var wg sync.WaitGroup
	statuses := make(chan string, n)
	for i := range n {
		replica := []*server{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw := replica.do(t, http.MethodPost, "/v1/evaluate", "application/json", body)
			if code != http.StatusOK {
				t.Errorf("evaluate: %d %s", code, raw)
				return
			}
			var d decision
			json.Unmarshal(raw, &d)
			statuses <- d.Status
		}()
	}
	wg.Wait()
	close(statuses)
	accepted := 0
	for s := range statuses {
		if s == "accepted" {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d accepted across two replicas, want exactly 1", accepted)
	}
	for _, replica := range []*server{a, b} {
		if got := len(replica.allDecisions(t, "")); got != n {
			t.Errorf("replica %s sees %d decisions, want %d", replica.base, got, n)
		}
	}
}

// TestPostgresUnreachableAtStart: serve starts anyway, answers 503 (never a
// decision) and /readyz 503 until the database comes up, then serves.
func TestPostgresUnreachableAtStart(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	pg.Stop(t)

	s := startServer(t, serverOptions{args: []string{"--database-url", url}, noWait: true})
	body := mustJSON(t, req("org/service-api", "main", "deploy-staging", "staging"))
	for range 3 {
		if code, raw := s.get(t, "/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("readyz with the database down: %d %s", code, raw)
		}
		code, raw := s.do(t, http.MethodPost, "/v1/evaluate", "application/json", body)
		requireError(t, code, raw, http.StatusServiceUnavailable, "unavailable", "not connected")
		time.Sleep(100 * time.Millisecond)
	}

	pg.Restart(t)
	took := eventually(t, 15*time.Second, "readyz after the database came up", func() bool {
		code, _ := s.get(t, "/readyz")
		return code == http.StatusOK
	})
	t.Logf("ready %v after the database came up", took.Round(time.Millisecond))
	if d := s.evaluate(t, req("org/service-api", "main", "deploy-staging", "staging")); d.Status != "accepted" {
		t.Fatalf("evaluate once connected: %+v", d)
	}
}

// TestPostgresLostWhileServing: evaluate answers 503 while the database is
// gone (fail closed, nothing half-written), and resumes by itself.
func TestPostgresLostWhileServing(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	s := startServer(t, serverOptions{args: []string{"--database-url", url}})
	body := mustJSON(t, req("org/service-api", "main", "deploy-staging", "staging"))
	if d := s.evaluate(t, req("org/service-api", "main", "deploy-staging", "staging")); d.Status != "accepted" {
		t.Fatalf("evaluate: %+v", d)
	}

	pg.Kill(t)
	start := time.Now()
	code, raw := s.do(t, http.MethodPost, "/v1/evaluate", "application/json", body)
	requireError(t, code, raw, http.StatusServiceUnavailable, "unavailable", "")
	t.Logf("503 after %v with the database killed", time.Since(start).Round(time.Millisecond))
	if code, _ := s.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database killed: %d", code)
	}

	pg.Restart(t)
	took := eventually(t, 20*time.Second, "evaluate after the database came back", func() bool {
		code, _ := s.do(t, http.MethodPost, "/v1/evaluate", "application/json", body)
		return code == http.StatusOK
	})
	t.Logf("serving again %v after the restart", took.Round(time.Millisecond))
	// Only the acknowledged decisions are in the history: the first and the last.
	if got := len(s.allDecisions(t, "")); got != 2 {
		t.Fatalf("%d decisions recorded, want 2 (the refused-with-503 requests must not be recorded)", got)
	}
}

// TestPostgresBadURLStopsServe: what waiting cannot fix stops serve with a
// message, instead of answering 503 forever.
func TestPostgresBadURLStopsServe(t *testing.T) {
	t.Parallel()
	code, _, stderr := runTollgate(t, cleanEnv(), nil, "serve", "--addr", "127.0.0.1:0",
		"--license", validLicence, "--license-key", publicKey, "--bundle", newBundle(t),
		"--database-url", "postgres://tollgate@127.0.0.1:1/x?sslmode=bogus")
	if code != 2 || !strings.Contains(stderr, "the decision store cannot be opened") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// workerName is the name a server's job worker leases jobs under, as serve
// logs it.
var workerName = regexp.MustCompile(`job_worker=(\S+)`)

// TestPostgresReplicasShareJobs: two replicas on one PostgreSQL share 200
// gate jobs. The jobs first wait for an emergency freeze; lifting it makes
// them all due at once, and one replica is stopped while it holds jobs it
// claimed (SIGSTOP, then kill -9): the other takes them over when their
// lease runs out. Every job ends accepted after two checks, and the history
// holds exactly those decisions: no check was decided twice, none lost.
func TestPostgresReplicasShareJobs(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t).NewDatabase(t)
	bundle := newBundle(t)
	global := globalPolicy(time.Now())
	global["jobs"] = map[string]any{"max_open_per_repository": 1000}
	writeJSON(t, filepath.Join(bundle, "config", "global_policy", "data.json"), global)
	args := []string{"--database-url", url, "--job-lease", "3s"}
	a := startServer(t, serverOptions{bundle: bundle, args: args})
	b := startServer(t, serverOptions{bundle: bundle, args: args})
	m := workerName.FindStringSubmatch(a.stderr.String())
	if m == nil {
		t.Fatalf("serve did not log its job worker's name:\n%s", a.stderr.String())
	}
	workerA := m[1]
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	count := func(query string, args ...any) (n int) {
		t.Helper()
		if err := conn.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	code, raw := a.postJSON(t, "/v1/freezes", map[string]any{"reason": "failover", "environments": []string{envStaging}, "ttl": "1h"})
	if code != http.StatusCreated {
		t.Fatalf("freeze: %d %s", code, raw)
	}
	freeze := decode[map[string]any](t, raw)["id"].(string)
	// 200 jobs, each its own queue (branch), submitted to both replicas.
	const n = 200
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		replica := []*server{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw := replica.postJSON(t, "/v1/jobs", map[string]any{"repository": "org/service-api",
				"branch": fmt.Sprintf("release/%d", i), "pipeline": "deploy-staging",
				"metadata":   map[string]string{"run_id": fmt.Sprint(i), "environment": envStaging},
				"wait_until": time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)})
			if code != http.StatusAccepted {
				t.Errorf("POST /v1/jobs: %d %s", code, raw)
				return
			}
			ids[i] = decode[map[string]any](t, raw)["job_id"].(string)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	eventually(t, 60*time.Second, "every job waits for the freeze", func() bool {
		return count(`SELECT count(*) FROM jobs WHERE state = 'waiting'`) == n
	})
	// Both replicas took part in these first checks.
	waitingA, waitingB := a.metrics(t)[`tollgate_job_checks_total{state="waiting"}`], b.metrics(t)[`tollgate_job_checks_total{state="waiting"}`]
	if waitingA == 0 || waitingB == 0 || waitingA+waitingB != n {
		t.Errorf("replicas a and b checked %v and %v of the %d jobs; want both some, once each", waitingA, waitingB, n)
	}
	if code, raw := a.do(t, http.MethodDelete, "/v1/freezes/"+freeze, "application/json", []byte(`{}`)); code != http.StatusOK {
		t.Fatalf("lift the freeze: %d %s", code, raw)
	}

	// Stop a while it holds jobs: those leased to it, open, at that moment
	// are the ones it dies in the middle of.
	held := 0
	for try := 0; held == 0; try++ {
		if try == 5000 {
			t.Fatal("never caught replica a holding a job")
		}
		if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if held = count(`SELECT count(*) FROM jobs WHERE lease_owner = $1 AND state IN ('queued', 'waiting')`, workerA); held == 0 {
			a.cmd.Process.Signal(syscall.SIGCONT)
			time.Sleep(time.Millisecond)
		}
	}
	if err := a.cmd.Process.Kill(); err != nil { // kill -9, still stopped
		t.Fatal(err)
	}
	<-a.done
	t.Logf("replica a killed holding %d jobs", held)

	eventually(t, 60*time.Second, "every job ends", func() bool {
		return count(`SELECT count(*) FROM jobs WHERE state IN ('queued', 'waiting')`) == 0
	})
	decided := map[string]bool{}
	for _, id := range ids {
		_, raw := b.get(t, "/v1/jobs/"+id)
		j := decode[map[string]any](t, raw)
		decisions, _ := j["decisions"].([]any)
		if j["state"] != "accepted" || len(decisions) != 2 {
			t.Errorf("job %s: state %v, decisions %v; want accepted at its second check", id, j["state"], decisions)
			continue
		}
		for _, d := range decisions {
			decided[d.(string)] = true
		}
	}
	history := b.allDecisions(t, "")
	if len(history) != 2*n || len(decided) != 2*n {
		t.Errorf("%d decisions recorded, %d distinct ones named by the jobs; want %d each: two per job", len(history), len(decided), 2*n)
	}
	for _, d := range history {
		if !decided[d.ID] {
			t.Errorf("decision %s is no job's", d.ID)
		}
	}
	if code, out, errOut := runTollgate(t, cleanEnv(), nil, "ledger", "verify", "--database-url", url); code != 0 {
		t.Errorf("ledger verify: exit %d\n%s%s", code, out, errOut)
	}
}
