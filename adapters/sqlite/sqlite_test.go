package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/storetest"
	"github.com/tollgate/tollgate/migrations"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() tollgate.DecisionStore {
		dir := t.TempDir()
		return func() tollgate.DecisionStore { return mustOpen(t, dir) }
	})
}

func mustOpen(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	return storetest.MustOpen(t, func() (*Store, error) { return Open(context.Background(), dir, opts...) })
}

func openClosing(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	return storetest.OpenClosing(t, func() (*Store, error) { return Open(context.Background(), dir, opts...) })
}

// record and fixed are the conformance suite's: a new decision, and the
// decide function that records it.
var (
	record = storetest.Record
	fixed  = storetest.Fixed
)

func TestOpenCreatesTheDirectoryAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "does", "not exist?#yet")
	openClosing(t, dir)
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("database file: %v", err)
	}
	if !info.Mode().IsRegular() {
		t.Fatalf("%s is not a regular file", FileName)
	}
}

func TestOpenFailsOnAFileInTheWay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), file); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("Open on a file: %v, want a data directory error", err)
	}
	if _, err := Open(t.Context(), ""); err == nil {
		t.Fatal("Open with no directory: no error")
	}
}

func TestPragmas(t *testing.T) {
	s := openClosing(t, t.TempDir())
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": "5000",
	} {
		// Every pooled connection must have them, so ask several at once.
		conns := make([]*sql.Conn, 3)
		for i := range conns {
			c, err := s.db.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			conns[i] = c
		}
		for i, c := range conns {
			var got string
			if err := c.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(got, want) {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, pragma, got, want)
			}
			c.Close()
		}
	}
	// WAL is a property of the file: a plain connection sees it too.
	plain, err := sqlite.NewConnector(filepath.Join(filepath.Dir(s.path), FileName))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(plain)
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode of the file: %q, %v; want wal", mode, err)
	}
}

func TestMigrationsAreIdempotentOnReopen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	rec := record(tollgate.Accepted, time.Now())
	if _, err := s.Decide(t.Context(), nil, fixed(rec)); err != nil {
		t.Fatal(err)
	}
	versions := func(s *Store) int {
		var n int
		if err := s.db.QueryRow(`SELECT count(*) FROM goose_db_version`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := versions(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s = mustOpen(t, dir)
		if got := versions(s); got != before {
			t.Fatalf("reopening changed the version table from %d rows to %d", before, got)
		}
		applied, err := migrations.Apply(t.Context(), s.db, migrations.SQLite)
		if err != nil || len(applied) != 0 {
			t.Fatalf("Apply on an up-to-date store: applied %q, err %v", applied, err)
		}
		if _, err := s.Decision(t.Context(), rec.Decision.ID); err != nil {
			t.Fatalf("record lost on reopen: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDecideAfterCloseIsUnavailable(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	called := false
	_, err := s.Decide(t.Context(), &tollgate.CooldownKey{Project: "p"}, func(tollgate.Cooldown) (tollgate.Record, error) {
		called = true
		return record(tollgate.Accepted, time.Now()), nil
	})
	if code := tollgate.ErrorCode(err); code != tollgate.EUnavailable {
		t.Fatalf("Decide after Close: %v (code %s), want %s", err, code, tollgate.EUnavailable)
	}
	if called {
		t.Fatal("decide ran on a closed store")
	}
	for name, err := range map[string]error{
		"Ping":      s.Ping(t.Context()),
		"Decision":  func() error { _, err := s.Decision(t.Context(), "x"); return err }(),
		"Decisions": func() error { _, err := s.Decisions(t.Context(), tollgate.DecisionFilter{}); return err }(),
		"Cooldown":  func() error { _, err := s.Cooldown(t.Context(), tollgate.CooldownKey{}); return err }(),
	} {
		if code := tollgate.ErrorCode(err); code != tollgate.EUnavailable {
			t.Errorf("%s after Close: %v (code %s), want %s", name, err, code, tollgate.EUnavailable)
		}
	}
}

// Writes batch up: concurrent Decides share transactions, and all land;
// WithMaxBatch(1) turns group commit off.
func TestGroupCommitBatches(t *testing.T) {
	storetest.GroupCommit(t, openClosing(t, t.TempDir()))

	one := openClosing(t, t.TempDir(), WithMaxBatch(1))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := one.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := one.Stats(); st.Commits != 20 || st.Written != 20 {
		t.Fatalf("WithMaxBatch(1) stats %+v, want 20 commits of one", st)
	}
}

// A Decide given up while another connection holds the file's write lock
// (the writer waits in BEGIN) keeps its key locked until its write settles.
func TestCancelWhileCommitting(t *testing.T) {
	dir := t.TempDir()
	storetest.CancelWhileCommitting(t, openClosing(t, dir), func() func() {
		blocker, err := sqlite.NewConnector(dsn(filepath.Join(dir, FileName)))
		if err != nil {
			t.Fatal(err)
		}
		bdb := sql.OpenDB(blocker)
		t.Cleanup(func() { bdb.Close() })
		tx, err := bdb.BeginTx(t.Context(), nil) // _txlock=immediate: takes the write lock now
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestBadCursorMessage(t *testing.T) {
	s := openClosing(t, t.TempDir())
	_, err := s.Decisions(t.Context(), tollgate.DecisionFilter{Cursor: "nope"})
	if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "next_cursor") {
		t.Fatalf("bad cursor: %v, want an %s error that says what to send", err, tollgate.EInvalid)
	}
	if got, err := storekit.DecodeCursor(storekit.EncodeCursor("0190-abc")); err != nil || got != "0190-abc" {
		t.Fatalf("cursor round trip: %q, %v", got, err)
	}
}

// The history queries must walk an index, not the table, for every filter
// the API offers.
func TestQueriesUseIndexes(t *testing.T) {
	s := openClosing(t, t.TempDir())
	for _, f := range []tollgate.DecisionFilter{
		{},
		{Project: "p"},
		{Project: "p", Pipeline: "d"},
		{Project: "p", Pipeline: "d", Branch: "b"},
		{Project: "p", Status: tollgate.Refused},
		{Status: tollgate.Refused},
		{Since: time.Now()},
		{Cursor: storekit.EncodeCursor("x")},
		{Project: "p", Pipeline: "d", Branch: "b", Status: tollgate.Accepted, Since: time.Now(), Until: time.Now(), Cursor: storekit.EncodeCursor("x")},
	} {
		query, args, err := storekit.ListQuery(f, 50)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if step == "SCAN decisions" || strings.Contains(step, "USE TEMP B-TREE") {
				t.Errorf("filter %+v: plan %q scans the table or sorts", f, plan)
			}
		}
		t.Logf("filter %+v: %q", f, plan)
	}
}

// ClaimJobs walks the open jobs by when they are due (jobs_due) and finds
// the oldest of a queue on its index: thousands of waiting jobs cost
// nothing while none is due, and nothing is sorted.
func TestClaimJobsUsesIndexes(t *testing.T) {
	s := openClosing(t, t.TempDir())
	plan := queryPlan(t, s, storekit.ClaimQuery, []any{1, 1, 5})
	for _, step := range plan {
		if strings.HasPrefix(step, "SCAN j") || strings.HasPrefix(step, "SCAN o") || strings.Contains(step, "TEMP B-TREE") {
			t.Errorf("plan %q scans the jobs or sorts", plan)
		}
	}
	if !slices.ContainsFunc(plan, func(s string) bool { return strings.Contains(s, "USING INDEX jobs_due") }) ||
		!slices.ContainsFunc(plan, func(s string) bool { return strings.Contains(s, "USING INDEX jobs_queue") }) {
		t.Errorf("plan %q does not use jobs_due and jobs_queue", plan)
	}
	t.Logf("%q", plan)
}
