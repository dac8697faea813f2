package test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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
		replica := a
		if i%2 == 1 {
			replica = b
		}
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
