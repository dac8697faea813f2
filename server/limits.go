package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate"
)

// Defaults of the limits.
const (
	// DefaultMaxEvaluations caps the evaluations (evaluate, simulate) in
	// progress at once. High enough for group commit to batch well (32
	// concurrent callers reach the embedded store's best throughput), low
	// enough that a flood queues here rather than in the store and the
	// Go scheduler.
	DefaultMaxEvaluations = 128
	// DefaultEvaluationWait is how long an evaluation waits for a slot
	// before it is refused with 503.
	DefaultEvaluationWait = time.Second
)

// limits holds the per-token rate limiters and the evaluation slots.
type limits struct {
	now   func() time.Time
	rate  rate.Limit // 0: no rate limit
	burst int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by token ID: a handful

	slots    *semaphore.Weighted
	maxSlots int
	wait     time.Duration
}

func newLimits(cfg Config) *limits {
	l := &limits{
		now: cfg.Now, rate: cfg.RateLimit, burst: cfg.RateBurst,
		limiters: map[string]*rate.Limiter{},
		maxSlots: cfg.MaxEvaluations, wait: cfg.EvaluationWait,
	}
	if l.maxSlots <= 0 {
		l.maxSlots = DefaultMaxEvaluations
	}
	if l.wait <= 0 {
		l.wait = DefaultEvaluationWait
	}
	if l.burst <= 0 {
		l.burst = max(1, int(math.Ceil(float64(l.rate))))
	}
	l.slots = semaphore.NewWeighted(int64(l.maxSlots))
	return l
}

// retryAfter sets Retry-After to d in whole seconds, at least 1.
func retryAfter(e *apiError, d time.Duration) *apiError {
	e.headers = map[string]string{"Retry-After": strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))}
	return e
}

// allow takes one request from key's rate limit, or returns a 429 saying
// when the next one would be allowed.
func (l *limits) allow(key string) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	lim, ok := l.limiters[key]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.limiters[key] = lim
	}
	l.mu.Unlock()
	now := l.now()
	r := lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return retryAfter(newError(http.StatusTooManyRequests, tollgate.ERateLimited, fmt.Sprintf(
			"rate limit reached: this token may make %s requests per second (bursts of %d); retry after %s",
			strconv.FormatFloat(float64(l.rate), 'f', -1, 64), l.burst, delay.Round(time.Millisecond))), delay)
	}
	return nil
}

// evaluation waits, up to the configured wait, for one of the evaluation
// slots and returns the function that frees it; past the wait it returns a
// 503 with Retry-After. Handlers take a slot after reading the body, so a
// slow client never holds one.
func (l *limits) evaluation(ctx context.Context) (release func(), err error) {
	if l.slots.TryAcquire(1) {
		return func() { l.slots.Release(1) }, nil
	}
	wctx, cancel := context.WithTimeout(ctx, l.wait)
	defer cancel()
	if err := l.slots.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, retryAfter(newError(http.StatusServiceUnavailable, tollgate.EUnavailable, fmt.Sprintf(
			"too busy: %d evaluations are in progress and none ended within %s; retry shortly", l.maxSlots, l.wait)), time.Second)
	}
	return func() { l.slots.Release(1) }, nil
}
