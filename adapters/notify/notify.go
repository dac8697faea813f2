// Package notify delivers tollgate's notifications: the deliveries of the
// outbox (tollgate.Outbox) to the sinks of global_policy.notifications (a
// signed JSON webhook, a Slack or a Teams incoming webhook), at least
// once, with retries and exponential backoff, each attempt recorded.
//
// It runs beside the requests, never in their way: a decision or a job
// check writes its event in its own transaction (or none at all, for a
// refusal, which the worker finds in the ledger) and never waits for a
// sink. Every `serve` runs a Worker; replicas share the deliveries under
// leases.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// Headers of a webhook delivery.
const (
	HeaderSignature = "X-Tollgate-Signature" // "sha256=" and the hex HMAC-SHA256 of the body
	HeaderEvent     = "X-Tollgate-Event"
	HeaderDelivery  = "X-Tollgate-Delivery" // the same on every attempt: receivers de-duplicate on it
)

// Target is a sink with its URL and secret read from where it names them.
type Target struct {
	rego.Sink
	URL    string
	Secret []byte // webhooks only
}

// Resolve reads the URL and the secret sink names, from the environment
// (lookupEnv) or a file. A variable not set, a file that cannot be read
// or an empty value is an error that says which; the values themselves are
// never in an error.
func Resolve(sink rego.Sink, lookupEnv func(string) (string, bool)) (Target, error) {
	read := func(what, env, file string) (string, error) {
		switch {
		case env != "":
			v, ok := lookupEnv(env)
			if !ok || strings.TrimSpace(v) == "" {
				return "", fmt.Errorf("notification sink %q: environment variable %s, which holds its %s, is not set", sink.Name, env, what)
			}
			return strings.TrimSpace(v), nil
		case file != "":
			data, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("notification sink %q: its %s: %v", sink.Name, what, err)
			}
			if strings.TrimSpace(string(data)) == "" {
				return "", fmt.Errorf("notification sink %q: its %s file %s is empty", sink.Name, what, file)
			}
			return strings.TrimSpace(string(data)), nil
		}
		return "", nil
	}
	t := Target{Sink: sink, URL: sink.URL}
	if t.URL == "" {
		u, err := read("URL", sink.URLEnv, sink.URLFile)
		if err != nil {
			return Target{}, err
		}
		if err := rego.CheckSinkURL(u); err != nil {
			return Target{}, fmt.Errorf("notification sink %q: the URL in %s%s: %v", sink.Name, sink.URLEnv, sink.URLFile, err)
		}
		t.URL = u
	}
	if sink.Type == rego.SinkWebhook {
		secret, err := read("HMAC secret", sink.SecretEnv, sink.SecretFile)
		if err != nil {
			return Target{}, err
		}
		t.Secret = []byte(secret)
	}
	return t, nil
}

// CheckBundle resolves every sink of b's notifications: the engine's
// Check (rego.EngineOptions), so that serve does not start, and a reload
// is not activated, with a sink tollgate cannot send to.
func CheckBundle(lookupEnv func(string) (string, bool)) func(*rego.Bundle) error {
	return func(b *rego.Bundle) error {
		n := b.Config.GlobalPolicy.Notifications
		if n == nil {
			return nil
		}
		for _, s := range n.Sinks {
			if _, err := Resolve(s, lookupEnv); err != nil {
				return fmt.Errorf("global_policy.notifications: %w", err)
			}
		}
		return nil
	}
}

// Sign is the X-Tollgate-Signature of body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Metrics are the worker's: deliveries by sink and result, and the
// pending ones by sink.
type Metrics struct {
	total   *prometheus.CounterVec
	pending *prometheus.GaugeVec
}

// Results counted in tollgate_notifications_total.
const (
	ResultDelivered = "delivered"
	ResultFailed    = "failed"  // ended failed: refused by the sink, or its last attempt
	ResultRetried   = "retried" // an attempt failed, another is due
)

// NewMetrics registers the worker's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_notifications_total",
			Help: "Notification delivery attempts by sink and result: delivered, failed (for good), retried.",
		}, []string{"sink", "result"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_notifications_pending",
			Help: "Notification deliveries not yet delivered nor failed, by sink, in the whole store.",
		}, []string{"sink"}),
	}
	reg.MustRegister(m.total, m.pending)
	return m
}

// Worker delivers the outbox. Zero fields take their defaults.
type Worker struct {
	Store tollgate.Outbox
	// Config is the active bundle's notifications, nil for none: events
	// are routed, and sinks resolved, by the configuration of the time.
	Config func() *rego.Notifications

	Timeout     time.Duration // of one attempt; 10 s
	MaxAttempts int           // then the delivery fails; 8
	// Backoff is the wait before the first retry, doubled after each
	// attempt up to MaxBackoff; each wait is drawn between half and all of
	// it (jitter), so that a sink that comes back is not hit by every
	// retry at once. A Retry-After longer than the wait is honoured, up to
	// a day. 10 s and 1 h.
	Backoff, MaxBackoff time.Duration
	Retention           time.Duration // ended deliveries are pruned after; 7 days
	Lease               time.Duration // a claimed delivery's; 3 × Timeout + 30 s
	Poll                time.Duration // how often an idle worker looks; 1 s
	Batch               int           // deliveries claimed, and sent at once, per round; 16
	Owner               string        // in leases; a random ID when ""

	// Callbacks deliver the built-in sinks (tollgate.CallbackSinks), by
	// name: a GitHub deployment's review. A delivery to one not here fails.
	Callbacks map[string]Callback

	Client    *http.Client                // nil: one that follows no redirect
	LookupEnv func(string) (string, bool) // nil: os.LookupEnv
	Now       func() time.Time            // nil: time.Now
	Logger    *slog.Logger                // nil: slog.Default()
	Metrics   *Metrics                    // nil: none
	random    func(n int64) int64         // jitter; rand.Int64N
	pruned    time.Time
	failing   bool // the store failed last round: said once, not every second
}

func (w *Worker) defaults() {
	if w.Timeout <= 0 {
		w.Timeout = 10 * time.Second
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = 8
	}
	if w.Backoff <= 0 {
		w.Backoff = 10 * time.Second
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = time.Hour
	}
	if w.Retention <= 0 {
		w.Retention = 7 * 24 * time.Hour
	}
	if w.Lease <= 0 {
		w.Lease = 3*w.Timeout + 30*time.Second
	}
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	if w.Batch <= 0 {
		w.Batch = 16
	}
	if w.Owner == "" {
		w.Owner = "notify-" + uuid.NewString()
	}
	if w.Client == nil {
		// A sink that redirects is misconfigured: a POST is not replayed
		// elsewhere (Go would turn it into a GET), the 3xx fails it.
		w.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if w.LookupEnv == nil {
		w.LookupEnv = os.LookupEnv
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.random == nil {
		w.random = rand.Int64N
	}
	if w.Config == nil {
		w.Config = func() *rego.Notifications { return nil }
	}
}

// Run delivers until ctx ends; it returns nil then. It rests Poll between
// rounds, but for a round that found a full batch due (a backlog). A
// failing store is logged and tried again next round: notifications never
// stop the server.
func (w *Worker) Run(ctx context.Context) error {
	w.defaults()
	for {
		if w.Round(ctx) == w.Batch && ctx.Err() == nil {
			continue // a backlog: the next batch at once
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.Poll):
		}
	}
}

// Round is one round of the worker: notice expiring exceptions, fan out
// new events, send the due deliveries (at once, each under its own
// timeout), count the backlog, prune once an hour. It returns how many
// deliveries it attempted.
func (w *Worker) Round(ctx context.Context) int {
	w.defaults()
	now := w.Now()
	cfg := w.Config()
	var failed error
	if len(cfg.Route(tollgate.EventExceptionExpiring)) > 0 {
		hours := rego.DefaultExceptionExpiringHours
		if cfg.ExceptionExpiringHours > 0 {
			hours = cfg.ExceptionExpiringHours
		}
		if _, err := w.Store.NoticeExpiring(ctx, now, time.Duration(hours)*time.Hour); err != nil {
			failed = fmt.Errorf("look for expiring exceptions: %w", err)
		}
	}
	if _, err := w.Store.FanOut(ctx, now, cfg.Route, 100); err != nil {
		failed = fmt.Errorf("fan out new events: %w", err)
	}
	due, err := w.Store.ClaimDeliveries(ctx, w.Owner, now, w.Lease, w.Batch)
	if err != nil {
		failed = fmt.Errorf("claim deliveries: %w", err)
	}
	switch {
	case failed != nil && !w.failing && ctx.Err() == nil:
		w.Logger.Warn("notifications: the store fails; trying again every round", "error", failed)
	case failed == nil && w.failing:
		w.Logger.Info("notifications: the store answers again")
	}
	w.failing = failed != nil
	var wg sync.WaitGroup
	for _, d := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.deliver(ctx, cfg, d)
		}()
	}
	wg.Wait()
	if w.Metrics != nil {
		if pending, err := w.Store.PendingDeliveries(ctx); err == nil {
			w.Metrics.pending.Reset()
			for sink, n := range pending {
				w.Metrics.pending.WithLabelValues(sink).Set(float64(n))
			}
		}
	}
	if now.Sub(w.pruned) >= time.Hour {
		w.pruned = now
		if n, err := w.Store.PruneNotifications(ctx, now.Add(-w.Retention)); err != nil {
			w.Logger.Warn("notifications: cannot prune", "error", err)
		} else if n > 0 {
			w.Logger.Info("notifications: pruned", "rows", n, "older_than", w.Retention)
		}
	}
	return len(due)
}

// deliver makes one attempt of d and records it.
func (w *Worker) deliver(ctx context.Context, cfg *rego.Notifications, d tollgate.Delivery) {
	a := w.attempt(ctx, cfg, d)
	result := ResultRetried
	switch {
	case a.Delivered:
		result = ResultDelivered
	case a.RetryAt.IsZero():
		result = ResultFailed
	}
	if w.Metrics != nil {
		w.Metrics.total.WithLabelValues(d.Sink, result).Inc()
	}
	if _, err := w.Store.FinishAttempt(context.WithoutCancel(ctx), d.ID, w.Owner, a); err != nil {
		w.Logger.Warn("notifications: cannot record an attempt", "delivery", d.ID, "error", err)
		return
	}
	if !a.Delivered {
		w.Logger.Warn("notifications: delivery attempt failed", "delivery", d.ID, "sink", d.Sink, "event", d.Event,
			"attempt", d.Attempts+1, "status", a.Status, "error", a.Error, "retry_at", a.RetryAt)
	}
}

// Callback delivers d, the end of a job, to the system its callback names,
// within ctx: nil when it is delivered; else retry says whether the
// failure may pass (it is tried again, with the sinks' backoff).
type Callback func(ctx context.Context, d tollgate.Delivery) (retry bool, err error)

// attempt sends d once and says what came of it.
func (w *Worker) attempt(ctx context.Context, cfg *rego.Notifications, d tollgate.Delivery) tollgate.Attempt {
	fail := func(format string, args ...any) tollgate.Attempt {
		return tollgate.Attempt{At: w.Now(), Error: fmt.Sprintf(format, args...)}
	}
	if slices.Contains(tollgate.CallbackSinks, d.Sink) {
		callback, ok := w.Callbacks[d.Sink]
		switch {
		case !ok:
			return fail("the %s integration is off on this server: nothing can deliver it", d.Sink)
		case d.Subject == nil:
			return fail("event %s is gone from the store", d.EventID)
		}
		actx, cancel := context.WithTimeout(ctx, w.Timeout)
		defer cancel()
		retry, err := callback(actx, d)
		a := tollgate.Attempt{At: w.Now(), Delivered: err == nil}
		switch {
		case err == nil:
			return a
		case retry:
			a.Error = err.Error()
			return w.retry(d, a, 0)
		}
		a.Error = err.Error() + ": not retried"
		return a
	}
	sink, ok := cfg.Sink(d.Sink)
	if !ok {
		return fail("sink %q is no longer configured", d.Sink)
	}
	if d.Subject == nil {
		return fail("event %s is gone from the store", d.EventID)
	}
	body, err := Body(sink.Type, d)
	if err != nil {
		return fail("%v", err)
	}
	target, err := Resolve(sink, w.LookupEnv)
	if err != nil {
		return w.retry(d, tollgate.Attempt{At: w.Now(), Error: err.Error()}, 0)
	}
	actx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return fail("sink %q: %v", d.Sink, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tollgate-notify")
	req.Header.Set(HeaderEvent, d.Event)
	req.Header.Set(HeaderDelivery, d.ID)
	if target.Secret != nil {
		req.Header.Set(HeaderSignature, Sign(target.Secret, body))
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		// Never the URL: it may hold the token.
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap()
		}
		if actx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s", w.Timeout)
		}
		return w.retry(d, tollgate.Attempt{At: w.Now(), Error: err.Error()}, 0)
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	resp.Body.Close()
	a := tollgate.Attempt{At: w.Now(), Status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		a.Delivered = true
		return a
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		a.Error = statusError(resp.Status, snippet)
		return w.retry(d, a, retryAfter(resp.Header.Get("Retry-After"), a.At))
	}
	a.Error = statusError(resp.Status, snippet) + ": the sink refused it, it is not retried"
	return a
}

func statusError(status string, body []byte) string {
	if s := strings.TrimSpace(strings.ToValidUTF8(string(body), "")); s != "" {
		return status + ": " + s
	}
	return status
}

// retry schedules the next attempt of d after the failed attempt a, or
// ends it failed if a was its last. after is the sink's Retry-After (0:
// none).
func (w *Worker) retry(d tollgate.Delivery, a tollgate.Attempt, after time.Duration) tollgate.Attempt {
	made := d.Attempts + 1
	if made >= w.MaxAttempts {
		a.Error = fmt.Sprintf("after %d attempts: %s", made, a.Error)
		return a
	}
	wait := w.Backoff << min(made-1, 30)
	if wait <= 0 || wait > w.MaxBackoff {
		wait = w.MaxBackoff
	}
	wait = wait/2 + time.Duration(w.random(int64(wait/2)+1))
	if after > wait {
		wait = min(after, 24*time.Hour)
	}
	a.RetryAt = a.At.Add(wait)
	return a
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
