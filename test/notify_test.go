package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/adapters/pgtest"
)

// hmacReceiver is a webhook receiver that checks every body's signature
// and keeps, per delivery ID, the event and how often it was delivered.
type hmacReceiver struct {
	t      *testing.T
	secret []byte

	mu        sync.Mutex
	delivered map[string]int    // X-Tollgate-Delivery → 200s answered
	events    map[string]string // X-Tollgate-Delivery → the body's id
	forged    int
}

func (r *hmacReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	mac := hmac.New(sha256.New, r.secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	var payload struct {
		Event string `json:"event"`
		ID    string `json:"id"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !hmac.Equal([]byte(req.Header.Get("X-Tollgate-Signature")), []byte(want)) || json.Unmarshal(body, &payload) != nil ||
		payload.Event != req.Header.Get("X-Tollgate-Event") {
		r.forged++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("X-Tollgate-Delivery")
	if prev, ok := r.events[id]; ok && prev != payload.ID {
		r.t.Errorf("delivery %s carried event %s, then %s", id, prev, payload.ID)
	}
	r.events[id] = payload.ID
	r.delivered[id]++
	w.WriteHeader(http.StatusOK)
}

func (r *hmacReceiver) counts() (deliveries int, events map[string]int, twice []string, forged int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	events = map[string]int{}
	for id, n := range r.delivered {
		events[r.events[id]]++
		if n > 1 {
			twice = append(twice, id)
		}
	}
	return len(r.delivered), events, twice, r.forged
}

type notification struct {
	ID       string `json:"id"`
	EventID  string `json:"event_id"`
	Event    string `json:"event"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Status   int    `json:"last_status"`
	Error    string `json:"last_error"`
}

func (s *server) notifications(t *testing.T) []notification {
	t.Helper()
	status, raw := s.get(t, "/v1/notifications?limit=500")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/notifications: %d %s", status, raw)
	}
	return decode[struct {
		Notifications []notification `json:"notifications"`
	}](t, raw).Notifications
}

// TestNotificationsSurviveKill9: events of decisions and controls whose
// receiver is down wait in the store, retried; the server is killed -9
// (some events committed a moment before, not even fanned out yet); the
// restarted server, its receiver up, delivers every one, signed, each once.
// The real binary, a real server, a real receiver.
func TestNotificationsSurviveKill9(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); notificationsSurviveKill9(t, nil) })
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		notificationsSurviveKill9(t, []string{"--database-url", pgtest.Start(t).NewDatabase(t)})
	})
}

func notificationsSurviveKill9(t *testing.T, store []string) {
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte("e2e-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t) // nothing listens there yet: the receiver is down
	bundle := newBundle(t)
	policy := globalPolicy(time.Now())
	policy["notifications"] = map[string]any{"sinks": []any{map[string]any{
		"name": "audit", "type": "webhook", "url": "http://" + addr + "/hook", "secret_file": secretFile,
		"events": []string{"decision.refused", "freeze.started", "freeze.ended"},
	}}}
	writeJSON(t, filepath.Join(bundle, "config", "global_policy", "data.json"), policy)
	dataDir := t.TempDir()
	flags := append([]string{"--notify-backoff", "200ms", "--notify-timeout", "2s", "--notify-max-attempts", "1000"}, store...)
	s := startServer(t, serverOptions{bundle: bundle, dataDir: dataDir, args: flags})

	refuse := func(s *server) {
		if d := s.evaluate(t, req("org/service-api", "feature/x", "deploy-prod", envProduction)); d.Status != "refused" {
			t.Fatalf("a branch not allowed: %s", d.Status)
		}
	}
	freeze := func(s *server) {
		if code, raw := s.postJSON(t, "/v1/freezes", map[string]any{"reason": "e2e", "environments": []string{envStaging}, "ttl": "1h"}); code != http.StatusCreated {
			t.Fatalf("freeze: %d %s", code, raw)
		}
	}
	for range 5 {
		refuse(s)
	}
	freeze(s)
	eventually(t, 30*time.Second, "six deliveries tried while the receiver is down", func() bool {
		ns := s.notifications(t)
		tried := 0
		for _, n := range ns {
			if n.State == "pending" && n.Attempts >= 1 && n.Status == 0 && n.Error != "" {
				tried++
			}
		}
		return len(ns) == 6 && tried == 6
	})
	// Committed, answered, and the process dies at once: these are not
	// even fanned out (the worker looks once a second).
	refuse(s)
	freeze(s)
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done

	recv := &hmacReceiver{t: t, secret: []byte("e2e-secret"), delivered: map[string]int{}, events: map[string]string{}}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the receiver cannot take %s back: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(recv)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	defer srv.Close()

	s2 := startServer(t, serverOptions{bundle: bundle, dataDir: dataDir, args: flags})
	eventually(t, 60*time.Second, "every notification delivered after the restart", func() bool {
		ns := s2.notifications(t)
		delivered := 0
		for _, n := range ns {
			if n.State == "delivered" {
				delivered++
			}
		}
		return len(ns) == 8 && delivered == 8
	})
	deliveries, events, twice, forged := recv.counts()
	if deliveries != 8 || len(events) != 8 || len(twice) != 0 || forged != 0 {
		t.Fatalf("the receiver got %d deliveries of %d events (%v), twice: %v, forged: %d; want 8 of 8, each once",
			deliveries, len(events), events, twice, forged)
	}
	kinds := map[string]int{}
	for _, n := range s2.notifications(t) {
		kinds[n.Event]++
	}
	if kinds["decision.refused"] != 6 || kinds["freeze.started"] != 2 {
		t.Fatalf("delivered events %v, want 6 refusals and 2 freezes", kinds)
	}
	if got := s2.metrics(t)[`tollgate_notifications_total{result="delivered",sink="audit"}`]; got != 8 {
		t.Errorf("tollgate_notifications_total delivered = %v, want 8", got)
	}
}

// withSlackSink writes a bundle whose notifications send to Slack through
// the URL in the environment variable env.
func withSlackSink(t *testing.T, bundle, env string) {
	t.Helper()
	policy := globalPolicy(time.Now())
	policy["notifications"] = map[string]any{"sinks": []any{map[string]any{
		"name": "releases", "type": "slack", "url_env": env, "events": []string{"job.accepted"},
	}}}
	writeJSON(t, filepath.Join(bundle, "config", "global_policy", "data.json"), policy)
}

// TestNotificationSecretsMissing: a sink whose URL variable is not set
// stops serve at start, naming it, and a reload to such a bundle is
// refused while the active bundle keeps serving.
func TestNotificationSecretsMissing(t *testing.T) {
	t.Parallel()
	bundle := newBundle(t)
	withSlackSink(t, bundle, "E2E_SLACK_URL_NOT_SET")
	code, _, stderr := runTollgate(t, nil, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--license", validLicence,
		"--license-key", publicKey, "--bundle", bundle, "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "E2E_SLACK_URL_NOT_SET") || !strings.Contains(stderr, "is not set") {
		t.Fatalf("serve with a sink's variable missing: exit %d, stderr %s", code, stderr)
	}

	s := startServer(t, serverOptions{})
	before := s.bundleStatus(t)
	withSlackSink(t, s.bundle, "E2E_SLACK_URL_NOT_SET")
	eventually(t, 60*time.Second, "the reload refused", func() bool {
		return strings.Contains(s.bundleStatus(t).LastError, "E2E_SLACK_URL_NOT_SET")
	})
	if after := s.bundleStatus(t); after.Revision != before.Revision {
		t.Fatalf("a bundle whose sink cannot be sent to was activated: %s", after.Revision)
	}
	// A literal Slack URL in the bundle is refused at load, as bad configuration.
	policy := globalPolicy(time.Now())
	policy["notifications"] = map[string]any{"sinks": []any{map[string]any{
		"name": "releases", "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XXXX", "events": []string{"job.accepted"},
	}}}
	writeJSON(t, filepath.Join(s.bundle, "config", "global_policy", "data.json"), policy)
	eventually(t, 60*time.Second, "the literal URL refused", func() bool {
		return strings.Contains(s.bundleStatus(t).LastError, "notifications.sinks[0].url")
	})
}
