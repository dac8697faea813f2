// Package sqlite is the embedded decision store: the decision history and the
// cooldown state in one SQLite file, tollgate.db, in the server's data
// directory. It uses modernc.org/sqlite (pure Go, no cgo).
//
// The file is opened in WAL mode with synchronous=FULL: a decision is on disk
// before Decide returns, and reading the history never waits for a write.
// Writes go through one goroutine that commits every write waiting at that
// moment in one transaction (group commit), so many concurrent decisions
// share the cost of one fsync; while writes queue, a transaction smaller
// than the one before lingers for more (WithLinger).
//
// The cooldowns table is also held in memory (WithCooldownCache), kept by
// that writer after each commit: a keyed Decide reads its cooldown without
// SQL. Each group commit reads PRAGMA data_version, which changes when
// another connection (another process: `tollgate token create` beside a
// running server) has committed; the cache is then loaded again in that
// transaction and each acceptance in it decided on an older cooldown is
// decided again.
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

// DefaultLinger is how long, at most, a group commit waits for more
// decisions while they are queuing (WithLinger). Under load on two cores
// it grows transactions from 2–3 decisions to about 6–11; a decision that
// comes alone never waits.
const DefaultLinger = 2 * time.Millisecond

var (
	_ tollgate.DecisionStore = (*Store)(nil)
	_ tollgate.EPSSStore     = (*Store)(nil)
)

// Stats is what Store.Stats counts: group commits, decisions committed,
// the cooldown cache.
type Stats = storekit.Stats

// Store is a tollgate.DecisionStore in a SQLite file: storekit.Core on
// this package's dialect (tables.go, writer.go). Its methods are safe for
// concurrent use.
type Store struct {
	*storekit.Core

	path     string
	db       *sql.DB   // the readers' pool; WAL lets them read while the writer writes
	writer   *sql.Conn // the one connection that writes, under writeMu
	stmts    *writeStmts
	cooldown *sql.Stmt  // the cooldown read, on the readers' pool, prepared once rather than per decision
	writeMu  sync.Mutex // held by each transaction on writer: a group commit, any other write

	// dataVersion is the writer connection's PRAGMA data_version at its
	// last group commit: it changes when another connection commits.
	// Under writeMu.
	dataVersion int64
}

// Option configures Open.
type Option func(*options)

type options struct {
	maxBatch  int
	linger    time.Duration
	cooldowns int
}

// WithMaxBatch caps how many writes one transaction commits (default 256).
// 1 commits each write in a transaction of its own, which turns group commit
// off; it exists to measure what group commit is worth.
func WithMaxBatch(n int) Option {
	return func(o *options) { o.maxBatch = max(n, 1) }
}

// WithLinger bounds how long a group commit waits for more decisions
// while they are queuing (default DefaultLinger): a transaction smaller
// than the one before waits until it is as large, or d has passed. A
// decision made while the store was idle, or while decisions come one at
// a time, is committed at once. 0 never waits.
func WithLinger(d time.Duration) Option {
	return func(o *options) { o.linger = max(d, 0) }
}

// DefaultCooldownCache is how many cooldown keys the store holds in memory
// at most (WithCooldownCache): about 22 MB with keys of ~40 characters.
const DefaultCooldownCache = 1 << 18

// WithCooldownCache bounds the cooldown cache (default
// DefaultCooldownCache keys): a keyed Decide reads its key's cooldown from
// memory, not from the file, while the cooldowns table holds at most n
// rows; past that, from the file. 0 turns the cache off.
func WithCooldownCache(n int) Option {
	return func(o *options) { o.cooldowns = max(n, 0) }
}

// Open opens the store in dataDir, creating the directory and the database
// file if needed, and brings its schema up to date. ctx bounds the opening
// only; Close releases the store.
func Open(ctx context.Context, dataDir string, opts ...Option) (*Store, error) {
	o := options{maxBatch: defaultMaxBatch, linger: DefaultLinger, cooldowns: DefaultCooldownCache}
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
	s := &Store{path: path, db: db, writer: writer, stmts: stmts, cooldown: cooldown}
	s.Core = storekit.NewCore(s.dialect(), storekit.Batching{Max: o.maxBatch, Linger: o.linger})
	if slices.Contains(applied, migrations.LedgerMigration) {
		if err := s.ChainLegacy(ctx, s.dialect().Write); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: %s: %w", path, err)
		}
	}
	if o.cooldowns > 0 {
		// In a write transaction: no other process commits between the
		// load and the data version it is checked against.
		err := s.onWriter(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, "PRAGMA data_version").Scan(&s.dataVersion); err != nil {
				return err
			}
			return s.CacheCooldowns(ctx, querier{tx}, o.cooldowns)
		})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: %s: load the cooldowns: %w", path, err)
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

// readCooldown is the dialect's ReadCooldown, on a statement of the
// readers' pool prepared once rather than per decision.
// It reads no decision ID: the key lock of this process orders the Decides
// of a key, no compare-and-set needs it.
func (s *Store) readCooldown(ctx context.Context, k tollgate.CooldownKey) (at int64, _ *string, err error) {
	err = row{s.cooldown.QueryRowContext(ctx, k.Project, k.Pipeline, k.Branch)}.Scan(&at)
	return at, nil, err
}

const selectCooldown = `SELECT last_accepted_at FROM cooldowns WHERE project = ? AND pipeline = ? AND branch = ?`

// Close implements tollgate.DecisionStore: it refuses new calls, commits
// every write already handed over, then closes the file. Calling it again
// returns the first call's result.
func (s *Store) Close() error {
	return s.Core.Close(func() error {
		// SQLite's advice for long-lived connections, at close: refresh the
		// statistics the planner uses to choose among the indexes.
		_, optimizeErr := s.writer.ExecContext(context.Background(), "PRAGMA optimize")
		if err := errors.Join(optimizeErr, s.stmts.close(), s.cooldown.Close(), s.writer.Close(), s.db.Close()); err != nil {
			return fmt.Errorf("sqlite: close %s: %w", s.path, err)
		}
		return nil
	})
}

// onWriter runs fn in a transaction on the writer connection, between the
// group commits of decisions (which wait for it in this process), and
// commits it.
func (s *Store) onWriter(ctx context.Context, fn func(*sql.Tx) error) error {
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
