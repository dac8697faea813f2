// Package sqlite is the embedded decision store: the decision history and the
// cooldown state in one SQLite file, tollgate.db, in the server's data
// directory. It uses modernc.org/sqlite (pure Go, no cgo).
//
// The file is opened in WAL mode with synchronous=FULL: a decision is on disk
// before Decide returns, and reading the history never waits for a write.
// Writes go through one goroutine that commits every write waiting at that
// moment in one transaction (group commit), so many concurrent decisions
// share the cost of one fsync.
//
// One process per file: a Store must be the only process using its file. The
// cooldown check-and-record is made atomic by locks held in this process
// (one per cooldown key), not by SQLite, whose only lock is one writer for the
// whole file; a second process writing the same file could let two requests
// pass the same cooldown. Run several servers against PostgreSQL instead.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"
)

// FileName is the name of the database file in the data directory.
const FileName = "tollgate.db"

const (
	defaultMaxBatch = 256
	busyTimeout     = 5 * time.Second
)

var (
	_ tollgate.DecisionStore = (*Store)(nil)
	_ tollgate.EPSSStore     = (*Store)(nil)
)

// Store is a tollgate.DecisionStore in a SQLite file. Its methods are safe
// for concurrent use.
type Store struct {
	storekit.Tables // tokens, scans, baselines, bundles: see dialect

	path     string
	db       *sql.DB   // the readers' pool; WAL lets them read while the writer writes
	writer   *sql.Conn // the one connection that writes, under writeMu
	stmts    *writeStmts
	cooldown *sql.Stmt  // the cooldown read, on the readers' pool, prepared once rather than per decision
	writeMu  sync.Mutex // held by each transaction on writer: a commit of writeLoop, an EPSS import
	keys     *storekit.KeyLocks
	maxBatch int

	// mu guards closed and every send on writes, so that Close can close the
	// channel without a send racing it.
	mu         sync.RWMutex
	closed     bool
	writes     chan *write
	writerDone chan struct{}

	closeOnce sync.Once
	closeErr  error

	commits, written atomic.Int64 // see Stats
	legacyChained    int64        // see LegacyChained
}

// Stats counts the work of the writer since Open.
type Stats struct {
	Commits int64 // transactions committed: one fsync each
	Written int64 // decisions committed; Written/Commits is the mean batch
}

// Stats reports how much group commit is batching, for metrics.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Written: s.written.Load()}
}

// Option configures Open.
type Option func(*options)

type options struct {
	maxBatch int
}

// WithMaxBatch caps how many writes one transaction commits (default 256).
// 1 commits each write in a transaction of its own, which turns group commit
// off; it exists to measure what group commit is worth.
func WithMaxBatch(n int) Option {
	return func(o *options) { o.maxBatch = max(n, 1) }
}

// Open opens the store in dataDir, creating the directory and the database
// file if needed, and brings its schema up to date. ctx bounds the opening
// only; Close releases the store.
func Open(ctx context.Context, dataDir string, opts ...Option) (*Store, error) {
	o := options{maxBatch: defaultMaxBatch}
	for _, opt := range opts {
		opt(&o)
	}
	if dataDir == "" {
		return nil, errors.New("sqlite: no data directory given")
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	path, err := filepath.Abs(filepath.Join(dataDir, FileName))
	if err != nil {
		return nil, fmt.Errorf("sqlite: data directory %s: %w", dataDir, err)
	}
	connector, err := sqlite.NewConnector(dsn(path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	// Every connection runs the DSN's pragmas when it opens: keep them open.
	readers := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(readers + 1)
	db.SetMaxIdleConns(readers + 1)

	s, err := open(ctx, db, path, o)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, db *sql.DB, path string, o options) (*Store, error) {
	applied, err := migrations.Apply(ctx, db, migrations.SQLite)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("sqlite: %s: read journal mode: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("sqlite: %s: journal mode is %q, not WAL (is the file on a filesystem without shared memory?)", path, mode)
	}
	cooldown, err := db.PrepareContext(ctx, selectCooldown)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: prepare: %w", path, err)
	}
	writer, err := db.Conn(ctx)
	if err != nil {
		cooldown.Close()
		return nil, fmt.Errorf("sqlite: %s: writer connection: %w", path, err)
	}
	stmts, err := prepareWrites(ctx, writer)
	if err != nil {
		cooldown.Close()
		writer.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	s := &Store{
		path:       path,
		db:         db,
		writer:     writer,
		stmts:      stmts,
		cooldown:   cooldown,
		keys:       storekit.NewKeyLocks(),
		maxBatch:   o.maxBatch,
		writes:     make(chan *write, o.maxBatch),
		writerDone: make(chan struct{}),
	}
	s.Tables = storekit.NewTables(s.dialect())
	go s.writeLoop()
	if slices.Contains(applied, migrations.LedgerMigration) {
		if s.legacyChained, err = s.chainLegacy(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// dsn is the connection string of path: WAL, fsync on every commit
// (synchronous=FULL: durable before Decide returns), wait for a lock rather
// than fail at once, foreign keys on, and write transactions that take the
// write lock when they begin, so they never fail half-way on SQLITE_BUSY.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	// A file: URI, so that a path holding '?' or '#' is escaped, not cut.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// Decide implements tollgate.DecisionStore. With a key, it holds the key's
// lock from reading the cooldown until a record that starts the cooldown is
// committed (or known not to be), so that concurrent Decides for one key run
// one after the other; a record that does not start it changes nothing the
// next Decide reads, so the lock is released once it is decided.
//
// If ctx ends while the write is with the writer, Decide returns ctx.Err() at
// once; the write is then committed whole or not at all, and the key stays
// locked until it is settled, so the next Decide for it sees the outcome.
func (s *Store) Decide(ctx context.Context, key *tollgate.CooldownKey, decide func(tollgate.Cooldown) (tollgate.Record, error)) (tollgate.Record, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Record{}, err
	}
	if s.isClosed() {
		return tollgate.Record{}, s.errClosed()
	}
	var (
		cooldown tollgate.Cooldown
		unlock   func() // set while this call holds the key's lock
	)
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	if key != nil {
		k := *key // the caller may reuse *key once we return
		key = &k
		var err error
		if unlock, err = s.keys.Lock(ctx, k); err != nil {
			return tollgate.Record{}, err
		}
		if cooldown, err = s.readCooldown(ctx, k); err != nil {
			return tollgate.Record{}, err
		}
	}
	rec, err := decide(cooldown)
	if err != nil {
		return tollgate.Record{}, err
	}
	w, err := newWrite(ctx, rec, key)
	if err != nil {
		return tollgate.Record{}, err
	}
	if unlock != nil && !w.Accept {
		// A decision that does not accept leaves the cooldown as it was, so
		// the next request for the key may read it now: refusals of a busy
		// key then share commits instead of taking one each. The record is
		// still durable before this call returns.
		unlock()
		unlock = nil
	}
	if err := s.submit(ctx, w); err != nil {
		return tollgate.Record{}, err
	}
	if err := storekit.Await(ctx, w.done, &unlock); err != nil {
		return tollgate.Record{}, err
	}
	return w.Rec, nil
}

// submit hands w to the writer.
func (s *Store) submit(ctx context.Context, w *write) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return s.errClosed()
	}
	select {
	case s.writes <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cooldown implements tollgate.DecisionStore: the committed state of key,
// without taking its lock.
func (s *Store) Cooldown(ctx context.Context, key tollgate.CooldownKey) (tollgate.Cooldown, error) {
	if s.isClosed() {
		return tollgate.Cooldown{}, s.errClosed()
	}
	return s.readCooldown(ctx, key)
}

func (s *Store) readCooldown(ctx context.Context, k tollgate.CooldownKey) (tollgate.Cooldown, error) {
	var at int64
	err := s.cooldown.QueryRowContext(ctx, k.Project, k.Pipeline, k.Branch).Scan(&at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return tollgate.Cooldown{}, nil
	case err != nil:
		return tollgate.Cooldown{}, s.readError(ctx, "read cooldown", err)
	}
	return tollgate.Cooldown{LastAcceptedAt: time.Unix(0, at).UTC()}, nil
}

const selectCooldown = `SELECT last_accepted_at FROM cooldowns WHERE project = ? AND pipeline = ? AND branch = ?`

// Ping implements tollgate.DecisionStore: it reads the schema, which needs
// the file to be there and readable.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return s.errClosed()
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM decisions WHERE 0`).Scan(&n); err != nil {
		return s.readError(ctx, "ping", err)
	}
	return nil
}

// Close implements tollgate.DecisionStore: it refuses new writes, commits
// every write already handed over, then closes the file. Calling it again
// returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.writes)
		s.mu.Unlock()
		<-s.writerDone

		// SQLite's advice for long-lived connections, at close: refresh the
		// statistics the planner uses to choose among the indexes.
		_, optimizeErr := s.writer.ExecContext(context.Background(), "PRAGMA optimize")
		s.closeErr = errors.Join(optimizeErr, s.stmts.close(), s.cooldown.Close(), s.writer.Close(), s.db.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close %s: %w", s.path, s.closeErr)
		}
	})
	return s.closeErr
}

// onWriter runs fn in a transaction on the writer connection, between the
// group commits of decisions (which wait for it in this process), and
// commits it. It holds mu's read lock throughout, so that Close waits for it
// before it closes the writer connection. Its errors are fn's, or the
// transaction's, unclassified: the caller passes them to readError once
// onWriter has returned, never under the read lock (readError takes it
// again, and a read lock taken twice deadlocks with a Close waiting for it).
func (s *Store) onWriter(ctx context.Context, fn func(*sql.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return s.errClosed()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// After Commit, Rollback is a no-op.
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func (s *Store) errClosed() error {
	return tollgate.Errorf(tollgate.EUnavailable, "decision store %s is closed", s.path)
}

// readError turns a failed read into the error Decide and the readers
// return: the caller's own context error as it is, otherwise "unavailable".
func (s *Store) readError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if s.isClosed() {
		return s.errClosed()
	}
	return tollgate.Errorf(tollgate.EUnavailable, "decision store %s: %s: %v", s.path, what, err)
}
