package test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/migrations"
)

// TestLedgerAcrossReplicas: two replicas on one PostgreSQL database record
// decisions at once, with cooldown keys (a transaction each) and without
// (group commit); the chain holds every decision once, `tollgate ledger
// verify` says so, and an export over HTTP, signed by the replica's key,
// verifies offline with the public key.
func TestLedgerAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.Start(t).NewDatabase(t)
	keys := t.TempDir()
	if code, _, stderr := runTollgate(t, nil, nil, "ledger", "keygen", "--out", keys); code != 0 {
		t.Fatalf("ledger keygen: %d %s", code, stderr)
	}
	bundle := newBundle(t)
	args := []string{"--database-url", url, "--ledger-signing-key", filepath.Join(keys, "ledger-private.pem")}
	a := startServer(t, serverOptions{bundle: bundle, args: args})
	b := startServer(t, serverOptions{bundle: bundle, args: args})

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		replica := a
		if i%2 == 1 {
			replica = b
		}
		r := req("org/service-api", fmt.Sprintf("release/%d", i), "deploy-prod", "production")
		if i%4 >= 2 {
			r = req("org/service-api", "main", "deploy-staging", "staging")
		}
		wg.Go(func() {
			if code, raw := replica.postJSON(t, "/v1/evaluate", r); code != http.StatusOK {
				t.Errorf("evaluate: %d %s", code, raw)
			}
		})
	}
	wg.Wait()

	code, stdout, stderr := runTollgate(t, nil, nil, "ledger", "verify", "--database-url", url)
	if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("ledger ok: %d records, seq 1 to %d", n, n)) {
		t.Fatalf("ledger verify: %d %q %s", code, stdout, stderr)
	}

	code, raw := b.get(t, "/v1/decisions/export?pipeline=deploy-prod")
	if code != http.StatusOK {
		t.Fatalf("export: %d %s", code, raw)
	}
	file := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runTollgate(t, nil, nil, "ledger", "verify-export", "--key", filepath.Join(keys, "ledger-public.pem"), file)
	if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("export ok: %d records and %d links, seq 1 to %d", n/2, n/2, n)) {
		t.Fatalf("ledger verify-export: %d %q %s", code, stdout, stderr)
	}
}

// TestServeChainsPreLedgerHistoryOnceAndSaysSo: a store from before the
// ledger (schema version 5) holds three decisions; the serve that applies
// the ledger's migration chains them and logs it, verify then holds; the
// next serve chains nothing and logs nothing about it.
func TestServeChainsPreLedgerHistoryOnceAndSaysSo(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	connector, err := sqlite.NewConnector(filepath.Join(dataDir, "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	fsys, err := migrations.Files(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		d := tollgate.Decision{ID: fmt.Sprintf("0190%04d-0000-7000-8000-000000000000", i), Status: tollgate.Refused,
			Reasons: []tollgate.Reason{{Code: tollgate.CodeBranchNotAllowed, Message: "no"}}, Warnings: []tollgate.Reason{},
			Project: "service-api", Pipeline: "deploy-prod", Branch: "feature/x", Environment: "production",
			BundleRevision: "sha256:old", EvaluatedAt: at.Add(time.Duration(i) * time.Minute)}
		rec, err := json.Marshal(tollgate.Record{Decision: d, Request: tollgate.Request{Repository: "org/service-api", Branch: d.Branch, Pipeline: d.Pipeline,
			Metadata: tollgate.Metadata{Initiator: "jane", Environment: d.Environment}}, Context: tollgate.Context{Now: d.EvaluatedAt}, Identity: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.ID, d.EvaluatedAt.UnixNano(), d.Project, d.Pipeline, d.Branch, d.Environment, string(d.Status), d.BundleRevision, string(rec)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	const logged = "ledger started: chained the decisions recorded before the ledger existed"
	s := startServer(t, serverOptions{dataDir: dataDir})
	code, stdout, stderr := runTollgate(t, nil, nil, "ledger", "verify", "--data-dir", dataDir)
	if code != 0 || !strings.HasPrefix(stdout, "ledger ok: 3 records, seq 1 to 3") {
		t.Fatalf("ledger verify: %d %q %s", code, stdout, stderr)
	}
	s.stop(t)
	if log := s.stderr.String(); !strings.Contains(log, logged) || !strings.Contains(log, "decisions=3") {
		t.Fatalf("serve did not log the chaining of the 3 decisions made before the ledger:\n%s", log)
	}
	s = startServer(t, serverOptions{dataDir: dataDir})
	s.stop(t)
	if log := s.stderr.String(); strings.Contains(log, logged) {
		t.Fatalf("the second serve logged a chaining:\n%s", log)
	}
}
