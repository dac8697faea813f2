package postgres

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// Replicas starting together on a fresh database migrate it once: one takes
// the migration lock, the others wait and find nothing left to do.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-ready
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stores[i], errs[i] = Open(ctx, url)
		})
	}
	start := time.Now()
	close(ready)
	wg.Wait()
	t.Logf("%d concurrent Opens of a fresh database took %s", n, time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var applied, distinct int
	if err := stores[0].pool.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != distinct || applied == 0 {
		t.Fatalf("goose_db_version holds %d applied rows for %d versions: a migration ran twice", applied, distinct)
	}
	for i, s := range stores {
		if _, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	again, err := Migrate(t.Context(), url)
	if err != nil || len(again) != 0 {
		t.Fatalf("Migrate on a current schema: applied %q, %v; want nothing", again, err)
	}
}

func TestMigrateReportsWhatItApplied(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	applied, err := Migrate(t.Context(), url)
	if err != nil || len(applied) == 0 || applied[0] != "00001_decisions.sql" {
		t.Fatalf("Migrate on an empty database: %q, %v; want 00001_decisions.sql first", applied, err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("malformed URL", func(t *testing.T) {
		_, err := Open(t.Context(), "postgres://tollgate:s3cret@[::1/x")
		assertCode(t, "Open with a malformed URL", err, tollgate.EInvalid)
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("the error shows the password: %v", err)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		start := time.Now()
		_, err := Open(t.Context(), "postgres://tollgate:s3cret@127.0.0.1:1/tollgate?sslmode=disable")
		assertCode(t, "Open with no server", err, tollgate.EUnavailable)
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("the error shows the password: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Open took %s to fail", took)
		}
	})
	t.Run("no such database", func(t *testing.T) {
		u, err := url.Parse(pgtest.Shared(t).URL())
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/no_such_database"
		_, err = Open(t.Context(), u.String())
		assertCode(t, "Open of a missing database", err, tollgate.EUnavailable)
		if !strings.Contains(err.Error(), "no_such_database") {
			t.Fatalf("error %v does not name the database", err)
		}
	})
}

// serve's start: the database is not there yet. OpenWithRetry logs each
// failure and returns the store once the database answers.
func TestOpenWithRetryWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	srv.Stop(t)

	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	type result struct {
		s   *Store
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := OpenWithRetry(t.Context(), url, logger)
		done <- result{s, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("OpenWithRetry returned while the database was down: %v", r.err)
	default:
	}
	srv.Restart(t)
	r := <-done
	if r.err != nil {
		t.Fatalf("OpenWithRetry: %v", r.err)
	}
	defer r.s.Close()
	failures := strings.Count(logs.String(), "decision store unreachable")
	t.Logf("connected %s after start, %d failures logged", time.Since(start).Round(time.Millisecond), failures)
	if failures < 3 {
		t.Fatalf("%d failures logged in 1.5 s of backoff from 100 ms, want at least 3:\n%s", failures, logs.String())
	}
	if _, err := r.s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
		t.Fatal(err)
	}
}

func TestOpenWithRetryGivesUp(t *testing.T) {
	t.Run("when ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		_, err := OpenWithRetry(ctx, "postgres://127.0.0.1:1/tollgate?sslmode=disable", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("OpenWithRetry with an ending context: %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("on a malformed URL, at once", func(t *testing.T) {
		start := time.Now()
		_, err := OpenWithRetry(t.Context(), "postgres://[::1/x", nil)
		assertCode(t, "OpenWithRetry with a malformed URL", err, tollgate.EInvalid)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("took %s: a malformed URL must not be retried", took)
		}
	})
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Options the URL carries are kept unless an Option says otherwise; the
// statement timeout is always the store's.
func TestPoolConfig(t *testing.T) {
	cfg, err := poolConfig("postgres://u@db.example:5433/tollgate?pool_max_conns=3&application_name=gate-a&statement_timeout=60000", defaults())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 3 {
		t.Errorf("MaxConns %d, want the URL's 3", cfg.MaxConns)
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] != "gate-a" || rp["statement_timeout"] != "5000" || rp["idle_in_transaction_session_timeout"] != "5000" {
		t.Errorf("runtime params %v", rp)
	}
	if got := describe(cfg.ConnConfig); got != "postgres db.example:5433/tollgate" {
		t.Errorf("describe = %q", got)
	}
	cfg, err = poolConfig("postgres://u@db.example/tollgate", options{statementTimeout: 1500 * time.Millisecond, maxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 20 || cfg.ConnConfig.RuntimeParams["statement_timeout"] != "1500" || cfg.ConnConfig.RuntimeParams["application_name"] != "tollgate" {
		t.Errorf("MaxConns %d, runtime params %v", cfg.MaxConns, cfg.ConnConfig.RuntimeParams)
	}
	if cfg.MaxConns < 2 || cfg.ConnConfig.ConnectTimeout != 1500*time.Millisecond {
		t.Errorf("connect timeout %s, want the statement timeout", cfg.ConnConfig.ConnectTimeout)
	}
}

// The lock of a key is part of the protocol between replicas: every version
// must compute the same number, or a rolling upgrade would let two replicas
// of different versions pass one cooldown.
func TestLockIDIsStable(t *testing.T) {
	for _, tc := range []struct {
		key  tollgate.CooldownKey
		want int64
	}{
		{tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}, -5036950920440445064},
		{tollgate.CooldownKey{}, -6193815828942355874},
	} {
		if got := lockID(tc.key); got != tc.want {
			t.Errorf("lockID(%+v) = %d, want %d", tc.key, got, tc.want)
		}
	}
	a := lockID(tollgate.CooldownKey{Project: "a/b", Pipeline: "c", Branch: "d"})
	b := lockID(tollgate.CooldownKey{Project: "a", Pipeline: "b/c", Branch: "d"})
	if a == b {
		t.Fatal("keys that differ only in where a field ends share a lock")
	}
}

// Close waits for the keyed Decides under way, which commit; later ones are
// refused as unavailable.
func TestCloseWaitsForKeyedDecides(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := mustOpen(t, url)
	holding, release := make(chan struct{}), make(chan struct{})
	rec := record(tollgate.Accepted, time.Now())
	done := make(chan error, 1)
	go func() {
		_, err := s.Decide(t.Context(), newKey("main"), func(tollgate.Cooldown) (tollgate.Record, error) {
			close(holding)
			<-release
			return rec, nil
		})
		done <- err
	}()
	<-holding
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a Decide was under way")
	case <-time.After(100 * time.Millisecond):
	}
	_, err := s.Decide(t.Context(), newKey("dev"), fixed(record(tollgate.Accepted, time.Now())))
	assertCode(t, "Decide while closing", err, tollgate.EUnavailable)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the Decide under way at Close: %v", err)
	}
	<-closed
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	other := openClosing(t, url)
	if _, err := other.Decision(t.Context(), rec.Decision.ID); err != nil {
		t.Fatalf("the decision committed during Close: %v", err)
	}
}

// A record the database refuses is told from a database that fails: a
// duplicate ID is EInternal, a value JSONB cannot hold EInvalid, neither
// recorded. (That a refused record fails alone, not its batch, is
// storekit's TestRefusedWriteFailsAlone.)
func TestRefusedRecords(t *testing.T) {
	t.Parallel()
	s := openClosing(t, pgtest.Shared(t).NewDatabase(t))
	existing := record(tollgate.Accepted, time.Now())
	if _, err := s.Decide(t.Context(), nil, fixed(existing)); err != nil {
		t.Fatal(err)
	}
	again := record(tollgate.Accepted, time.Now())
	again.Decision.ID = existing.Decision.ID
	if _, err := s.Decide(t.Context(), nil, fixed(again)); tollgate.ErrorCode(err) != tollgate.EInternal {
		t.Errorf("duplicate ID: %v, want an %s error", err, tollgate.EInternal)
	}
	nul := record(tollgate.Accepted, time.Now())
	nul.Request.Metadata.RunID = "nul\x00byte" // JSONB cannot hold it
	if _, err := s.Decide(t.Context(), nil, fixed(nul)); tollgate.ErrorCode(err) != tollgate.EInvalid {
		t.Errorf("NUL character: %v, want an %s error", err, tollgate.EInvalid)
	}
	if _, err := s.Decision(t.Context(), nul.Decision.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Errorf("the NUL record: %v, want not found", err)
	}
}

// Concurrent Decides share transactions, and all land.
func TestGroupCommitBatches(t *testing.T) {
	t.Parallel()
	storetest.GroupCommit(t, openClosing(t, pgtest.Shared(t).NewDatabase(t)))
}

// The records are stored as the schema says: the columns the history is
// filtered on, times in unix nanoseconds, the record as JSONB.
func TestStoredColumns(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	s := openClosing(t, url)
	at := time.Date(2026, 3, 2, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	rec := record(tollgate.Accepted, at)
	if _, err := s.Decide(t.Context(), newKey("main"), fixed(rec)); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var (
		evaluatedAt, lastAccepted int64
		status, decisionID        string
		kind                      string
	)
	if err := conn.QueryRow(t.Context(), `SELECT d.evaluated_at, d.status, jsonb_typeof(d.record), c.last_accepted_at, c.decision_id
		FROM decisions d JOIN cooldowns c USING (project, pipeline, branch)`).Scan(&evaluatedAt, &status, &kind, &lastAccepted, &decisionID); err != nil {
		t.Fatal(err)
	}
	if evaluatedAt != at.UnixNano() || lastAccepted != at.UnixNano() || status != "accepted" || kind != "object" || decisionID != rec.Decision.ID {
		t.Fatalf("stored %d %s %s %d %s", evaluatedAt, status, kind, lastAccepted, decisionID)
	}
}
