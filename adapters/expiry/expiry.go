// Package expiry is the worker that ends controls (exceptions, emergency
// freezes, incident mode) at their expiry: now and then it asks the control
// store to expire every live control that is due.
//
// The store makes it safe to run in every replica at once: ExpireDue
// expires each control exactly once, whichever replica gets there first.
// Nothing is kept in memory, so a restart loses nothing: the first round,
// at start, expires what fell due while the server was down. Evaluation
// never waits for the worker: a control past its expiry is not in force
// (ControlStore.InForce) even while its state still says otherwise.
package expiry

import (
	"context"
	"log/slog"
	"time"

	"github.com/tollgate/tollgate"
)

// DefaultInterval is how often Run looks for due controls when given no
// interval: a control's recorded state lags its expiry by at most this.
const DefaultInterval = 10 * time.Second

// Run expires the due controls of store at once, then every `every`
// (DefaultInterval if not positive), as of now(), until ctx ends. It logs
// each control it expires, with its kind and ID, and calls onExpire (if not
// nil) with it. A failed round is logged and the next one tries again: a
// store that is down for a while delays expiries, it does not stop them.
func Run(ctx context.Context, store tollgate.ControlStore, every time.Duration, now func() time.Time, logger *slog.Logger, onExpire func(tollgate.Control)) {
	if every <= 0 {
		every = DefaultInterval
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		expired, err := store.ExpireDue(ctx, now())
		if err != nil && ctx.Err() == nil {
			logger.Error("expire controls: will try again", "err", err, "in", every.String())
		}
		for _, c := range expired {
			logger.Info("control expired", "kind", string(c.Kind), "id", c.ID, "expires_at", c.ExpiresAt)
			if onExpire != nil {
				onExpire(c)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
