package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the driver adapters/sqlite uses, for seeding

	"github.com/tollgate/tollgate/adapters/sqlite"
)

// benchBundle copies the shipped bundle (its Rego and tests) to dir with a
// configuration of its own: n projects "project-00000"… (repository
// org/project-NNNNN, pipeline deploy-prod with a 30-minute cooldown,
// branches main and release/*, production allowed), and a global policy
// with every rule in play but none refusing: a freeze in the past and one
// in the future, a production window on every day from 00:00 to 23:59,
// weekends allowed. A request of load.lua is then accepted unless its
// cooldown says otherwise, after every rule has been evaluated.
func benchBundle(root, dir string, n int) error {
	return writeBundle(root, dir, benchRegistry(n), benchGlobalPolicy(0))
}

// minimalBundle writes the minimal policy (test/bench/minimal, for stock
// OPA) to dir with the configuration benchBundle gives tollgate's bundle.
func minimalBundle(root, dir string, n int) error {
	return writeMinimal(root, dir, benchRegistry(n), benchGlobalPolicy(0))
}

// writeBundle copies the shipped bundle's Rego to dir with the registry
// projects and the global policy global.
func writeBundle(root, dir string, projects, global map[string]any) error {
	if err := copyPolicy(filepath.Join(root, "bundles", "tollgate"), dir); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "config", "global_policy", "data.json"), global); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "config", "projects", "data.json"), projects)
}

// writeMinimal copies the minimal policy to dir with the same configuration
// as writeBundle: the global policy's file as is, and the registry keyed
// by repository (data.config.repositories), the shape a stock OPA user
// gives data so that a request finds its project in one lookup.
func writeMinimal(root, dir string, projects, global map[string]any) error {
	if err := copyPolicy(filepath.Join(root, "test", "bench", "minimal"), dir); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "config", "global_policy", "data.json"), global); err != nil {
		return err
	}
	byRepository := map[string]any{}
	for _, project := range projects {
		for _, repo := range project.(map[string]any)["repositories"].([]string) {
			byRepository[repo] = project
		}
	}
	return writeJSON(filepath.Join(dir, "config", "repositories", "data.json"), byRepository)
}

// copyPolicy copies the policy of src to dir, with its directories: its
// .rego files and its data files but the configuration's (config/, which
// the harness writes), such as the message catalogues.
func copyPolicy(src, dir string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if ext := filepath.Ext(path); (ext != ".rego" && ext != ".json") || strings.HasPrefix(rel, "config"+string(filepath.Separator)) {
			return nil // the configuration is written apart
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// benchRegistry is the harness's n projects, as config/projects/data.json.
func benchRegistry(n int) map[string]any {
	projects := make(map[string]any, n)
	for i := range n {
		name := fmt.Sprintf("project-%05d", i)
		projects[name] = map[string]any{
			"repositories":     []string{"org/" + name},
			"allowed_branches": []string{"main", "release/*"},
			"pipelines": map[string]any{
				"deploy-prod":    map[string]any{"type": "deploy", "cooldown_minutes": 30},
				"deploy-staging": map[string]any{"type": "deploy"},
			},
			"environments": map[string]any{
				"production": map[string]any{"pipeline_types": []string{"deploy", "hotfix"}},
				"staging":    map[string]any{"pipeline_types": []string{"deploy"}},
			},
		}
	}
	return projects
}

// writeGlobalPolicy writes the bench global policy of generation to the
// bundle in dir (the reload load).
func writeGlobalPolicy(dir string, generation int) error {
	return writeJSON(filepath.Join(dir, "config", "global_policy", "data.json"), benchGlobalPolicy(generation))
}

// benchGlobalPolicy is the bench global policy; generation changes the id
// of the past freeze, so each generation is a new bundle revision that
// decides the same.
func benchGlobalPolicy(generation int) map[string]any {
	every := []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	return map[string]any{
		"timezone":           "Europe/Paris",
		"unmanaged_projects": "refuse",
		"freezes": []any{
			map[string]any{"id": fmt.Sprintf("past-%d", generation), "start": "2020-11-27T00:00:00+01:00",
				"end": "2020-11-30T00:00:00+01:00", "environments": []string{"production"}, "reason": "past"},
			map[string]any{"id": "future", "start": "2099-12-24T00:00:00+01:00",
				"end": "2100-01-04T00:00:00+01:00", "environments": []string{"production"}, "reason": "future"},
		},
		"time_windows": []any{map[string]any{"days": every, "start": "00:00", "end": "23:59",
			"environments": []string{"production"}}},
		"weekends": map[string]any{"allowed": true, "environments": []string{"production"}},
	}
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path) // one event, as an editor's rename-on-save
}

// seedHistory gives the embedded store in dataDir n decisions, all accepted
// and each with its own cooldown key, in one transaction of plain SQL: a
// million in seconds rather than the minutes it would take through the API.
// The records are realistic in size; their IDs sort before the UUIDv7 of any
// decision made now.
func seedHistory(ctx context.Context, dataDir string, n int) error {
	store, err := sqlite.Open(ctx, dataDir) // creates the file and its schema
	if err != nil {
		return err
	}
	if err := store.Close(); err != nil {
		return err
	}
	// This connection only: no fsync until the end, a large page cache,
	// and the history's indexes built once after the rows, by sorting,
	// rather than kept up to date row by row.
	db, err := sql.Open("sqlite", filepath.Join(dataDir, sqlite.FileName)+"?_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var names, indexes []string
	rows, err := db.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'decisions' AND sql IS NOT NULL`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return err
		}
		names, indexes = append(names, name), append(indexes, def)
	}
	rows.Close()
	for _, name := range names {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+name); err != nil {
			return err
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	const record = `'{"decision_id":"' || id || '","status":"accepted","reasons":[],"warnings":[],` +
		`"project":"' || project || '","pipeline":"deploy-prod","branch":"' || branch || '",` +
		`"environment":"production","bundle_revision":"sha256:seed","evaluated_at":"2026-01-01T00:00:00Z",` +
		`"request":{"repository":"org/' || project || '","branch":"' || branch || '","pipeline":"deploy-prod",` +
		`"metadata":{"initiator":"seed","run_id":"' || i || '","environment":"production"}},` +
		`"context":{"now":"2026-01-01T00:00:00Z","licence":{"status":"valid","subject":"bench","edition":"pro"},"cooldown":{}}}'`
	_, err = tx.ExecContext(ctx, `
		WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?),
		rows AS (SELECT i, printf('00000000-0000-7000-8000-%012d', i) AS id,
		                printf('project-%05d', i % 10) AS project, printf('seed/%d', i) AS branch FROM seq)
		INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, seq, prev_hash, hash, record)
		SELECT id, 1767225600000000000 + i, project, 'deploy-prod', branch, 'production', 'accepted', 'sha256:seed',
		       i, zeroblob(32), zeroblob(32), `+record+`
		FROM rows`, n)
	if err != nil {
		return fmt.Errorf("seed decisions: %w", err)
	}
	// Each row has its place in the ledger's chain, with placeholder hashes
	// (chaining a million records properly takes minutes; the benchmarks
	// measure decisions, not the chain), and the chain goes on after them.
	if _, err := tx.ExecContext(ctx, `UPDATE ledger SET seq = ?`, n); err != nil {
		return fmt.Errorf("seed the ledger head: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cooldowns (project, pipeline, branch, last_accepted_at, decision_id)
		SELECT project, pipeline, branch, evaluated_at, id FROM decisions`); err != nil {
		return fmt.Errorf("seed cooldowns: %w", err)
	}
	for _, def := range indexes {
		if _, err := tx.ExecContext(ctx, def); err != nil {
			return fmt.Errorf("rebuild index: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize")
	return err
}
