package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/pgtest"
)

// EnvVolume sets how many decisions TestQueriesUseIndexes generates: 200,000
// by default (a few seconds), 1000000 to measure at a million (about 25 s on
// a two-core machine):
//
//	TOLLGATE_TEST_DECISIONS=1000000 go test -run QueriesUseIndexes -v ./adapters/postgres/
const EnvVolume = "TOLLGATE_TEST_DECISIONS"

// generate writes n decisions, one every 30 s from 2026-01-01, over 50
// projects, 3 pipelines, 5 branches, 30% refused, with ids that sort in time
// order as UUIDv7 strings do. The secondary indexes are dropped while it
// loads and rebuilt after (as they are defined by the migrations, whatever
// they become), which is three times faster than loading through them.
func generate(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	for _, q := range []string{"SET statement_timeout = 0", "SET maintenance_work_mem = '256MB'"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE tablename = 'decisions' AND indexname NOT IN (SELECT conname FROM pg_constraint)`)
	if err != nil {
		t.Fatal(err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	if rows.Close(); rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for _, name := range names {
		if _, err := conn.Exec(ctx, "DROP INDEX "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `
INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, seq, prev_hash, hash, record)
SELECT id, at, project, pipeline, branch, 'production', status, 'rev-1', i, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'),
       ('{"decision":{"decision_id":"' || id || '","status":"' || status || '","reasons":[],"warnings":[],"project":"' || project ||
        '","pipeline":"' || pipeline || '","branch":"' || branch || '","environment":"production","bundle_revision":"rev-1","evaluated_at":"' ||
        to_char(to_timestamp(at / 1000000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '"},' ||
        '"request":{"repository":"org/' || project || '","branch":"' || branch || '","pipeline":"' || pipeline || '","metadata":{"environment":"production"}},' ||
        '"context":{"now":"2026-01-01T00:00:00Z","licence":{"status":"valid"},"cooldown":{}}}')::jsonb
FROM (
  SELECT i, lpad(to_hex(i), 12, '0') || '-7000-8000-000000000000' AS id,
         1767225600000000000 + i * 30000000000 AS at,
         'project-' || (i % 50) AS project,
         (ARRAY['deploy-prod', 'deploy-staging', 'hotfix-prod'])[1 + i % 3] AS pipeline,
         (ARRAY['main', 'develop', 'release/1', 'release/2', 'feature/x'])[1 + (i / 7) % 5] AS branch,
         CASE WHEN (i / 11) % 10 < 3 THEN 'refused' ELSE 'accepted' END AS status
  FROM generate_series(1, $1::bigint) AS i
) g`, n); err != nil {
		t.Fatal(err)
	}
	for _, def := range defs {
		if _, err := conn.Exec(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	// The rows have their place in the ledger's chain, but placeholder
	// hashes: these tests measure queries, not the chain.
	if _, err := conn.Exec(ctx, `UPDATE ledger SET seq = $1`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE decisions"); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d decisions in %s", n, time.Since(start).Round(time.Millisecond))
}

// planNodes lists the node types of an EXPLAIN (FORMAT JSON) plan, with the
// index each index scan uses.
func planNodes(plan any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			if nt, ok := v["Node Type"].(string); ok {
				if idx, ok := v["Index Name"].(string); ok {
					nt += " " + idx
				}
				out = append(out, nt)
			}
			for _, k := range []string{"Plan", "Plans"} {
				if c, ok := v[k]; ok {
					walk(c)
				}
			}
		}
	}
	walk(plan)
	return out
}

// The history queries walk an index, never the table, for every filter the
// API offers, and stay fast with a large history: the plans and timings are
// logged (go test -v) for each filter.
func TestQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	n := 200_000
	if v := os.Getenv(EnvVolume); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			t.Fatalf("%s=%q: want a number of decisions, at least 1000", EnvVolume, v)
		}
	}
	url := pgtest.Shared(t).NewDatabase(t)
	s := openClosing(t, url)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	generate(t, conn, n)

	const step = 30 * time.Second
	first := time.Unix(0, 1767225600000000000+int64(step))
	at := func(i int) time.Time { return first.Add(time.Duration(i-1) * step) }
	idAt := func(i int) string { return fmt.Sprintf("%012x-7000-8000-000000000000", i) }
	deep := storekit.EncodeCursor(idAt(n / 10)) // 90% of the history newer than it

	for _, tc := range []struct {
		name string
		f    tollgate.DecisionFilter
	}{
		{"everything", tollgate.DecisionFilter{}},
		{"project", tollgate.DecisionFilter{Project: "project-7"}},
		{"project+pipeline", tollgate.DecisionFilter{Project: "project-7", Pipeline: "deploy-prod"}},
		{"project+pipeline+branch", tollgate.DecisionFilter{Project: "project-7", Pipeline: "deploy-prod", Branch: "main"}},
		{"status", tollgate.DecisionFilter{Status: tollgate.Refused}},
		{"project+status", tollgate.DecisionFilter{Project: "project-7", Status: tollgate.Refused}},
		{"all filters", tollgate.DecisionFilter{Project: "project-7", Pipeline: "deploy-prod", Branch: "main", Status: tollgate.Accepted}},
		{"unknown project", tollgate.DecisionFilter{Project: "no-such-project"}},
		{"branch alone", tollgate.DecisionFilter{Branch: "release/1"}},
		// No index leads with branch or pipeline: a value that matches
		// nothing walks the whole primary key. The worst case, logged.
		{"unknown branch alone", tollgate.DecisionFilter{Branch: "no-such-branch"}},
		{"since last hour", tollgate.DecisionFilter{Since: at(n).Add(-time.Hour)}},
		{"old day", tollgate.DecisionFilter{Since: at(n / 4), Until: at(n / 4).Add(24 * time.Hour)}},
		{"project, old day", tollgate.DecisionFilter{Project: "project-7", Since: at(n / 4), Until: at(n / 4).Add(24 * time.Hour)}},
		{"deep cursor", tollgate.DecisionFilter{Cursor: deep}},
		{"project, deep cursor", tollgate.DecisionFilter{Project: "project-7", Cursor: deep}},
		{"project+pipeline+branch, deep cursor", tollgate.DecisionFilter{Project: "project-7", Pipeline: "deploy-prod", Branch: "main", Cursor: deep}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			query, args, err := storekit.ListQuery(tc.f, tollgate.DefaultPageSize)
			if err != nil {
				t.Fatal(err)
			}
			query = storekit.Rebind(query)
			var raw []byte
			if err := conn.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+query, args...).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			var plan any
			if err := json.Unmarshal(raw, &plan); err != nil {
				t.Fatal(err)
			}
			nodes := planNodes(plan)
			if slices.ContainsFunc(nodes, func(n string) bool { return strings.HasPrefix(n, "Seq Scan") }) {
				t.Errorf("plan %q scans the table", nodes)
			}
			// The median of a few runs through the store: query and decoding.
			var times []time.Duration
			var got int
			for range 5 {
				start := time.Now()
				page, err := s.Decisions(t.Context(), tc.f)
				if err != nil {
					t.Fatal(err)
				}
				times = append(times, time.Since(start))
				got = len(page.Records)
			}
			slices.Sort(times)
			t.Logf("%d decisions: %d on the page in %s (median of 5); plan %q", n, got, times[2].Round(10*time.Microsecond), nodes)
		})
	}
}
