package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/postgres"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

// ledgerBackend is a fresh store for one test, reached three ways: by the
// binary's flags, in-process, and by raw SQL, as an intruder would.
type ledgerBackend struct {
	flags []string
	open  func(t *testing.T) tollgate.DecisionStore
	// exec runs query and returns the rows it changed, or its error.
	exec func(t *testing.T, query string) (int64, error)
	// blob is the SQL literal of b.
	blob func(b []byte) string
	// missing are the store flags of a store that does not exist, and
	// created reports whether something was created there since.
	missing func(t *testing.T) (flags []string, created func() bool)
}

// change runs query, which must change one row.
func (b ledgerBackend) change(t *testing.T, query string) {
	t.Helper()
	if n, err := b.exec(t, query); err != nil || n != 1 {
		t.Fatalf("%s: %d rows, %v", query, n, err)
	}
}

func sqliteBackend(t *testing.T) ledgerBackend {
	dir := t.TempDir()
	return ledgerBackend{
		flags: []string{"--data-dir", dir},
		open: func(t *testing.T) tollgate.DecisionStore {
			s, err := sqlite.Open(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		exec: func(t *testing.T, query string) (int64, error) {
			db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			res, err := db.Exec(query)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		},
		blob: func(b []byte) string { return fmt.Sprintf("X'%x'", b) },
		missing: func(t *testing.T) ([]string, func() bool) {
			dir := filepath.Join(t.TempDir(), "no-store")
			return []string{"--data-dir", dir}, func() bool {
				_, err := os.Stat(dir)
				return err == nil
			}
		},
	}
}

func postgresBackend(t *testing.T, pg *pgtest.Server) ledgerBackend {
	url := pg.NewDatabase(t)
	return ledgerBackend{
		flags: []string{"--database-url", url},
		open: func(t *testing.T) tollgate.DecisionStore {
			s, err := postgres.Open(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		exec: func(t *testing.T, query string) (int64, error) {
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			tag, err := conn.Exec(t.Context(), query)
			return tag.RowsAffected(), err
		},
		blob: func(b []byte) string { return fmt.Sprintf("decode('%x', 'hex')", b) },
		missing: func(t *testing.T) ([]string, func() bool) {
			url := pg.NewDatabase(t)
			return []string{"--database-url", url}, func() bool {
				conn, err := pgx.Connect(t.Context(), url)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				var n int
				if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n > 0
			}
		},
	}
}

// ledgerBase is the evaluation time of the first seeded record; record i is
// i minutes later.
var ledgerBase = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// seed records n decisions, one a minute from ledgerBase, every third one
// for project payments, and returns their IDs in chain order.
func (b ledgerBackend) seed(t *testing.T, n int) []string {
	t.Helper()
	s := b.open(t)
	defer s.Close()
	ids := make([]string, n)
	for i := range n {
		project := "service-api"
		if i%3 == 0 {
			project = "payments"
		}
		at := ledgerBase.Add(time.Duration(i) * time.Minute)
		id := uuid.Must(uuid.NewV7()).String()
		rec := tollgate.Record{
			Decision: tollgate.Decision{ID: id, Status: tollgate.Accepted, Reasons: []tollgate.Reason{}, Project: project,
				Pipeline: "deploy-prod", Branch: "main", Environment: "production", BundleRevision: "sha256:abc", EvaluatedAt: at},
			Request: tollgate.Request{Repository: "org/" + project, Branch: "main", Pipeline: "deploy-prod",
				Metadata: tollgate.Metadata{Initiator: "jane", Environment: "production"}},
			Context:  tollgate.Context{Now: at},
			Identity: "ci",
		}
		if _, err := s.Decide(t.Context(), nil, func(tollgate.Cooldown) (tollgate.Record, error) { return rec, nil }); err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

func TestLedgerCommands(t *testing.T) {
	backends := map[string]func(t *testing.T) ledgerBackend{
		"sqlite": sqliteBackend,
	}
	pg := pgtest.Start(t)
	backends["postgres"] = func(t *testing.T) ledgerBackend { return postgresBackend(t, pg) }
	tamper := map[string]string{
		"sqlite":   `UPDATE decisions SET record = replace(record, '"status":"accepted"', '"status":"refused"') WHERE seq = 5`,
		"postgres": `UPDATE decisions SET record = jsonb_set(record, '{decision,status}', '"refused"') WHERE seq = 5`,
	}
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("TamperedRecordIsNamed", func(t *testing.T) {
				b := backend(t)
				ids := b.seed(t, 12)
				r := runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
				r.wantCode(t, exitOK)
				if !strings.HasPrefix(r.stdout, "ledger ok: 12 records, seq 1 to 12, head ") {
					t.Fatalf("verify: %q", r.stdout)
				}
				b.change(t, tamper[name])
				r = runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
				r.wantCode(t, exitNo)
				want := "ledger broken: record seq 5 (decision " + ids[4] + "): the stored record does not match its hash: it was altered"
				if !strings.HasPrefix(r.stdout, want) {
					t.Fatalf("verify after tampering:\n got %q\nwant %q…", r.stdout, want)
				}
			})
			t.Run("DeletedRecordIsNamed", func(t *testing.T) {
				b := backend(t)
				ids := b.seed(t, 12)
				b.change(t, `DELETE FROM decisions WHERE seq = 8`)
				r := runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
				r.wantCode(t, exitNo)
				want := "ledger broken: record seq 8: missing: the chain goes from seq 7 to seq 9 (decision " + ids[8] + "); the record was deleted"
				if !strings.HasPrefix(r.stdout, want) {
					t.Fatalf("verify after deleting:\n got %q\nwant %q…", r.stdout, want)
				}
			})
			t.Run("DeletedLastRecordIsNamed", func(t *testing.T) {
				b := backend(t)
				b.seed(t, 4)
				b.change(t, `DELETE FROM decisions WHERE seq = 4`)
				r := runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
				r.wantCode(t, exitNo)
				if !strings.HasPrefix(r.stdout, "ledger broken: record seq 4: missing: the chain head is seq 4 but the last record is seq 3") {
					t.Fatalf("verify after deleting the last record: %q", r.stdout)
				}
			})
			t.Run("InsertedAroundTollgateIsNamed", func(t *testing.T) {
				b := backend(t)
				b.seed(t, 2)
				const forge = `INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record)
					SELECT 'forged', evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record FROM decisions WHERE seq = 1`
				if name == "postgres" {
					// PostgreSQL refuses a record without its place in the
					// chain; an intruder who can drop the constraint can
					// insert one all the same.
					if _, err := b.exec(t, forge); err == nil || !strings.Contains(err.Error(), "decisions_chained") {
						t.Fatalf("insert without a chain link: %v; want decisions_chained to refuse it", err)
					}
					if _, err := b.exec(t, `ALTER TABLE decisions DROP CONSTRAINT decisions_chained`); err != nil {
						t.Fatal(err)
					}
				}
				b.change(t, forge)
				r := runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
				r.wantCode(t, exitNo)
				if !strings.Contains(r.stdout, "1 records have no place in the chain") {
					t.Fatalf("verify after an insert around tollgate: %q", r.stdout)
				}
			})
			t.Run("ExportArchiveAndVerify", func(t *testing.T) {
				testExportArchive(t, backend(t))
			})
			t.Run("VerifyCreatesNoStore", func(t *testing.T) {
				flags, created := backend(t).missing(t)
				r := runTollgate(t, append([]string{"ledger", "verify"}, flags...)...)
				r.wantCode(t, exitError)
				if !strings.Contains(r.stderr, "no tollgate s") || strings.Contains(r.stdout, "ledger ok") {
					t.Fatalf("verify of no store: stdout %q, stderr %q; want an error saying there is no store", r.stdout, r.stderr)
				}
				if created() {
					t.Fatal("ledger verify created a store")
				}
			})
			t.Run("RechainedStoreFailsAgainstSignedExport", func(t *testing.T) {
				testRechained(t, backend(t), name)
			})
			t.Run("ServedColumnIsNamed", func(t *testing.T) {
				b := backend(t)
				ids := b.seed(t, 6)
				b.change(t, `UPDATE decisions SET status = 'refused' WHERE seq = 4`)
				r := runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
				r.wantCode(t, exitNo)
				want := "ledger broken: record seq 4 (decision " + ids[3] + `): the stored columns do not match the hashed record, they were edited around tollgate: status is "refused" but the record says "accepted"`
				if !strings.HasPrefix(r.stdout, want) {
					t.Fatalf("verify after editing a column:\n got %q\nwant %q", r.stdout, want)
				}
			})
		})
	}
}

func testExportArchive(t *testing.T, b ledgerBackend) {
	b.seed(t, 12)
	dir := t.TempDir()
	r := runTollgate(t, "ledger", "keygen", "--out", filepath.Join(dir, "keys"))
	r.wantCode(t, exitOK)
	private, public := filepath.Join(dir, "keys", "ledger-private.pem"), filepath.Join(dir, "keys", "ledger-public.pem")
	if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, %v", fi, err)
	}

	// A filtered, signed export verifies with the public key only.
	export := filepath.Join(dir, "payments.ndjson")
	r = runTollgate(t, append([]string{"ledger", "export", "--project", "payments", "--ledger-signing-key", private, "--out", export}, b.flags...)...)
	r.wantCode(t, exitOK)
	if r.stdout != "exported 4 records (seq 1 to 12) to "+export+"\n" {
		t.Fatalf("export: %q", r.stdout)
	}
	r = runTollgate(t, "ledger", "verify-export", "--key", public, export)
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "export ok: 4 records and 8 links, seq 1 to 12, end hash ") || !strings.Contains(r.stdout, "signed by key ") {
		t.Fatalf("verify-export: %q", r.stdout)
	}
	testExportSelectionIsSigned(t, export, public)
	r = runTollgate(t, append([]string{"ledger", "export", "--out", export}, b.flags...)...)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("export over an existing file: %q", r.stderr)
	}

	// Another key pair's public key does not verify it.
	r = runTollgate(t, "ledger", "keygen", "--out", filepath.Join(dir, "other"))
	r.wantCode(t, exitOK)
	r = runTollgate(t, "ledger", "verify-export", "--key", filepath.Join(dir, "other", "ledger-public.pem"), export)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "not by the key given") {
		t.Fatalf("verify-export with another key: %q", r.stdout)
	}

	// Archive the first six records (evaluated before minute 6).
	archive := filepath.Join(dir, "archive.ndjson")
	before := ledgerBase.Add(6 * time.Minute).Format(time.RFC3339)
	r = runTollgate(t, append([]string{"ledger", "archive", "--before", before, "--out", archive, "--ledger-signing-key", private}, b.flags...)...)
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "archived 6 records (seq 1 to 6) to "+archive+" and deleted them; the chain now starts after seq 6") {
		t.Fatalf("archive: %q", r.stdout)
	}
	r = runTollgate(t, "ledger", "verify-export", "--key", public, archive)
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "export ok: 6 records and 0 links, seq 1 to 6") {
		t.Fatalf("verify-export of the archive: %q", r.stdout)
	}
	r = runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "ledger ok: 6 records, seq 7 to 12") {
		t.Fatalf("verify after archiving: %q", r.stdout)
	}
	// The archive's end is where the store's chain now starts: the two
	// files chain into each other.
	if end, start := lastLine(t, archive), ""; !strings.Contains(end, `"seq":6`) {
		t.Fatalf("archive end: %s (%s)", end, start)
	}
	r = runTollgate(t, append([]string{"ledger", "archive", "--before", before, "--out", filepath.Join(dir, "again.ndjson")}, b.flags...)...)
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "nothing to archive") {
		t.Fatalf("archive again: %q", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "again.ndjson")); !os.IsNotExist(err) {
		t.Fatalf("archive with nothing to archive wrote a file: %v", err)
	}
}

// testRechained: an intruder deletes a record and re-hashes the chain after
// it, as anyone can (the hash has no key). The chain then holds on its own
// and `ledger verify` cannot tell; against an export signed before the
// rewrite, it fails.
func testRechained(t *testing.T, b ledgerBackend, name string) {
	b.seed(t, 6)
	dir := t.TempDir()
	runTollgate(t, "ledger", "keygen", "--out", dir).wantCode(t, exitOK)
	private, public := filepath.Join(dir, "ledger-private.pem"), filepath.Join(dir, "ledger-public.pem")
	export := filepath.Join(dir, "export.ndjson")
	runTollgate(t, append([]string{"ledger", "export", "--quiet", "--ledger-signing-key", private, "--out", export}, b.flags...)...).wantCode(t, exitOK)
	b.seed(t, 2)
	againstFlags := append([]string{"ledger", "verify", "--against", export, "--key", public}, b.flags...)
	r := runTollgate(t, againstFlags...)
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, "matches "+export+" at seq 6") {
		t.Fatalf("verify --against before the rewrite: %q", r.stdout)
	}

	// Delete seq 3, move the later records down one and re-hash them.
	b.change(t, `DELETE FROM decisions WHERE seq = 3`)
	for seq := 4; seq <= 8; seq++ {
		b.change(t, fmt.Sprintf(`UPDATE decisions SET seq = %d WHERE seq = %d`, seq-1, seq))
	}
	s := b.open(t)
	var es []tollgate.LedgerEntry
	if err := s.(tollgate.LedgerStore).LedgerEntries(t.Context(), 2, 7, func(e tollgate.LedgerEntry) error {
		es = append(es, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	prev := es[0].Hash
	for _, e := range es[1:] {
		digest, err := ledger.Digest(e.Record)
		if err != nil {
			t.Fatal(err)
		}
		hash := ledger.Link(prev, digest)
		b.change(t, fmt.Sprintf(`UPDATE decisions SET prev_hash = %s, hash = %s WHERE seq = %d`, b.blob(prev), b.blob(hash), e.Seq))
		prev = hash
	}
	head := fmt.Sprintf(`UPDATE ledger SET seq = 7, hash = %s`, b.blob(prev))
	if name == "postgres" {
		head += ", prev_hash = prev_hash"
	}
	b.change(t, head)

	r = runTollgate(t, append([]string{"ledger", "verify"}, b.flags...)...)
	r.wantCode(t, exitOK) // what the chain alone cannot show
	r = runTollgate(t, againstFlags...)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "ledger broken: record seq 6") || !strings.Contains(r.stdout, "the chain was rewritten since the export") {
		t.Fatalf("verify --against after the rewrite: %q", r.stdout)
	}
	// An export that does not verify is no reference.
	runTollgate(t, "ledger", "keygen", "--out", filepath.Join(dir, "other")).wantCode(t, exitOK)
	r = runTollgate(t, append([]string{"ledger", "verify", "--against", export, "--key", filepath.Join(dir, "other", "ledger-public.pem")}, b.flags...)...)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "does not verify") {
		t.Fatalf("verify --against with another key: %q", r.stderr)
	}
}

// testExportSelectionIsSigned edits a signed, filtered export as someone
// hiding a decision from an auditor would: a record turned into a link,
// with the counts and the selection digest made to agree, or the filters
// changed. Each edit fails verify-export.
func testExportSelectionIsSigned(t *testing.T, export, public string) {
	t.Helper()
	data, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	write := func(name string, lines []map[string]any) string {
		var b strings.Builder
		for _, m := range lines {
			j, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(j)
			b.WriteByte('\n')
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	edit := func() []map[string]any {
		out := make([]map[string]any, len(lines))
		for i, m := range lines {
			out[i] = maps.Clone(m)
		}
		return out
	}
	// The unedited copy, re-encoded, verifies: the edits below are what fail.
	r := runTollgate(t, "ledger", "verify-export", "--key", public, write("same.ndjson", edit()))
	r.wantCode(t, exitOK)

	hidden := edit()
	var selection strings.Builder
	turned := false
	for i, m := range hidden {
		switch m["type"] {
		case "record":
			if !turned {
				raw, _ := json.Marshal(m["record"])
				digest, err := ledger.Digest(raw)
				if err != nil {
					t.Fatal(err)
				}
				hidden[i] = map[string]any{"type": "link", "seq": m["seq"], "digest": ledger.Hex(digest), "hash": m["hash"]}
				turned = true
				continue
			}
			fmt.Fprintf(&selection, "%v\n", m["seq"])
		case "end":
			m["records"] = m["records"].(float64) - 1
			m["links"] = m["links"].(float64) + 1
			sum := sha256.Sum256([]byte(selection.String()))
			m["selection"] = ledger.Hex(sum[:])
		}
	}
	r = runTollgate(t, "ledger", "verify-export", "--key", public, write("hidden.ndjson", hidden))
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "the signature of the end line is not valid") {
		t.Fatalf("verify-export of an export with a record turned into a link: %q", r.stdout)
	}
	// Without a key, the counts and the selection still have to agree.
	unadjusted := edit()
	for i, m := range unadjusted {
		if m["type"] == "record" {
			raw, _ := json.Marshal(m["record"])
			digest, _ := ledger.Digest(raw)
			unadjusted[i] = map[string]any{"type": "link", "seq": m["seq"], "digest": ledger.Hex(digest), "hash": m["hash"]}
			unadjusted[len(unadjusted)-1]["records"] = unadjusted[len(unadjusted)-1]["records"].(float64) - 1
			break
		}
	}
	r = runTollgate(t, "ledger", "verify-export", write("unadjusted.ndjson", unadjusted))
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "links; the export holds") {
		t.Fatalf("verify-export of an export whose links were not recounted: %q", r.stdout)
	}

	// Filters: another project's name does not select its records; no
	// filter selects them all, but is not what was signed.
	for _, tc := range []struct {
		filter map[string]any
		want   string
	}{
		{map[string]any{"project": "service-api"}, "the export's filters do not select this record"},
		{map[string]any{}, "the signature of the end line is not valid"},
	} {
		changed := edit()
		changed[0]["filter"] = tc.filter
		r = runTollgate(t, "ledger", "verify-export", "--key", public, write("filter.ndjson", changed))
		r.wantCode(t, exitNo)
		if !strings.Contains(r.stdout, tc.want) {
			t.Fatalf("verify-export with filter %v: %q; want %q", tc.filter, r.stdout, tc.want)
		}
	}
}

func lastLine(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	last := ""
	for sc.Scan() {
		last = sc.Text()
	}
	return last
}

func TestLedgerUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ledger"}, "want a subcommand"},
		{[]string{"ledger", "keygen"}, "--out is required"},
		{[]string{"ledger", "archive", "--data-dir", dir}, "--before and --out are required"},
		{[]string{"ledger", "archive", "--before", "yesterday", "--out", "x", "--data-dir", dir}, "--before must be an RFC3339 time"},
		{[]string{"ledger", "export", "--status", "maybe", "--data-dir", dir}, "--status must be accepted or refused"},
		{[]string{"ledger", "export", "--since", "today", "--data-dir", dir}, "--since must be an RFC3339 time"},
		{[]string{"ledger", "export", "--ledger-signing-key", filepath.Join(dir, "none.pem"), "--data-dir", dir}, "no such file"},
		{[]string{"ledger", "verify-export"}, "want one export FILE"},
		{[]string{"ledger", "verify-export", filepath.Join(dir, "none.ndjson")}, "no such file"},
	} {
		r := runTollgate(t, tc.args...)
		r.wantCode(t, exitError)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q; want %q", tc.args, r.stderr, tc.want)
		}
	}
	// A file that is not an export is a broken export, exit 1.
	notExport := filepath.Join(dir, "x.ndjson")
	os.WriteFile(notExport, []byte(fmt.Sprintln(`{"hello":"world"}`)), 0o644)
	r := runTollgate(t, "ledger", "verify-export", notExport)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "not a tollgate ledger export") {
		t.Fatalf("verify-export of another file: %q", r.stdout)
	}
}
