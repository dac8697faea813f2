package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/postgres"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

// lateStore stands for a store that is still connecting (PostgreSQL that
// was unreachable at start): until set, every call fails with EUnavailable,
// so evaluate answers 503 and /readyz says not ready — never an accepted
// decision without its record.
type lateStore struct {
	store  atomic.Pointer[tollgate.DecisionStore]
	mu     sync.Mutex // orders set and Close
	closed bool
}

var (
	_ tollgate.DecisionStore = (*lateStore)(nil)
	_ tollgate.EPSSStore     = (*lateStore)(nil)
	_ tollgate.ScanStore     = (*lateStore)(nil)
)

// set makes s the store, unless Close came first: then s is closed at once.
func (l *lateStore) set(s tollgate.DecisionStore) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return s.Close()
	}
	l.store.Store(&s)
	return nil
}

func (l *lateStore) get() (tollgate.DecisionStore, error) {
	if s := l.store.Load(); s != nil {
		return *s, nil
	}
	return nil, tollgate.Errorf(tollgate.EUnavailable, "the decision store is not connected yet")
}

func (l *lateStore) Decide(ctx context.Context, key *tollgate.CooldownKey, decide func(tollgate.Cooldown) (tollgate.Record, error)) (tollgate.Record, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.Record{}, err
	}
	return s.Decide(ctx, key, decide)
}

func (l *lateStore) Cooldown(ctx context.Context, key tollgate.CooldownKey) (tollgate.Cooldown, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.Cooldown{}, err
	}
	return s.Cooldown(ctx, key)
}

func (l *lateStore) Decision(ctx context.Context, id string) (tollgate.Record, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.Record{}, err
	}
	return s.Decision(ctx, id)
}

func (l *lateStore) Decisions(ctx context.Context, f tollgate.DecisionFilter) (tollgate.DecisionPage, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.DecisionPage{}, err
	}
	return s.Decisions(ctx, f)
}

func (l *lateStore) ImportEPSS(ctx context.Context, set tollgate.EPSSSet) error {
	s, err := keeps[tollgate.EPSSStore](l, "EPSS scores")
	if err != nil {
		return err
	}
	return s.ImportEPSS(ctx, set)
}

func (l *lateStore) EPSS(ctx context.Context, cves []string) (map[string]tollgate.EPSSScore, tollgate.EPSSInfo, error) {
	s, err := keeps[tollgate.EPSSStore](l, "EPSS scores")
	if err != nil {
		return nil, tollgate.EPSSInfo{}, err
	}
	return s.EPSS(ctx, cves)
}

func (l *lateStore) PutScan(ctx context.Context, scan tollgate.StoredScan) error {
	s, err := keeps[tollgate.ScanStore](l, "scans")
	if err != nil {
		return err
	}
	return s.PutScan(ctx, scan)
}

func (l *lateStore) Scan(ctx context.Context, id string) (tollgate.StoredScan, error) {
	s, err := keeps[tollgate.ScanStore](l, "scans")
	if err != nil {
		return tollgate.StoredScan{}, err
	}
	return s.Scan(ctx, id)
}

func (l *lateStore) Baseline(ctx context.Context, project, environment string) (*tollgate.Baseline, error) {
	s, err := keeps[tollgate.ScanStore](l, "scans")
	if err != nil {
		return nil, err
	}
	return s.Baseline(ctx, project, environment)
}

// keeps returns the connected store as a T: the part of the store that
// keeps what (scans, tokens…).
func keeps[T any](l *lateStore, what string) (T, error) {
	var zero T
	s, err := l.get()
	if err != nil {
		return zero, err
	}
	t, ok := s.(T)
	if !ok {
		return zero, tollgate.Errorf(tollgate.EInternal, "the decision store %T keeps no %s", s, what)
	}
	return t, nil
}

var _ tollgate.ControlStore = (*lateStore)(nil)

func (l *lateStore) CreateControl(ctx context.Context, c tollgate.Control) error {
	s, err := keeps[tollgate.ControlStore](l, "controls")
	if err != nil {
		return err
	}
	return s.CreateControl(ctx, c)
}

func (l *lateStore) Control(ctx context.Context, id string) (tollgate.Control, error) {
	s, err := keeps[tollgate.ControlStore](l, "controls")
	if err != nil {
		return tollgate.Control{}, err
	}
	return s.Control(ctx, id)
}

func (l *lateStore) Controls(ctx context.Context, f tollgate.ControlFilter) ([]tollgate.Control, error) {
	s, err := keeps[tollgate.ControlStore](l, "controls")
	if err != nil {
		return nil, err
	}
	return s.Controls(ctx, f)
}

func (l *lateStore) UpdateControl(ctx context.Context, id string, change func(*tollgate.Control) (tollgate.ControlEvent, error)) (tollgate.Control, error) {
	s, err := keeps[tollgate.ControlStore](l, "controls")
	if err != nil {
		return tollgate.Control{}, err
	}
	return s.UpdateControl(ctx, id, change)
}

func (l *lateStore) InForce(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	s, err := keeps[tollgate.ControlStore](l, "controls")
	if err != nil {
		return nil, err
	}
	return s.InForce(ctx, at)
}

func (l *lateStore) ExpireDue(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	s, err := keeps[tollgate.ControlStore](l, "controls")
	if err != nil {
		return nil, err
	}
	return s.ExpireDue(ctx, at)
}

func (l *lateStore) Ping(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

func (l *lateStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if s := l.store.Load(); s != nil {
		return (*s).Close()
	}
	return nil // never connected: nothing to flush
}

var _ tollgate.TokenStore = (*lateStore)(nil)

func (l *lateStore) CreateToken(ctx context.Context, t tollgate.Token, hash []byte) error {
	s, err := keeps[tollgate.TokenStore](l, "tokens")
	if err != nil {
		return err
	}
	return s.CreateToken(ctx, t, hash)
}

func (l *lateStore) TokenByID(ctx context.Context, id string) (tollgate.Token, []byte, error) {
	s, err := keeps[tollgate.TokenStore](l, "tokens")
	if err != nil {
		return tollgate.Token{}, nil, err
	}
	return s.TokenByID(ctx, id)
}

func (l *lateStore) Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error) {
	s, err := keeps[tollgate.TokenStore](l, "tokens")
	if err != nil {
		return nil, err
	}
	return s.Tokens(ctx, withRevoked)
}

func (l *lateStore) RevokeToken(ctx context.Context, name string, at time.Time) (tollgate.Token, error) {
	s, err := keeps[tollgate.TokenStore](l, "tokens")
	if err != nil {
		return tollgate.Token{}, err
	}
	return s.RevokeToken(ctx, name, at)
}

var _ tollgate.BundleStore = (*lateStore)(nil)

func (l *lateStore) PutBundle(ctx context.Context, b tollgate.StoredBundle) error {
	s, err := keeps[tollgate.BundleStore](l, "bundles")
	if err != nil {
		return err
	}
	return s.PutBundle(ctx, b)
}

func (l *lateStore) Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error) {
	s, err := keeps[tollgate.BundleStore](l, "bundles")
	if err != nil {
		return tollgate.StoredBundle{}, err
	}
	return s.Bundle(ctx, revision)
}

// commandStore is the store a one-off command (token, epss import,
// replay, impact) opens.
type commandStore interface {
	tollgate.DecisionStore
	tollgate.TokenStore
	tollgate.EPSSStore
	tollgate.LedgerStore
	tollgate.BundleStore
}

// defaultDataDir is every command's --data-dir: the embedded store that
// `make run` serves, so that a command without the flag reads that store.
const defaultDataDir = ".data/tollgate"

// openCommandStore opens the store serve would use with the same flags:
// PostgreSQL at databaseURL if given, else the embedded store in dataDir,
// without its cooldown cache: the commands that write (tokens, EPSS, the
// ledger's archive) make no decision, so loading the cooldowns table into
// memory at open would be work for nothing.
func openCommandStore(ctx context.Context, dataDir, databaseURL string) (commandStore, error) {
	if databaseURL != "" {
		return postgres.Open(ctx, databaseURL)
	}
	return sqlite.Open(ctx, dataDir, sqlite.WithCooldownCache(0))
}

// storeReader is a store opened read-only, for the commands that only
// read: `ledger verify`, `ledger export`, `replay`, `impact`, `token list`.
type storeReader interface {
	tollgate.LedgerStore
	tollgate.BundleStore
	tollgate.HistoryReader
	Decision(ctx context.Context, id string) (tollgate.Record, error)
	Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error)
	Close() error
}

// openReader opens the store serve would use with the same flags,
// read-only: nothing is created, migrated or written.
func openReader(ctx context.Context, dataDir, databaseURL string) (storeReader, error) {
	if databaseURL != "" {
		l, err := postgres.OpenReadOnly(ctx, databaseURL)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	l, err := sqlite.OpenReadOnly(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	return l, nil
}

var _ tollgate.LedgerStore = (*lateStore)(nil)

func (l *lateStore) LedgerHead(ctx context.Context) (tollgate.LedgerHead, error) {
	s, err := keeps[tollgate.LedgerStore](l, "ledger")
	if err != nil {
		return tollgate.LedgerHead{}, err
	}
	return s.LedgerHead(ctx)
}

func (l *lateStore) LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error {
	s, err := keeps[tollgate.LedgerStore](l, "ledger")
	if err != nil {
		return err
	}
	return s.LedgerEntries(ctx, from, through, fn)
}

func (l *lateStore) LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error) {
	s, err := keeps[tollgate.LedgerStore](l, "ledger")
	if err != nil {
		return 0, false, err
	}
	return s.LedgerSeqSince(ctx, t)
}

func (l *lateStore) LedgerCooldowns(ctx context.Context, fn func(tollgate.StoredCooldown) error) (int64, error) {
	s, err := keeps[tollgate.LedgerStore](l, "ledger")
	if err != nil {
		return 0, err
	}
	return s.LedgerCooldowns(ctx, fn)
}

func (l *lateStore) LedgerBaselines(ctx context.Context, fn func(tollgate.StoredBaseline) error) (int64, error) {
	s, err := keeps[tollgate.LedgerStore](l, "ledger")
	if err != nil {
		return 0, err
	}
	return s.LedgerBaselines(ctx, fn)
}

func (l *lateStore) PruneLedger(ctx context.Context, through int64, hash []byte) (int64, error) {
	s, err := keeps[tollgate.LedgerStore](l, "ledger")
	if err != nil {
		return 0, err
	}
	return s.PruneLedger(ctx, through, hash)
}

var _ tollgate.JobStore = (*lateStore)(nil)

func (l *lateStore) SubmitJob(ctx context.Context, j tollgate.Job, bounds tollgate.JobBounds) (tollgate.Job, bool, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return tollgate.Job{}, false, err
	}
	return s.SubmitJob(ctx, j, bounds)
}

func (l *lateStore) Job(ctx context.Context, id string) (tollgate.Job, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return tollgate.Job{}, err
	}
	return s.Job(ctx, id)
}

func (l *lateStore) Jobs(ctx context.Context, f tollgate.JobFilter) ([]tollgate.Job, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return nil, err
	}
	return s.Jobs(ctx, f)
}

func (l *lateStore) ClaimJobs(ctx context.Context, owner string, at time.Time, lease time.Duration, n int) ([]tollgate.Job, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return nil, err
	}
	return s.ClaimJobs(ctx, owner, at, lease, n)
}

func (l *lateStore) UpdateJob(ctx context.Context, id, owner string, change func(*tollgate.Job) error) (tollgate.Job, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return tollgate.Job{}, err
	}
	return s.UpdateJob(ctx, id, owner, change)
}

func (l *lateStore) WakeJobs(ctx context.Context, at time.Time) (int64, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return 0, err
	}
	return s.WakeJobs(ctx, at)
}

func (l *lateStore) JobStats(ctx context.Context) (tollgate.JobStats, error) {
	s, err := keeps[tollgate.JobStore](l, "jobs")
	if err != nil {
		return tollgate.JobStats{}, err
	}
	return s.JobStats(ctx)
}
