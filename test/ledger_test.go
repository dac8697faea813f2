package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/adapters/pgtest"
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
