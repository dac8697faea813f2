package storekit

import (
	"context"
	"time"

	"github.com/tollgate/tollgate"
)

// Reader is what a store opened read-only keeps of the store: the methods
// that only read.
type Reader interface {
	Decision(ctx context.Context, id string) (tollgate.Record, error)
	Decisions(ctx context.Context, f tollgate.DecisionFilter) (tollgate.DecisionPage, error)
	Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error)
	Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error)
	LedgerHead(ctx context.Context) (tollgate.LedgerHead, error)
	LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error
	LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error)
	LedgerCooldowns(ctx context.Context, fn func(tollgate.StoredCooldown) error) (int64, error)
	LedgerBaselines(ctx context.Context, fn func(tollgate.StoredBaseline) error) (int64, error)
}

// ReadOnly is a store opened read-only, for the commands that only read
// (`tollgate ledger verify`, `ledger export`, `replay`, `impact`,
// `token list`): it reads through its Reader, and refuses the writes the
// interfaces it implements have (PutBundle, PruneLedger).
type ReadOnly struct {
	Reader
	where string // the store, for errors: "sqlite: /path/tollgate.db"
	close func() error
}

var (
	_ tollgate.LedgerStore = (*ReadOnly)(nil)
	_ tollgate.BundleStore = (*ReadOnly)(nil)
)

// NewReadOnly is r opened read-only at where, released by close.
func NewReadOnly(r Reader, where string, close func() error) *ReadOnly {
	return &ReadOnly{Reader: r, where: where, close: close}
}

// PutBundle implements tollgate.BundleStore: refused.
func (l *ReadOnly) PutBundle(context.Context, tollgate.StoredBundle) error {
	return tollgate.Errorf(tollgate.EInvalid, "%s is open read-only: no bundle can be kept", l.where)
}

// PruneLedger implements tollgate.LedgerStore: refused.
func (l *ReadOnly) PruneLedger(context.Context, int64, []byte) (int64, error) {
	return 0, tollgate.Errorf(tollgate.EInvalid, "%s is open read-only: nothing can be pruned", l.where)
}

// Close releases the store.
func (l *ReadOnly) Close() error { return l.close() }
