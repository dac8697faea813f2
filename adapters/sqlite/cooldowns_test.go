package sqlite

import (
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/tollgate/tollgate"
)

// gate decides as the policy does on cooldown alone: accepted unless the
// key has an acceptance; it notes each cooldown it was given.
type gate struct {
	mu   sync.Mutex
	seen []tollgate.Cooldown
}

func (g *gate) decide(cd tollgate.Cooldown) (tollgate.Record, error) {
	g.mu.Lock()
	g.seen = append(g.seen, cd)
	g.mu.Unlock()
	if cd.LastAcceptedAt.IsZero() {
		return record(tollgate.Accepted, time.Now()), nil
	}
	return record(tollgate.Refused, time.Now()), nil
}

func branchKey(branch string) *tollgate.CooldownKey {
	return &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: branch}
}

func decideStatus(t *testing.T, s *Store, key *tollgate.CooldownKey, g *gate) tollgate.Status {
	t.Helper()
	rec, err := s.Decide(t.Context(), key, g.decide)
	if err != nil {
		t.Fatalf("Decide %s: %v", key.Branch, err)
	}
	return rec.Decision.Status
}

// otherProcess is a connection of its own to the store's file, as another
// process (`tollgate token create` beside serve) has.
func otherProcess(t *testing.T, dir string) *sql.DB {
	c, err := sqlite.NewConnector(dsn(filepath.Join(dir, FileName)))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// The cooldown of a key is read from memory: with the table's prepared
// read closed, keyed Decides still see their key's cooldown.
func TestCooldownReadFromMemory(t *testing.T) {
	s := openClosing(t, t.TempDir())
	if err := s.cooldown.Close(); err != nil {
		t.Fatal(err)
	}
	g := &gate{}
	if got := decideStatus(t, s, branchKey("main"), g); got != tollgate.Accepted {
		t.Fatalf("first decision %s, want accepted", got)
	}
	if got := decideStatus(t, s, branchKey("main"), g); got != tollgate.Refused {
		t.Fatalf("second decision %s, want refused by the cooldown", got)
	}
	if st := s.Stats(); st.CachedCooldowns != 1 || st.CooldownReloads != 0 {
		t.Errorf("stats %+v, want 1 cached cooldown, no reload", st)
	}
}

// The cache is filled from the table when the store opens.
func TestCooldownCacheLoadedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	g := &gate{}
	decideStatus(t, s, branchKey("main"), g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openClosing(t, dir)
	if st := s.Stats(); st.CachedCooldowns != 1 {
		t.Fatalf("stats %+v after reopening, want 1 cached cooldown", st)
	}
	if got := decideStatus(t, s, branchKey("main"), g); got != tollgate.Refused {
		t.Fatalf("after reopening: %s, want refused by the cooldown recorded before", got)
	}
}

// An acceptance another process recorded (here, a connection of its own)
// is not missed: the next group commit sees the file changed, loads the
// cache again, and the acceptance decided on the old cooldown is decided
// again — refused.
func TestCooldownCacheSeesAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	s := openClosing(t, dir)
	g := &gate{}
	decideStatus(t, s, branchKey("main"), g) // the cache and the data version are in use

	at := time.Now().Add(-time.Minute).UTC()
	if _, err := otherProcess(t, dir).ExecContext(t.Context(),
		`INSERT INTO cooldowns (project, pipeline, branch, last_accepted_at, decision_id) VALUES ('service-api', 'deploy-prod', 'release/1', ?, NULL)`,
		at.UnixNano()); err != nil {
		t.Fatal(err)
	}
	g = &gate{}
	if got := decideStatus(t, s, branchKey("release/1"), g); got != tollgate.Refused {
		t.Fatalf("decision %s, want refused by the cooldown the other process recorded", got)
	}
	if last := g.seen[len(g.seen)-1]; !last.LastAcceptedAt.Equal(at) {
		t.Errorf("decided on cooldown %v, want %v", last.LastAcceptedAt, at)
	}
	if st := s.Stats(); st.CooldownReloads != 1 || st.CachedCooldowns != 2 {
		t.Errorf("stats %+v, want 1 reload, 2 cached cooldowns", st)
	}
	// Recorded: the first acceptance (main), then the refusal alone: the
	// acceptance decided on the old cooldown was not written.
	page, err := s.Decisions(t.Context(), tollgate.DecisionFilter{})
	if err != nil || len(page.Records) != 2 || page.Records[0].Decision.Status != tollgate.Refused {
		t.Fatalf("recorded: %+v, %v; want the first acceptance and one refusal", page.Records, err)
	}
}

// What this process writes itself — decisions, tokens, through the writer
// connection — never makes the cache load again.
func TestCooldownCacheNoReloadOnOwnWrites(t *testing.T) {
	s := openClosing(t, t.TempDir())
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			g := &gate{}
			if _, err := s.Decide(t.Context(), branchKey("release/"+strconv.Itoa(i%10)), g.decide); err != nil {
				t.Error(err)
			}
			if _, err := s.Decisions(t.Context(), tollgate.DecisionFilter{}); err != nil {
				t.Error(err)
			}
		})
	}
	tok, _, hash, err := tollgate.NewToken(rand.Reader, "ci", []tollgate.Scope{tollgate.ScopeEvaluate}, time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(t.Context(), tok, hash); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if st := s.Stats(); st.CooldownReloads != 0 || st.CachedCooldowns != 10 {
		t.Errorf("stats %+v, want no reload, 10 cached cooldowns", st)
	}
}

// A commit that fails leaves the cache as it was: the acceptance it did
// not record starts no cooldown.
func TestCooldownCacheNotAheadOfAFailedCommit(t *testing.T) {
	s := openClosing(t, t.TempDir())
	first, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	dup := record(tollgate.Accepted, time.Now())
	dup.Decision.ID = first.Decision.ID // the database refuses it: the ID is recorded
	if _, err := s.Decide(t.Context(), branchKey("main"), fixed(dup)); tollgate.ErrorCode(err) != tollgate.EInternal {
		t.Fatalf("recording a duplicate ID: %v, want an %s error", err, tollgate.EInternal)
	}
	g := &gate{}
	if got := decideStatus(t, s, branchKey("main"), g); got != tollgate.Accepted {
		t.Fatalf("after the failed commit: %s (cooldown %v), want accepted: nothing was recorded for the key", got, g.seen)
	}
}

// The cache holds at most WithCooldownCache keys; past them it turns off
// and the cooldowns are read from the file, as right as before.
func TestCooldownCacheBounded(t *testing.T) {
	s := openClosing(t, t.TempDir(), WithCooldownCache(2))
	g := &gate{}
	for _, b := range []string{"release/1", "release/2"} {
		decideStatus(t, s, branchKey(b), g)
	}
	if st := s.Stats(); st.CachedCooldowns != 2 {
		t.Fatalf("stats %+v, want 2 cached cooldowns", st)
	}
	decideStatus(t, s, branchKey("release/3"), g)
	if st := s.Stats(); st.CachedCooldowns != 0 {
		t.Fatalf("stats %+v with a third key, want the cache off", st)
	}
	for _, b := range []string{"release/1", "release/3"} {
		if got := decideStatus(t, s, branchKey(b), g); got != tollgate.Refused {
			t.Errorf("%s again: %s, want refused by its cooldown", b, got)
		}
	}
	// Off, it costs the group commit nothing: no load of the table again.
	if st := s.Stats(); st.CooldownReloads != 0 {
		t.Errorf("stats %+v, want no reload", st)
	}
}

// A store whose table holds more keys than the cache may opens with the
// cache off, and reads the table.
func TestCooldownCacheOffAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	g := &gate{}
	for _, b := range []string{"release/1", "release/2", "release/3"} {
		decideStatus(t, s, branchKey(b), g)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openClosing(t, dir, WithCooldownCache(2))
	if got := decideStatus(t, s, branchKey("release/2"), g); got != tollgate.Refused {
		t.Errorf("release/2 after reopening: %s, want refused by its cooldown", got)
	}
	if got := decideStatus(t, s, branchKey("release/4"), g); got != tollgate.Accepted {
		t.Errorf("release/4: %s, want accepted", got)
	}
	if st := s.Stats(); st.CachedCooldowns != 0 || st.CooldownReloads != 0 {
		t.Errorf("stats %+v, want the cache off, no reload", st)
	}
}
