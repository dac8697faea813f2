package test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver of the tampering step, as the store uses it

	"github.com/tollgate/tollgate/adapters/pgtest"
)

// TestReplayAndImpact records decisions under two bundle revisions, then,
// with the real binary: replays them from the store and through the server
// (identical), runs an impact analysis of a candidate that tightens the
// allowed branches (exactly the expected decisions change), and replays a
// tampered record (different) and one whose bundle is gone (error).
func TestReplayAndImpact(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			testReplayAndImpact(t, store)
		})
	}
}

func testReplayAndImpact(t *testing.T, store string) {
	dataDir := t.TempDir()
	var serverArgs, storeArgs []string
	var databaseURL string
	if store == "postgres" {
		databaseURL = pgtest.Start(t).NewDatabase(t)
		serverArgs = []string{"--database-url", databaseURL}
		storeArgs = serverArgs
	} else {
		storeArgs = []string{"--data-dir", dataDir}
	}
	s := startServer(t, serverOptions{dataDir: dataDir, args: serverArgs, auth: true})
	auditor := createToken(t, dataDir, "auditor", "read", databaseFlag(serverArgs)...)

	staging := func(branch string) request { return req("org/service-api", branch, "deploy-staging", envStaging) }
	changes := map[string]bool{} // the decisions the candidate must change
	var ids []string
	for _, branch := range []string{"main", "release/1.0", "develop", "release/2.0"} {
		d := s.evaluate(t, staging(branch))
		ids = append(ids, d.ID)
		if strings.HasPrefix(branch, "release/") {
			changes[d.ID] = true
		}
	}
	first := s.evaluate(t, staging("main")).BundleRevision

	// The bundle directory changes: develop is allowed from now on.
	projects := readProjects(t, s.bundle)
	projects["service-api"].(map[string]any)["allowed_branches"] = []string{"main", "release/*", "develop"}
	writeJSON(t, projectsPath(s.bundle), projects)
	var develop decision
	eventually(t, 10*time.Second, "the edited bundle accepts develop", func() bool {
		develop = s.evaluate(t, staging("develop"))
		return develop.Status == "accepted"
	})
	if develop.BundleRevision == first {
		t.Fatal("the edit kept the revision")
	}
	changes[develop.ID] = true
	ids = append(ids, develop.ID)

	// Every decision replays identically, from the store, with the bundle
	// it was made with, although the directory holds another one now.
	for _, id := range ids {
		code, stdout, stderr := runTollgate(t, nil, nil, append([]string{"replay", "--decision", id}, storeArgs...)...)
		if code != 0 || !strings.Contains(stdout, "identical: replayed") {
			t.Fatalf("replay %s: exit %d\n%s%s", id, code, stdout, stderr)
		}
	}
	code, stdout, stderr := runTollgate(t, nil, nil, "replay", "--decision", ids[2], "--json", "--server", s.cliBase(t), "--token", auditor)
	var replay struct {
		Identical bool   `json:"identical"`
		Revision  string `json:"bundle_revision"`
		Replayed  struct {
			Status string `json:"status"`
		} `json:"replayed"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &replay) != nil || !replay.Identical || replay.Revision != first || replay.Replayed.Status != "refused" {
		t.Fatalf("replay of the first develop decision through the server: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runTollgate(t, nil, nil, append([]string{"replay", "--decision", "01a2095f-e559-7235-b13f-2a4376cd92a6"}, storeArgs...)...)
	if code != 2 || !strings.Contains(stderr, "not found") {
		t.Fatalf("replay of an unknown decision: exit %d, %s", code, stderr)
	}

	// Impact of a candidate that allows main only: the release decisions
	// and the accepted develop one change, nothing else.
	candidate := filepath.Join(t.TempDir(), "candidate")
	if err := os.CopyFS(candidate, os.DirFS(s.bundle)); err != nil {
		t.Fatal(err)
	}
	projects["service-api"].(map[string]any)["allowed_branches"] = []string{"main"}
	writeJSON(t, projectsPath(candidate), projects)
	impactArgs := append([]string{"impact", "--bundle", candidate, "--examples", "10", "--json", "--fail-on-change"}, storeArgs...)
	code, stdout, stderr = runTollgate(t, nil, nil, impactArgs...)
	var impact struct {
		Evaluated, Changed int
		Groups             []struct {
			From, To       string
			Added, Removed []string
			Count          int
			Examples       []string
		}
	}
	if code != 1 || json.Unmarshal([]byte(stdout), &impact) != nil {
		t.Fatalf("impact --fail-on-change: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	total := s.countDecisions(t)
	if impact.Evaluated != total || impact.Changed != len(changes) || len(impact.Groups) != 1 || !strings.Contains(stderr, "decisions re-evaluated") {
		t.Fatalf("impact: %+v of %d decisions, want %d changed in one group; stderr %s", impact, total, len(changes), stderr)
	}
	g := impact.Groups[0]
	slices.Sort(g.Examples)
	want := slices.Sorted(func(yield func(string) bool) {
		for id := range changes {
			if !yield(id) {
				return
			}
		}
	})
	if g.From != "accepted" || g.To != "refused" || !slices.Equal(g.Added, []string{"branch_not_allowed"}) || len(g.Removed) != 0 || !slices.Equal(g.Examples, want) {
		t.Fatalf("impact group %+v, want accepted → refused +branch_not_allowed for %v", g, want)
	}
	code, stdout, _ = runTollgate(t, nil, nil, append([]string{"impact", "--bundle", candidate, "--limit", "2"}, storeArgs...)...)
	if code != 0 || !strings.Contains(stdout, "of 2 recorded decisions would change (the newest") {
		t.Fatalf("impact --limit 2 without --fail-on-change: exit %d\n%s", code, stdout)
	}
	// The active bundle changes none of the decisions made with it.
	code, stdout, _ = runTollgate(t, nil, nil, append([]string{"impact", "--bundle", s.bundle, "--fail-on-change",
		"--since", develop.EvaluatedAt.Format(time.RFC3339Nano)}, storeArgs...)...)
	if code != 0 || !strings.Contains(stdout, ": 0 of 1 recorded decisions would change") {
		t.Fatalf("impact of the active bundle since it was activated: exit %d\n%s", code, stdout)
	}

	// A tampered record replays differently; a record whose bundle is gone
	// cannot be replayed.
	s.stop(t)
	const reasons = `[{"code": "freeze_active", "message": "tampered"}]`
	execSQL(t, store, dataDir, databaseURL,
		`UPDATE decisions SET status = 'refused', record = jsonb_set(jsonb_set(record, '{decision,status}', '"refused"'), '{decision,reasons}', $1::jsonb) WHERE id = $2`,
		`UPDATE decisions SET status = 'refused', record = json_set(record, '$.decision.status', 'refused', '$.decision.reasons', json(?)) WHERE id = ?`,
		reasons, ids[0])
	code, stdout, _ = runTollgate(t, nil, nil, append([]string{"replay", "--decision", ids[0]}, storeArgs...)...)
	if code != 1 || !strings.Contains(stdout, "DIFFERENT") || !strings.Contains(stdout, "status:\n    recorded \"refused\"\n    replayed \"accepted\"") {
		t.Fatalf("replay of a tampered record: exit %d, want 1\n%s", code, stdout)
	}
	execSQL(t, store, dataDir, databaseURL, `DELETE FROM bundles WHERE revision = $1`, `DELETE FROM bundles WHERE revision = ?`, first)
	code, _, stderr = runTollgate(t, nil, nil, append([]string{"replay", "--decision", ids[1]}, storeArgs...)...)
	if code != 2 || !strings.Contains(stderr, "not in the store") {
		t.Fatalf("replay without its bundle: exit %d, want 2: %s", code, stderr)
	}
}

// execSQL changes the store behind tollgate's back, as an attacker or a
// careless operator would: pgQuery on PostgreSQL, sqliteQuery on SQLite.
func execSQL(t *testing.T, store, dataDir, databaseURL, pgQuery, sqliteQuery string, args ...any) {
	t.Helper()
	if store == "postgres" {
		conn, err := pgx.Connect(context.Background(), databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), pgQuery, args...); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(sqliteQuery, args...); err != nil {
		t.Fatal(err)
	}
}

// countDecisions is the number of decisions in the history.
func (s *server) countDecisions(t *testing.T) int {
	t.Helper()
	code, raw := s.get(t, "/v1/decisions?limit=500")
	if code != http.StatusOK {
		t.Fatalf("list decisions: %d %s", code, raw)
	}
	return len(decode[struct{ Decisions []json.RawMessage }](t, raw).Decisions)
}
