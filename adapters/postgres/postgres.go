// Package postgres is the decision store shared by several tollgate servers:
// the decision history and the cooldown state in PostgreSQL, through a pgx
// connection pool (github.com/jackc/pgx/v5/pgxpool).
//
// It behaves as the embedded store (adapters/sqlite) does, and passes the
// same conformance suite (adapters/storetest), with one difference that is
// the reason it exists: the cooldown check-and-record is atomic across every
// process using the database, not only within one.
//
//   - Every record goes through one writer that commits every record
//     waiting at that moment in one transaction (group commit), answering
//     each caller after COMMIT.
//   - A keyed Decide (one with a cooldown key) reads the cooldown, calls
//     decide, and if the record accepts, the writer records it only if the
//     cooldown is still the one decide saw (a compare-and-set on the
//     cooldown row, under the key's advisory lock); if another replica
//     accepted in between, nothing is written and the Decide decides again
//     with the new cooldown. See Decide for why.
//   - WithGroupCommit(false) writes each record in a transaction of its
//     own, the same way.
//
// Either way a record is committed before Decide returns, and a Decide that
// cannot commit returns an EUnavailable error: the server answers 503, never
// a decision it did not record. (The reverse can happen, as with any
// database: if the connection dies after the server committed but before its
// answer arrived, Decide fails as unavailable and the record, whole, with its
// cooldown, is in the history. The gate still fails closed.) Every connection runs with a statement
// timeout (5 s unless WithStatementTimeout says otherwise) and every call has
// a deadline of its own, so that a slow query or a database that stops
// answering fails requests instead of holding them. The pool replaces broken
// connections by itself: when the database comes back, so does the store.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"
)

const (
	// DefaultStatementTimeout bounds every statement the store runs.
	DefaultStatementTimeout = 5 * time.Second

	defaultMaxBatch = 256

	// grace is how much longer than the statement timeout the client waits
	// for an answer before it gives up on the server: long enough for the
	// server's own timeout error to arrive first when the server is alive.
	grace = time.Second
)

var (
	_ tollgate.DecisionStore = (*Store)(nil)
	_ tollgate.EPSSStore     = (*Store)(nil)
)

// Store is a tollgate.DecisionStore in a PostgreSQL database:
// storekit.Core on this package's dialect (tables.go, writer.go). Its
// methods are safe for concurrent use, and any number of Stores, in any
// number of processes, may share one database.
type Store struct {
	*storekit.Core

	pool    *pgxpool.Pool
	where   string        // host:port/database, for messages (never the password)
	timeout time.Duration // statement_timeout of every connection

	// skipKeyLock leaves the cross-replica protection out of keyed
	// Decides (the compare-and-set of the cooldown and the key's advisory
	// lock); set by tests and benchmarks only, to show what it does and
	// costs.
	skipKeyLock bool
}

// Option configures Open.
type Option func(*options)

type options struct {
	statementTimeout time.Duration
	maxConns         int32
	maxBatch         int
	groupCommit      bool
}

func defaults() options {
	return options{statementTimeout: DefaultStatementTimeout, maxBatch: defaultMaxBatch, groupCommit: true}
}

// WithStatementTimeout sets the statement_timeout of every connection (and
// its idle_in_transaction_session_timeout, which bounds how long a keyed
// Decide may hold its key between statements). A statement that runs longer
// fails, and Decide with it, as unavailable. Default 5 s. It replaces a
// statement_timeout given in the URL.
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.statementTimeout = d
		}
	}
}

// WithMaxConns caps the pool (default: pool_max_conns from the URL if given,
// else max(8, 2×GOMAXPROCS)). Every keyed Decide in progress holds one
// connection, so this caps them too; mind the server's max_connections
// across all replicas.
func WithMaxConns(n int) Option {
	return func(o *options) { o.maxConns = int32(max(n, 2)) }
}

// WithMaxBatch caps how many records one group commit writes (default 256).
func WithMaxBatch(n int) Option {
	return func(o *options) { o.maxBatch = max(n, 1) }
}

// WithGroupCommit(false) writes each decision without a key in a
// transaction of its own, from its caller's goroutine, instead of handing it
// to the group-commit writer. It exists to measure what group commit is
// worth.
func WithGroupCommit(enabled bool) Option {
	return func(o *options) { o.groupCommit = enabled }
}

// Open connects to the database at url (a postgres:// URL or a keyword/value
// string, as libpq takes them), brings its schema up to date and returns the
// store. ctx bounds the opening only; Close releases the store. A database
// that cannot be reached fails Open with an EUnavailable error; OpenWithRetry
// waits for it instead.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := defaults()
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := poolConfig(url, o)
	if err != nil {
		return nil, err
	}
	where := describe(cfg.ConnConfig)
	applied, err := migrate(ctx, cfg.ConnConfig, where)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	s := &Store{pool: pool, where: where, timeout: o.statementTimeout}
	maxBatch := o.maxBatch
	if !o.groupCommit {
		maxBatch = 0
	}
	// No linger (storekit.Batching): its group commits already hold ~16
	// decisions in BenchmarkDecideParallel, and a linger was not measured
	// end to end on PostgreSQL (test/bench/README.md, second round).
	s.Core = storekit.NewCore(s.dialect(), storekit.Batching{Max: maxBatch})
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if slices.Contains(applied, migrations.LedgerMigration) {
		if err := s.chainLegacy(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// chainLegacy chains the decisions recorded before the ledger
// (storekit.Core.ChainLegacy) in a transaction of the pool, under the
// chain head's lock. Not the dialect's Write, bounded by the statement
// timeout: the chain may be long; ctx bounds it.
func (s *Store) chainLegacy(ctx context.Context) error {
	return s.ChainLegacy(ctx, func(ctx context.Context, fn func(context.Context, storekit.Querier) error) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, querier{tx}) })
	})
}

// poolConfig parses url and sets what the store relies on: timeouts on every
// connection, queries canceled on the server when their caller gives up, and
// pool limits.
func poolConfig(url string, o options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message quotes the URL with its password masked.
		return nil, tollgate.Errorf(tollgate.EInvalid, "postgres: database URL: %v", err)
	}
	cc := cfg.ConnConfig
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	ms := strconv.FormatInt(max(o.statementTimeout.Milliseconds(), 1), 10)
	cc.RuntimeParams["statement_timeout"] = ms
	// A keyed Decide holds its key's lock while decide runs, between two
	// statements: should this process hang there, the server ends the
	// transaction, and the key is free again, after the same time.
	cc.RuntimeParams["idle_in_transaction_session_timeout"] = ms
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "tollgate"
	}
	if cc.ConnectTimeout == 0 || cc.ConnectTimeout > o.statementTimeout {
		cc.ConnectTimeout = o.statementTimeout
	}
	// When a caller gives up (its context ends), ask the server to stop the
	// query (say, a wait for a key's lock) and keep the connection, rather
	// than pgx's default of closing it and dialing a new one for the next
	// caller; the connection is dropped all the same if the server does not
	// answer within a second (it is gone, or frozen).
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}

	switch {
	case o.maxConns > 0:
		cfg.MaxConns = o.maxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = int32(max(8, 2*runtime.GOMAXPROCS(0)))
	}
	// Connections do not live forever (a failover, a restarted PgBouncer):
	// they are replaced now and then, not all at once.
	if !strings.Contains(url, "pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = 30 * time.Minute
		cfg.MaxConnLifetimeJitter = 5 * time.Minute
	}
	if !strings.Contains(url, "pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = 5 * time.Minute
	}
	if !strings.Contains(url, "pool_health_check_period") {
		cfg.HealthCheckPeriod = 15 * time.Second
	}
	cfg.PingTimeout = o.statementTimeout
	return cfg, nil
}

// describe names the database for messages, without credentials.
func describe(cc *pgx.ConnConfig) string {
	host := cc.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(cc.Port)))
	}
	return "postgres " + host + "/" + cc.Database
}

// The write path. A keyed Decide (storekit.Core.Decide) reads the
// cooldown with the ID of the decision that set it (readCooldown), decide
// runs, and a record that accepts goes to the group-commit writer with a
// compare-and-set of the cooldown: in the writer's transaction,
//
//	SELECT pg_advisory_xact_lock(h) -- each key of the batch, in order
//	WITH cas AS (INSERT INTO cooldowns … ON CONFLICT … DO UPDATE …
//	             WHERE cooldowns.decision_id = <the ID read>),
//	     link AS (UPDATE ledger … WHERE EXISTS (SELECT FROM cas))
//	INSERT INTO decisions … FROM link
//
// so the decision is recorded, and starts its cooldown, only if the
// cooldown is still the one decide saw; if another replica accepted for
// the key in between, nothing is written and the Decide decides again.
// That is what makes the cooldown atomic across replicas without holding a
// transaction open while the policy runs, and what lets acceptances share
// a commit: each used to be a transaction of its own, and all of them
// followed each other through the ledger's head row, one WAL flush each
// (~930 decisions/s at most here). h, a 64-bit hash of the key, is the
// advisory lock the previous protocol took around its read and write:
// taking it in the batch keeps a replica that still runs that protocol (a
// rolling upgrade) from accepting between this one's read and write
// unseen. Why compare-and-set on the cooldown row, and not something else:
//
//   - SELECT … FOR UPDATE locks rows that exist. A key that has never been
//     accepted has no cooldown row, so two first requests would both lock
//     nothing and both pass. The compare-and-set covers it: the first
//     INSERT creates the row, the second meets it, and its WHERE (the ID it
//     read, none) does not hold.
//   - A unique constraint cannot say "less than cooldown_minutes ago": the
//     window is policy, in Rego, and slides with each acceptance.
//   - SERIALIZABLE would catch the conflict too, by failing a transaction
//     at COMMIT, and with it every other decision of its batch.

const (
	lockKey      = `SELECT pg_advisory_xact_lock($1)`
	readCooldown = `SELECT last_accepted_at, decision_id FROM cooldowns WHERE project = $1 AND pipeline = $2 AND branch = $3`

	// The record takes its place in the ledger's chain in the statement
	// that inserts it: the UPDATE moves the one chain head on (in SQL SET
	// reads the old row: prev_hash gets the old hash) and locks its row
	// until the transaction ends, so the transactions that record, in every
	// process, follow each other in the chain in the order they commit.
	// $10 is the record's digest (adapters/ledger), computed beforehand.
	// Without the ledger row, the NULLs fail decisions_chained: never a
	// record recorded outside the chain.
	insertDecision = `WITH link AS (
		UPDATE ledger SET seq = seq + 1, prev_hash = hash, hash = sha256(hash || $10::bytea)
		WHERE id = 1 RETURNING seq, prev_hash, hash)
	INSERT INTO decisions
	(id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record, seq, prev_hash, hash)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
		(SELECT seq FROM link), (SELECT prev_hash FROM link), (SELECT hash FROM link))`

	// An acceptance, recorded only if its key's cooldown is still the one
	// its decision read ($14, the decision that set it; NULL for none, or
	// for one archived and pruned since, whose decision_id is NULL): the
	// compare-and-set of the cooldown row (cas), then the chain's link, as
	// above, then the record. When cas writes nothing, neither do the
	// others, and the row count is 0. A cooldown never moves back in time,
	// should a clock do so: it then keeps its time and decision.
	insertAccepted = `WITH cas AS (
		INSERT INTO cooldowns (project, pipeline, branch, last_accepted_at, decision_id)
		VALUES ($11, $12, $13, $2, $1)
		ON CONFLICT (project, pipeline, branch) DO UPDATE
		SET last_accepted_at = GREATEST(excluded.last_accepted_at, cooldowns.last_accepted_at),
			decision_id = CASE WHEN excluded.last_accepted_at >= cooldowns.last_accepted_at
				THEN excluded.decision_id ELSE cooldowns.decision_id END
		WHERE cooldowns.decision_id IS NOT DISTINCT FROM $14
		RETURNING 1),
	link AS (
		UPDATE ledger SET seq = seq + 1, prev_hash = hash, hash = sha256(hash || $10::bytea)
		WHERE id = 1 AND EXISTS (SELECT FROM cas) RETURNING seq, prev_hash, hash)
	INSERT INTO decisions
	(id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record, seq, prev_hash, hash)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, link.seq, link.prev_hash, link.hash FROM link`

	// A cooldown never moves back in time, should a clock do so.
	upsertCooldown = `INSERT INTO cooldowns (project, pipeline, branch, last_accepted_at, decision_id)
	VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (project, pipeline, branch) DO UPDATE
	SET last_accepted_at = excluded.last_accepted_at, decision_id = excluded.decision_id
	WHERE excluded.last_accepted_at >= cooldowns.last_accepted_at`

	// Nor does a baseline. It is set by a decision recorded in the same
	// transaction: not by an acceptance whose compare-and-set failed.
	upsertBaseline = `INSERT INTO baselines (project, environment, evaluated_at, decision_id, baseline)
	SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT FROM decisions WHERE id = $4)
	ON CONFLICT (project, environment) DO UPDATE
	SET evaluated_at = excluded.evaluated_at, decision_id = excluded.decision_id, baseline = excluded.baseline
	WHERE excluded.evaluated_at >= baselines.evaluated_at`
)

// readCooldown is the dialect's ReadCooldown.
func (s *Store) readCooldown(ctx context.Context, key tollgate.CooldownKey) (at int64, holder *string, err error) {
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	err = row{s.pool.QueryRow(opCtx, readCooldown, key.Project, key.Pipeline, key.Branch)}.Scan(&at, &holder)
	return at, holder, err
}

// execBatch runs b and returns the first error of any of its statements.
func execBatch(ctx context.Context, conn batcher, b *pgx.Batch) error {
	_, err := execBatchTags(ctx, conn, b)
	return err
}

// execBatchTags runs b and returns the command tag of each statement, or
// the first error of any of them.
func execBatchTags(ctx context.Context, conn batcher, b *pgx.Batch) ([]pgconn.CommandTag, error) {
	br := conn.SendBatch(ctx, b)
	tags := make([]pgconn.CommandTag, 0, b.Len())
	var err error
	for range b.Len() {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err != nil {
			break // the server skipped the rest
		}
		tags = append(tags, tag)
	}
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	return tags, nil
}

type batcher interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

// lockID is the advisory lock of a cooldown key: a 64-bit FNV-1a hash of the
// key's fields, NUL-separated (a NUL cannot be in a PostgreSQL string, so no
// two keys give the same bytes). Every replica must compute the same number:
// changing this function is a change to the locking protocol, and replicas
// running the old and the new one together would not exclude each other.
func lockID(k tollgate.CooldownKey) int64 {
	h := fnv.New64a()
	h.Write([]byte("tollgate.cooldown\x00"))
	h.Write([]byte(k.Project))
	h.Write([]byte{0})
	h.Write([]byte(k.Pipeline))
	h.Write([]byte{0})
	h.Write([]byte(k.Branch))
	return int64(h.Sum64())
}

// Close implements tollgate.DecisionStore: it refuses new calls, commits
// every record already handed over and lets the calls under way finish,
// then closes the pool. Calling it again does nothing.
func (s *Store) Close() error {
	return s.Core.Close(func() error { s.pool.Close(); return nil })
}

// refused tells a record the database refuses (a constraint, a value it
// cannot store: retrying will not help) from a database that fails (no
// connection, a timeout, a server shutting down): "unavailable", which the
// server answers with 503.
func refused(err error) (code, hint string, ok bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "23"): // integrity_constraint_violation
			return tollgate.EInternal, " (is the ID already recorded?)", true
		case strings.HasPrefix(pgErr.Code, "22"): // data_exception: say, a NUL character
			return tollgate.EInvalid, " (the database cannot store this request)", true
		}
	}
	return "", "", false
}

// explain says when a statement failed for running out of the statement
// timeout.
func (s *Store) explain(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" { // query_canceled, here by statement_timeout
		return " (no answer within the statement timeout, " + s.timeout.String() + ")"
	}
	return ""
}
