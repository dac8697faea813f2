package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
	"github.com/tollgate/tollgate/adapters/storetest"
	"github.com/tollgate/tollgate/rego"
)

var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// fixture is a store, a worker on it with a clock the test moves, and the
// sink the test configures.
type fixture struct {
	t      *testing.T
	store  *sqlite.Store
	worker *Worker
	reg    *prometheus.Registry

	mu  sync.Mutex
	now time.Time
	cfg *rego.Notifications
}

func newFixture(t *testing.T, sinks ...rego.Sink) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, now: t0, reg: prometheus.NewRegistry(), cfg: &rego.Notifications{Sinks: sinks}}
	f.worker = &Worker{
		Store:   store,
		Config:  func() *rego.Notifications { f.mu.Lock(); defer f.mu.Unlock(); return f.cfg },
		Timeout: 2 * time.Second, Backoff: time.Second, MaxBackoff: time.Minute, MaxAttempts: 5,
		Now: func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now },
		LookupEnv: func(name string) (string, bool) {
			v, ok := map[string]string{"HOOK_SECRET": "s3cr3t"}[name]
			return v, ok
		},
		Metrics: NewMetrics(prometheus.NewRegistry()),
		random:  func(n int64) int64 { return n - 1 }, // no jitter: the longest wait
	}
	return f
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// refuse records a refused decision, the event every test sends.
func (f *fixture) refuse() tollgate.Record {
	f.t.Helper()
	rec := storetest.Record(tollgate.Refused, t0)
	if _, err := f.store.Decide(context.Background(), nil, storetest.Fixed(rec)); err != nil {
		f.t.Fatal(err)
	}
	return rec
}

func (f *fixture) deliveries() []tollgate.Delivery {
	f.t.Helper()
	ds, err := f.store.Deliveries(context.Background(), tollgate.DeliveryFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func (f *fixture) only() tollgate.Delivery {
	f.t.Helper()
	ds := f.deliveries()
	if len(ds) != 1 {
		f.t.Fatalf("%d deliveries, want 1: %+v", len(ds), ds)
	}
	return ds[0]
}

func webhook(url string, events ...string) rego.Sink {
	if len(events) == 0 {
		events = []string{tollgate.EventDecisionRefused}
	}
	return rego.Sink{Name: "hook", Type: rego.SinkWebhook, URL: url, SecretEnv: "HOOK_SECRET", Events: events}
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver answers with statuses in turn (the last one again and again)
// and keeps what it got.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	header   http.Header // added to every answer
	got      []request
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, header: http.Header{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.Header.Clone(), body})
		status := r.statuses[min(len(r.got), len(r.statuses))-1]
		for k, v := range r.header {
			w.Header()[k] = v
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// The receiver that checks the signature: the HMAC-SHA256 of the exact
// body with the secret from the environment, and the headers and fields
// the README documents.
func TestWebhookIsSigned(t *testing.T) {
	var (
		mu     sync.Mutex
		checks []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mac := strings.TrimPrefix(req.Header.Get(HeaderSignature), "sha256=")
		ok := hmac.Equal([]byte(mac), []byte(Sign([]byte("s3cr3t"), body)[len("sha256="):]))
		mu.Lock()
		checks = append(checks, req.Header.Get(HeaderEvent)+" "+map[bool]string{true: "signed", false: "forged"}[ok])
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var payload struct {
			Event      string            `json:"event"`
			ID         string            `json:"id"`
			OccurredAt time.Time         `json:"occurred_at"`
			Decision   tollgate.Decision `json:"decision"`
			Request    tollgate.Request  `json:"request"`
		}
		if err := json.Unmarshal(body, &payload); err != nil || payload.Event != tollgate.EventDecisionRefused ||
			payload.ID != "decision.refused:"+payload.Decision.ID || !payload.OccurredAt.Equal(t0) ||
			payload.Decision.Status != tollgate.Refused || payload.Request.Repository != "org/service-api" ||
			req.Header.Get(HeaderDelivery) == "" || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("payload %s (%v), headers %v", body, err, req.Header)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	f := newFixture(t, webhook(srv.URL))
	rec := f.refuse()
	if n := f.worker.Round(t.Context()); n != 1 {
		t.Fatalf("Round attempted %d, want 1", n)
	}
	d := f.only()
	if d.State != tollgate.DeliveryDelivered || d.Attempts != 1 || d.LastStatus != 204 || d.EventID != "decision.refused:"+rec.Decision.ID {
		t.Fatalf("delivery %+v", d)
	}
	if len(checks) != 1 || checks[0] != "decision.refused signed" {
		t.Fatalf("receiver saw %v", checks)
	}
	// The same receiver refuses a body signed with another secret.
	f.worker.LookupEnv = func(string) (string, bool) { return "not-the-secret", true }
	f.refuse()
	f.worker.Round(t.Context())
	if checks[1] != "decision.refused forged" {
		t.Fatalf("receiver saw %v", checks)
	}
	if got := testutil.ToFloat64(f.worker.Metrics.total.WithLabelValues("hook", ResultDelivered)); got != 1 {
		t.Errorf("delivered counter = %v", got)
	}
	if got := testutil.ToFloat64(f.worker.Metrics.total.WithLabelValues("hook", ResultFailed)); got != 1 {
		t.Errorf("failed counter = %v (a 401 fails at once)", got)
	}
}

// The receiver that fails: 500, 500, then 200. Each retry waits twice as
// long as the one before, the delivery ID is the same on every attempt,
// and every attempt is counted.
func TestFailingReceiverIsRetriedWithBackoff(t *testing.T) {
	r := newReceiver(t, 500, 503, 200)
	f := newFixture(t, webhook(r.URL))
	f.refuse()
	waits := []time.Duration{}
	for range 3 {
		if n := f.worker.Round(t.Context()); n != 1 {
			t.Fatalf("Round attempted %d, want 1", n)
		}
		d := f.only()
		if d.State == tollgate.DeliveryDelivered {
			break
		}
		wait := d.NextAttemptAt.Sub(f.worker.Now())
		waits = append(waits, wait)
		f.advance(wait - time.Nanosecond)
		if n := f.worker.Round(t.Context()); n != 0 {
			t.Fatalf("attempted %d before the retry was due", n)
		}
		f.advance(time.Nanosecond)
	}
	d := f.only()
	if d.State != tollgate.DeliveryDelivered || d.Attempts != 3 || d.LastStatus != 200 {
		t.Fatalf("delivery %+v", d)
	}
	if len(waits) != 2 || waits[0] != time.Second || waits[1] != 2*time.Second {
		t.Fatalf("waits %v, want 1s then 2s", waits)
	}
	got := r.requests()
	if len(got) != 3 || got[0].header.Get(HeaderDelivery) != d.ID || got[2].header.Get(HeaderDelivery) != d.ID || string(got[0].body) != string(got[2].body) {
		t.Fatalf("attempts did not carry the same delivery ID and body: %d requests", len(got))
	}
	if n := testutil.ToFloat64(f.worker.Metrics.total.WithLabelValues("hook", ResultRetried)); n != 2 {
		t.Errorf("retried counter = %v, want 2", n)
	}
}

// A 4xx other than 408 and 429 fails at once, recorded; 429 is retried
// after its Retry-After; an always failing sink fails after the last
// attempt.
func TestStatuses(t *testing.T) {
	t.Run("400 fails at once", func(t *testing.T) {
		r := newReceiver(t, 400)
		f := newFixture(t, webhook(r.URL))
		f.refuse()
		f.worker.Round(t.Context())
		f.advance(time.Hour)
		f.worker.Round(t.Context())
		d := f.only()
		if d.State != tollgate.DeliveryFailed || d.Attempts != 1 || d.LastStatus != 400 || !strings.Contains(d.LastError, "not retried") || len(r.requests()) != 1 {
			t.Fatalf("delivery %+v after %d requests", d, len(r.requests()))
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		r := newReceiver(t, 429, 200)
		r.header.Set("Retry-After", "120")
		f := newFixture(t, webhook(r.URL))
		f.refuse()
		f.worker.Round(t.Context())
		d := f.only()
		if d.State != tollgate.DeliveryPending || d.LastStatus != 429 || !d.NextAttemptAt.Equal(t0.Add(120*time.Second)) {
			t.Fatalf("delivery %+v, want a retry at +120s", d)
		}
	})
	t.Run("408 is retried", func(t *testing.T) {
		r := newReceiver(t, 408)
		f := newFixture(t, webhook(r.URL))
		f.refuse()
		f.worker.Round(t.Context())
		if d := f.only(); d.State != tollgate.DeliveryPending {
			t.Fatalf("delivery %+v", d)
		}
	})
	t.Run("last attempt", func(t *testing.T) {
		r := newReceiver(t, 502)
		f := newFixture(t, webhook(r.URL))
		f.worker.MaxAttempts = 3
		f.refuse()
		for range 3 {
			f.worker.Round(t.Context())
			f.advance(time.Hour)
		}
		d := f.only()
		if d.State != tollgate.DeliveryFailed || d.Attempts != 3 || !strings.HasPrefix(d.LastError, "after 3 attempts: 502") {
			t.Fatalf("delivery %+v", d)
		}
	})
	t.Run("a redirect fails", func(t *testing.T) {
		r := newReceiver(t, 302)
		r.header.Set("Location", "http://example.invalid/")
		f := newFixture(t, webhook(r.URL))
		f.refuse()
		f.worker.Round(t.Context())
		if d := f.only(); d.State != tollgate.DeliveryFailed || d.LastStatus != 302 {
			t.Fatalf("delivery %+v", d)
		}
	})
	t.Run("connection refused is retried", func(t *testing.T) {
		r := newReceiver(t, 200)
		url := r.URL
		r.Close()
		f := newFixture(t, webhook(url))
		f.refuse()
		f.worker.Round(t.Context())
		if d := f.only(); d.State != tollgate.DeliveryPending || d.LastStatus != 0 || d.LastError == "" || strings.Contains(d.LastError, url) {
			t.Fatalf("delivery %+v: want a retry, the error without the URL", d)
		}
	})
	t.Run("a sink removed fails", func(t *testing.T) {
		r := newReceiver(t, 200)
		f := newFixture(t, webhook(r.URL))
		f.refuse()
		f.worker.Round(t.Context()) // delivered
		f.refuse()
		if _, err := f.store.FanOut(t.Context(), t0, f.cfg.Route, 10); err != nil {
			t.Fatal(err)
		}
		f.cfg = &rego.Notifications{}
		f.worker.Round(t.Context())
		ds, _ := f.store.Deliveries(t.Context(), tollgate.DeliveryFilter{State: tollgate.DeliveryFailed})
		if len(ds) != 1 || !strings.Contains(ds[0].LastError, "no longer configured") {
			t.Fatalf("failed deliveries %+v", ds)
		}
	})
}

// The receiver that is slow: the attempt times out and is retried, and
// a decision recorded while the attempt hangs is not slowed by it.
func TestSlowReceiver(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	hanging := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		once.Do(func() { close(hanging) })
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	f := newFixture(t, webhook(srv.URL))
	f.worker.Timeout = 3 * time.Second
	f.refuse()
	done := make(chan int)
	go func() { done <- f.worker.Round(context.Background()) }()
	<-hanging
	start := time.Now()
	for range 20 {
		f.refuse()
	}
	took := time.Since(start)
	select {
	case <-done:
		t.Fatal("the attempt ended before the decisions were recorded: the test proves nothing")
	default:
	}
	if took > time.Second {
		t.Errorf("20 decisions took %s while a delivery hung", took)
	}
	<-done
	d := f.deliveries()
	var timedOut tollgate.Delivery
	for _, x := range d {
		if x.Attempts == 1 {
			timedOut = x
		}
	}
	if timedOut.State != tollgate.DeliveryPending || !strings.Contains(timedOut.LastError, "no answer within 3s") {
		t.Fatalf("the hung attempt: %+v", timedOut)
	}
}

// Secrets: a variable not set or a file missing is an error naming it,
// at the bundle's check as when sending; the value is read from a file.
func TestResolve(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	_, err := Resolve(rego.Sink{Name: "chat", Type: rego.SinkSlack, URLEnv: "SLACK_URL"}, none)
	if err == nil || !strings.Contains(err.Error(), "SLACK_URL") {
		t.Fatalf("Resolve without the variable: %v", err)
	}
	dir := t.TempDir()
	_, err = Resolve(rego.Sink{Name: "ops", Type: rego.SinkTeams, URLFile: dir + "/missing"}, none)
	if err == nil || !strings.Contains(err.Error(), dir+"/missing") {
		t.Fatalf("Resolve without the file: %v", err)
	}
	file := dir + "/url"
	if err := writeFile(file, "https://example.webhook.office.com/webhookb2/secret-token\n"); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(rego.Sink{Name: "ops", Type: rego.SinkTeams, URLFile: file}, none)
	if err != nil || got.URL != "https://example.webhook.office.com/webhookb2/secret-token" || got.Secret != nil {
		t.Fatalf("Resolve from a file = %+v, %v", got, err)
	}
	if err := writeFile(file, "not a url with secret-token"); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(rego.Sink{Name: "ops", Type: rego.SinkTeams, URLFile: file}, none); err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("Resolve of a bad URL: %v (must not repeat it)", err)
	}
	_, err = Resolve(rego.Sink{Name: "hook", Type: rego.SinkWebhook, URL: "https://h.example/x", SecretEnv: "HOOK_SECRET"}, none)
	if err == nil || !strings.Contains(err.Error(), "HOOK_SECRET") {
		t.Fatalf("Resolve without the secret: %v", err)
	}
}

// A worker that dies holding a delivery (claimed, perhaps sent) leaves it
// to the next once the lease runs out: sent again with the same
// X-Tollgate-Delivery, so that the receiver can tell the duplicate.
func TestDeliveryOfADeadWorkerIsSentAgainWithItsID(t *testing.T) {
	r := newReceiver(t, 200)
	f := newFixture(t, webhook(r.URL))
	f.refuse()
	if _, err := f.store.FanOut(t.Context(), t0, f.cfg.Route, 10); err != nil {
		t.Fatal(err)
	}
	dead, err := f.store.ClaimDeliveries(t.Context(), "dead-worker", t0, time.Minute, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("claim = %v, %v", dead, err)
	}
	if n := f.worker.Round(t.Context()); n != 0 {
		t.Fatalf("attempted %d deliveries leased to another worker", n)
	}
	f.advance(time.Minute)
	if n := f.worker.Round(t.Context()); n != 1 {
		t.Fatalf("attempted %d once the lease ran out, want 1", n)
	}
	got := r.requests()
	if len(got) != 1 || got[0].header.Get(HeaderDelivery) != dead[0].ID {
		t.Fatalf("sent %d, delivery header %q; want the dead worker's delivery %s", len(got), got[0].header.Get(HeaderDelivery), dead[0].ID)
	}
	if d := f.only(); d.State != tollgate.DeliveryDelivered || d.Attempts != 1 {
		t.Fatalf("delivery %+v", d)
	}
}

// Run drains a backlog without resting between full batches: 40 due
// deliveries go out at once, though the worker polls once an hour.
func TestRunDrainsABacklog(t *testing.T) {
	r := newReceiver(t, 200)
	f := newFixture(t, webhook(r.URL))
	f.worker.Poll, f.worker.Batch = time.Hour, 16
	for range 40 {
		f.refuse()
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- f.worker.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.requests()) < 40 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := len(r.requests()); n != 40 {
		t.Fatalf("%d of 40 delivered before the first rest ended", n)
	}
}

// The end of a job whose callback names github goes to the worker's
// github Callback: retried with the backoff while it says the failure may
// pass, failed at once when not, failed when no Callback delivers it.
func TestCallbackSinks(t *testing.T) {
	f := newFixture(t)
	var answers []error // what the callback answers, in turn; retry while the error says "retry"
	var calls int
	f.worker.Callbacks = map[string]Callback{"github": func(_ context.Context, d tollgate.Delivery) (bool, error) {
		calls++
		err := answers[0]
		answers = answers[1:]
		return err != nil && strings.Contains(err.Error(), "retry"), err
	}}
	endJob := func(state tollgate.JobState) tollgate.Delivery {
		t.Helper()
		j := tollgate.Job{ID: uuid.NewString(), IdempotencyKey: uuid.NewString(), Repository: "org/r", Pipeline: "p", Branch: "main",
			Environment: "production", Request: json.RawMessage(`{}`), CreatedAt: f.now, UpdatedAt: f.now, WaitUntil: f.now.Add(time.Hour),
			NextCheckAt: f.now, Callback: json.RawMessage(`{"github":{"url":"u","installation_id":1,"environment":"production","delivery":"d"}}`)}
		if _, _, err := f.store.SubmitJob(t.Context(), j, tollgate.JobBounds{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.UpdateJob(t.Context(), j.ID, "", func(j *tollgate.Job) error { j.State = state; return nil }); err != nil {
			t.Fatal(err)
		}
		f.worker.Round(t.Context())
		ds, err := f.store.Deliveries(t.Context(), tollgate.DeliveryFilter{Sink: "github", Event: tollgate.JobEvent(tollgate.JobQueued, state)})
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries to github: %v, %v", ds, err)
		}
		return ds[0]
	}

	answers = []error{errors.New("502: retry"), nil}
	d := endJob(tollgate.JobCancelled)
	if d.State != tollgate.DeliveryPending || d.Attempts != 1 || d.NextAttemptAt.Sub(f.now) != time.Second {
		t.Fatalf("after a retryable failure: %+v", d)
	}
	f.advance(time.Second)
	f.worker.Round(t.Context())
	if d := f.only(); d.State != tollgate.DeliveryDelivered || d.Attempts != 2 || calls != 2 {
		t.Fatalf("after the retry: %+v, %d calls", d, calls)
	}

	answers = []error{errors.New("422 Unprocessable Entity")}
	if d := endJob(tollgate.JobAccepted); d.State != tollgate.DeliveryFailed || !strings.Contains(d.LastError, "not retried") {
		t.Fatalf("after a final failure: %+v", d)
	}

	f.worker.Callbacks = nil
	if d := endJob(tollgate.JobExpired); d.State != tollgate.DeliveryFailed || !strings.Contains(d.LastError, "the github integration is off") {
		t.Fatalf("without a github Callback: %+v", d)
	}
}
