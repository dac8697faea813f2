package storetest

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// Tamper is a store under the tamper suite, with what someone who can
// edit its database has: SQL run on it directly, around the store.
type Tamper struct {
	// Open opens the store, as Factory's open does.
	Open func() tollgate.DecisionStore
	// Exec runs one SQL statement on the store's database, outside the
	// store. The statements are portable between SQLite and PostgreSQL,
	// but where Postgres says otherwise.
	Exec func(query string) error
	// Postgres is set for a PostgreSQL store.
	Postgres bool
	// OpenReadOnly opens the store as `tollgate ledger verify` does: read
	// only, nothing created, nothing migrated or chained.
	OpenReadOnly func() (ReadOnly, error)
	// MigratedTo leaves the store's database, before Open, at a schema
	// version, with records made at that version (MigrateTo).
	MigratedTo func(version int64, recs []tollgate.Record)
}

// ReadOnly is a store opened read-only.
type ReadOnly interface {
	tollgate.LedgerStore
	Close() error
}

// readOnly opens the store read-only until t ends.
func (tp Tamper) readOnly(t *testing.T) tollgate.LedgerStore {
	t.Helper()
	return OpenClosing(t, tp.OpenReadOnly)
}

// TamperFactory prepares a fresh, empty store for one tamper test.
type TamperFactory func(t *testing.T) Tamper

// RunTamper runs the tamper suite: every value the API, the CLI, the
// history page or an export reads from outside the hashed record, edited
// in the database, must make `ledger verify` fail naming the record and
// the column, and must never be served as if it were the record's.
func RunTamper(t *testing.T, factory TamperFactory) {
	type test struct {
		name string
		run  func(t *testing.T, tp Tamper)
	}
	tests := []test{
		{"SwappedIDs", testTamperSwappedIDs},
		{"StatusFilterServesNoImpostor", testTamperStatusFilter},
		{"VerifyIsReadOnly", testVerifyReadOnly},
		{"PrunedDerivedStateStillVerifies", testPrunedDerivedState},
		{"TruncatedWithItsHead", testTamperTruncated},
		{"CooldownRolledBackToAnEarlierAcceptance", testTamperCooldownRolledBack},
		{"RecordReencodedStillVerifies", testRecordReencoded},
		{"CopyAfterTheHead", testTamperOutsideTheChain(99)},
		{"CopyAtTheAnchor", testTamperOutsideTheChain(0)},
		{"CopyBeforeTheAnchor", testTamperOutsideTheChain(-1)},
		{"PrunedWithoutArchive", testTamperFakePrune},
		{"LegacyRecordsChainedOnce", testLegacyChainedOnce},
		{"UnchainedRecordsNotChainedAgain", testUnchainedNotChainedAgain},
	}
	for _, c := range tamperedColumns {
		tests = append(tests, test{"Column/" + c.column, testTamperColumn(c.column, c.set, c.want)})
	}
	for _, c := range tamperedCooldowns {
		tests = append(tests, test{"Derived/" + c.name, testTamperCooldown(c.query, postgresQueries[c.name], c.seq, c.want)})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, factory(t))
		})
	}
}

// tamperFixture records, under cooldown keys, a refused and an accepted
// decision for each of two branches (the accepted ones with a scan, so
// that they set the drift baseline of service-api in production, the
// later one last), and returns them in seq order.
func tamperFixture(t *testing.T, s tollgate.DecisionStore) []tollgate.Record {
	t.Helper()
	var recs []tollgate.Record
	for i, sp := range []spec{
		{branch: "main", status: tollgate.Refused},
		{branch: "main", status: tollgate.Accepted},
		{branch: "release/1", status: tollgate.Refused},
		{branch: "release/1", status: tollgate.Accepted},
	} {
		sp.project, sp.pipeline, sp.at = "service-api", "deploy-prod", base.Add(time.Duration(i)*time.Minute)
		rec := sp.record()
		if sp.status == tollgate.Accepted {
			rec.Context.Scan = &tollgate.Release{ScannedAt: sp.at, Format: "trivy", Findings: []tollgate.ScoredFinding{
				{Finding: tollgate.Finding{ID: fmt.Sprintf("CVE-2024-%d", 1000+i), Package: "openssl", Severity: tollgate.Severity("HIGH")}},
			}}
		}
		got, err := s.Decide(t.Context(), keyOf(sp), fixed(rec))
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		recs = append(recs, got)
	}
	return recs
}

func mustExec(t *testing.T, tp Tamper, query string) {
	t.Helper()
	if err := tp.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// brokenAt verifies s and fails t unless it breaks at seq (0: at no
// record) with a reason holding every one of want.
func brokenAt(t *testing.T, s tollgate.LedgerStore, seq int64, want ...string) {
	t.Helper()
	_, brk, err := ledger.Verify(t.Context(), s, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if brk == nil {
		t.Fatalf("Verify: the chain holds; want a break at seq %d saying %q", seq, want)
	}
	for _, w := range want {
		if brk.Seq != seq || !strings.Contains(brk.Error(), w) {
			t.Fatalf("Verify: break %v; want one at seq %d saying %q", brk, seq, want)
		}
	}
}

// tamperedColumns are the columns each store copies out of the record,
// the SQL that edits one of them in the refused decision on main (seq 1),
// and what verify must say.
var tamperedColumns = []struct{ column, set, want string }{
	{"status", "status = 'accepted'", `status is "accepted" but the record says "refused"`},
	{"project", "project = 'other-project'", `project is "other-project" but the record says "service-api"`},
	{"pipeline", "pipeline = 'hotfix-prod'", `pipeline is "hotfix-prod" but the record says "deploy-prod"`},
	{"branch", "branch = 'hotfix/1'", `branch is "hotfix/1" but the record says "main"`},
	{"environment", "environment = 'staging'", `environment is "staging" but the record says "production"`},
	{"bundle_revision", "bundle_revision = 'sha256:forged'", `bundle_revision is "sha256:forged" but the record says "sha256:5f1c0de"`},
	{"evaluated_at", "evaluated_at = evaluated_at + 3600000000000", "evaluated_at is 2026-03-02T09:30:00.123456789Z but the record says 2026-03-02T08:30:00.123456789Z"},
	{"id", "id = '01900000-0000-7000-8000-000000000000'", `id is "01900000-0000-7000-8000-000000000000" but the record says`},
}

// testTamperColumn edits one served column of one record: verify names the
// record and the column, the store opened read-only says the same, and
// the store never serves the record under the edited value.
func testTamperColumn(column, set, want string) func(t *testing.T, tp Tamper) {
	return func(t *testing.T, tp Tamper) {
		s := tp.Open()
		defer s.Close()
		recs := tamperFixture(t, s)
		VerifyLedger(t, s.(tollgate.LedgerStore))
		victim := recs[0].Decision
		mustExec(t, tp, fmt.Sprintf("UPDATE decisions SET %s WHERE id = '%s'", set, victim.ID))
		brokenAt(t, s.(tollgate.LedgerStore), 1, "decision "+victim.ID, want)
		ro := tp.readOnly(t)
		brokenAt(t, ro, 1, "decision "+victim.ID, want)

		// What the edited column would make the API serve.
		var f tollgate.DecisionFilter
		switch column {
		case "status":
			f.Status = tollgate.Accepted
		case "project":
			f.Project = "other-project"
		case "pipeline":
			f.Pipeline = "hotfix-prod"
		case "branch":
			f.Branch = "hotfix/1"
		case "evaluated_at":
			f.Since = victim.EvaluatedAt.Add(59 * time.Minute)
			f.Until = victim.EvaluatedAt.Add(61 * time.Minute)
		case "id":
			if _, err := s.Decision(t.Context(), "01900000-0000-7000-8000-000000000000"); tollgate.ErrorCode(err) != tollgate.EInternal {
				t.Fatalf("Decision(the edited id) = %v; want EInternal: it holds another decision", err)
			}
			return
		default: // not filtered on: served only inside the record
			return
		}
		page, err := s.Decisions(t.Context(), f)
		if tollgate.ErrorCode(err) != tollgate.EInternal || !strings.Contains(err.Error(), column) {
			t.Fatalf("Decisions(%+v) = %d records, %v; want EInternal naming the %s column, never the refused record passed off", f, len(page.Records), err, column)
		}
	}
}

func testTamperSwappedIDs(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	recs := tamperFixture(t, s)
	// The two refusals: no cooldown refers to them.
	a, b := recs[0].Decision.ID, recs[2].Decision.ID
	for _, q := range []string{
		fmt.Sprintf("UPDATE decisions SET id = 'swap' WHERE id = '%s'", a),
		fmt.Sprintf("UPDATE decisions SET id = '%s' WHERE id = '%s'", a, b),
		fmt.Sprintf("UPDATE decisions SET id = '%s' WHERE id = 'swap'", b),
	} {
		mustExec(t, tp, q)
	}
	brokenAt(t, s.(tollgate.LedgerStore), 1, "decision "+a, fmt.Sprintf("id is %q but the record says %q", b, a))
	for _, id := range []string{a, b} {
		if rec, err := s.Decision(t.Context(), id); tollgate.ErrorCode(err) != tollgate.EInternal {
			t.Fatalf("Decision(%s) = decision %s, %v; want EInternal: the row holds the other decision", id, rec.Decision.ID, err)
		}
	}
}

// testTamperStatusFilter is the example: a refusal relabelled
// accepted in SQL must not be listed under status=accepted.
func testTamperStatusFilter(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	recs := tamperFixture(t, s)
	before := list(t, s, tollgate.DecisionFilter{Status: tollgate.Accepted})
	if len(before.Records) != 2 {
		t.Fatalf("%d accepted before the edit, want 2", len(before.Records))
	}
	mustExec(t, tp, fmt.Sprintf("UPDATE decisions SET status = 'accepted' WHERE id = '%s'", recs[2].Decision.ID))
	page, err := s.Decisions(t.Context(), tollgate.DecisionFilter{Status: tollgate.Accepted})
	if err == nil {
		t.Fatalf("status=accepted lists %d records after a refusal was relabelled in SQL; want an error, not the refusal listed", len(page.Records))
	}
	// Other filters that do not reach the row still answer.
	if page := list(t, s, tollgate.DecisionFilter{Branch: "main"}); len(page.Records) != 2 {
		t.Fatalf("branch=main lists %d records, want 2", len(page.Records))
	}
}

// tamperedCooldowns edit the cooldown of service-api/deploy-prod on main,
// which the accepted decision at seq 2 started, or the drift baseline.
var tamperedCooldowns = []struct {
	name, query string
	seq         int64
	want        string
}{
	{"Deleted", "DELETE FROM cooldowns WHERE branch = 'main'", 2,
		`started the cooldown of service-api/deploy-prod on branch "main", which the store no longer has`},
	{"Backdated", "UPDATE cooldowns SET last_accepted_at = last_accepted_at - 3600000000000 WHERE branch = 'main'", 2,
		`the cooldown of service-api/deploy-prod on branch "main" says it was set at 2026-03-02T07:31:00.123456789Z`},
	{"NamesARefusal", "UPDATE cooldowns SET decision_id = (SELECT id FROM decisions WHERE branch = 'main' AND status = 'refused') WHERE branch = 'main'", 1,
		"which is refused: only an accepted decision starts a cooldown"},
	{"NamesNoDecisionAndIsOlder", "UPDATE cooldowns SET decision_id = NULL, last_accepted_at = last_accepted_at - 1 WHERE branch = 'main'", 2,
		"but the store's cooldown says 2026-03-02T08:31:00.123456788Z and names no decision in the ledger"},
	{"MovedToAnotherKey", "UPDATE cooldowns SET branch = 'hotfix/1' WHERE branch = 'main'", 2,
		`names this decision, which started the cooldown of service-api/deploy-prod on branch "main"`},
	// The drift baseline of service-api in production, set by seq 4.
	{"BaselineDeleted", "DELETE FROM baselines", 4,
		"this accepted decision set the drift baseline of service-api in production, which the store no longer has"},
	{"BaselineEdited", "UPDATE baselines SET baseline = replace(baseline, 'CVE-2024-1003', 'CVE-2024-9999')", 4,
		"the drift baseline of service-api in production names this decision, but does not hold what it set"},
	{"BaselineRolledBack", "UPDATE baselines SET decision_id = (SELECT id FROM decisions WHERE seq = 2), evaluated_at = (SELECT evaluated_at FROM decisions WHERE seq = 2)", 2,
		"the drift baseline of service-api in production names this decision, but does not hold what it set"},
	{"BaselineNamesNoDecision", "UPDATE baselines SET decision_id = '01900000-0000-7000-8000-000000000000'", 0,
		"the drift baseline of service-api in production names decision 01900000-0000-7000-8000-000000000000, which the ledger does not hold"},
}

// postgresQueries are the queries of tamperedCooldowns that PostgreSQL
// needs written otherwise.
var postgresQueries = map[string]string{
	"BaselineEdited": "UPDATE baselines SET baseline = replace(baseline::text, 'CVE-2024-1003', 'CVE-2024-9999')::jsonb",
}

// testTamperCooldown edits a cooldown, derived state that lets a release
// through or holds it back: verify must find it does not follow from the
// ledger's accepted decisions.
func testTamperCooldown(query, postgres string, seq int64, want string) func(t *testing.T, tp Tamper) {
	return func(t *testing.T, tp Tamper) {
		if tp.Postgres && postgres != "" {
			query = postgres
		}
		s := tp.Open()
		defer s.Close()
		tamperFixture(t, s)
		VerifyLedger(t, s.(tollgate.LedgerStore))
		mustExec(t, tp, query)
		brokenAt(t, s.(tollgate.LedgerStore), seq, want)
	}
}

// testVerifyReadOnly: the store as verify opens it reads the chain and
// the cooldowns, and writes nothing: pruning through it is refused and
// leaves the chain as it was.
func testVerifyReadOnly(t *testing.T, tp Tamper) {
	s := tp.Open()
	tamperFixture(t, s)
	before := ledgerHead(t, s.(tollgate.LedgerStore))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := tp.readOnly(t)
	if sum := VerifyLedger(t, ro); sum.Records != 4 {
		t.Fatalf("Verify read-only: %d records, want 4", sum.Records)
	}
	if n, err := ro.PruneLedger(t.Context(), before.Seq, before.Hash); err == nil || n != 0 {
		t.Fatalf("PruneLedger through the read-only store: %d deleted, %v; want refused", n, err)
	}
	s = tp.Open()
	defer s.Close()
	if after := ledgerHead(t, s.(tollgate.LedgerStore)); after.AnchorSeq != 0 || after.Seq != before.Seq {
		t.Fatalf("head after the read-only store = %+v; want %+v", after, before)
	}
	VerifyLedger(t, s.(tollgate.LedgerStore))
}

// testPrunedDerivedState: archiving and pruning the records that set a
// cooldown and a drift baseline leaves them behind (the cooldown naming no
// decision, the baseline the pruned one's ID), and verify still holds, for
// the records pruned up to each of them. No false alarm.
func testPrunedDerivedState(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	recs := tamperFixture(t, s)
	ls := s.(tollgate.LedgerStore)
	es := entries(t, ls)
	for _, through := range []int64{2, 4} {
		if _, err := ls.PruneLedger(t.Context(), through, es[through-1].Hash); err != nil {
			t.Fatalf("PruneLedger through %d: %v", through, err)
		}
		VerifyLedger(t, ls)
		VerifyLedger(t, tp.readOnly(t))
	}
	// And the next accepted decision under the key moves on from there.
	sp := spec{project: "service-api", pipeline: "deploy-prod", branch: "main", status: tollgate.Accepted, at: recs[3].Decision.EvaluatedAt.Add(time.Minute)}
	decideWith(t, s, keyOf(sp), sp)
	VerifyLedger(t, ls)
}

// signedExport exports the whole chain of s, signed, and verifies it.
func signedExport(t *testing.T, s tollgate.LedgerStore) ledger.ExportSummary {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := ledger.Export(t.Context(), &out, s, ledger.ExportOptions{Signer: priv}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	sum, brk, err := ledger.VerifyExport(&out, pub)
	if err != nil || brk != nil {
		t.Fatalf("VerifyExport: %v, %v", brk, err)
	}
	return sum
}

// testTamperTruncated: the newest record deleted and the chain head set
// back to the record before it leaves a chain that holds on its own (the
// documented limit: it is a rewrite from that point); against an export
// signed before, it is a break naming the missing records.
func testTamperTruncated(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	tamperFixture(t, s)
	put(t, s, spec{status: tollgate.Refused, branch: "feature/x", at: base.Add(time.Hour)}.record())
	ls := s.(tollgate.LedgerStore)
	exported := signedExport(t, ls)
	mustExec(t, tp, "DELETE FROM decisions WHERE seq = 5")
	mustExec(t, tp, "UPDATE ledger SET seq = 4, hash = (SELECT hash FROM decisions WHERE seq = 4)")
	if sum := VerifyLedger(t, ls); sum.Through != 4 {
		t.Fatalf("Verify after the truncation: through seq %d, want 4", sum.Through)
	}
	brk, err := ledger.Against(t.Context(), tp.readOnly(t), exported)
	if err != nil || brk == nil || brk.Seq != 5 || !strings.Contains(brk.Reason, "the export ends at seq 5, the store's chain at seq 4") {
		t.Fatalf("Against an export signed before the truncation: %v, %v; want a break at seq 5 saying the records were removed", brk, err)
	}
}

// testTamperFakePrune: the oldest records deleted and the anchor set to
// the last one's seq and hash, as a prune does, but without an archive.
// The chain holds on its own from the anchor (the documented limit: only
// an archive or export that ends at or after the anchor proves what was
// before it); an export that ends at the anchor matches it, and against
// one that ends before it verify cannot compare: an error, never "ok".
func testTamperFakePrune(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	tamperFixture(t, s)
	ls := s.(tollgate.LedgerStore)
	early := signedExport(t, ls)
	put(t, s, spec{status: tollgate.Refused, branch: "feature/x", at: base.Add(time.Hour)}.record())
	atAnchor := signedExport(t, ls)
	put(t, s, spec{status: tollgate.Refused, branch: "feature/y", at: base.Add(2 * time.Hour)}.record())
	mustExec(t, tp, "UPDATE ledger_anchor SET seq = 5, hash = (SELECT hash FROM decisions WHERE seq = 5)")
	mustExec(t, tp, "UPDATE cooldowns SET decision_id = NULL")
	mustExec(t, tp, "DELETE FROM decisions WHERE seq <= 5")
	if sum := VerifyLedger(t, ls); sum.From != 6 {
		t.Fatalf("Verify after the prune: from seq %d, want 6", sum.From)
	}
	ro := tp.readOnly(t)
	if brk, err := ledger.Against(t.Context(), ro, atAnchor); err != nil || brk != nil {
		t.Fatalf("Against the export that ends at the anchor: %v, %v; want it to match", brk, err)
	}
	if _, err := ledger.Against(t.Context(), ro, early); err == nil || !strings.Contains(err.Error(), "pruned past the export's end") {
		t.Fatalf("Against an export that ends before the anchor: %v; want an error, the store cannot be compared", err)
	}
}

// testTamperOutsideTheChain inserts a copy of the first record, under an
// ID of its own, at a seq outside the chain (after its head, or at or
// before its anchor), where the walk from the anchor to the head does not
// go: the API would list it as a decision, so verify must report it.
func testTamperOutsideTheChain(seq int64) func(t *testing.T, tp Tamper) {
	return func(t *testing.T, tp Tamper) {
		s := tp.Open()
		defer s.Close()
		recs := tamperFixture(t, s)
		VerifyLedger(t, s.(tollgate.LedgerStore))
		victim, forged := recs[0].Decision.ID, "01900000-0000-7000-8000-0000000000aa"
		record := fmt.Sprintf("replace(record, '%s', '%s')", victim, forged)
		if tp.Postgres {
			record = fmt.Sprintf("replace(record::text, '%s', '%s')::jsonb", victim, forged)
		}
		mustExec(t, tp, fmt.Sprintf(`INSERT INTO decisions (id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record, seq, prev_hash, hash)
			SELECT '%s', evaluated_at, project, pipeline, branch, environment, status, bundle_revision, %s, %d, prev_hash, hash FROM decisions WHERE id = '%s'`,
			forged, record, seq, victim))
		if _, err := s.Decision(t.Context(), forged); err != nil {
			t.Fatalf("the copy is not served: %v; the test no longer shows what verify must catch", err)
		}
		brokenAt(t, s.(tollgate.LedgerStore), 4, "1 records have no place in the chain")
		brokenAt(t, tp.readOnly(t), 4, "1 records have no place in the chain")
	}
}

// testTamperCooldownRolledBack points a cooldown at an earlier accepted
// decision of the same key, with that decision's time: each value names
// a real acceptance under the key, but not the latest one, so a release
// would go through sooner than the policy allows.
func testTamperCooldownRolledBack(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	recs := tamperFixture(t, s)
	sp := spec{project: "service-api", pipeline: "deploy-prod", branch: "main", status: tollgate.Accepted, at: recs[3].Decision.EvaluatedAt.Add(time.Hour)}
	decideWith(t, s, keyOf(sp), sp)
	VerifyLedger(t, s.(tollgate.LedgerStore))
	earlier := recs[1].Decision
	mustExec(t, tp, fmt.Sprintf("UPDATE cooldowns SET decision_id = '%s', last_accepted_at = %d WHERE branch = 'main'",
		earlier.ID, earlier.EvaluatedAt.UnixNano()))
	_, brk, err := ledger.Verify(t.Context(), s.(tollgate.LedgerStore), nil)
	if err != nil || brk == nil || !strings.Contains(brk.Error(), `branch "main"`) {
		t.Fatalf("Verify after the cooldown was rolled back to an earlier acceptance: %v, %v; want a break naming it", brk, err)
	}
}

// testRecordReencoded rewrites every stored record as its own JSON
// re-encoded (spacing, and on PostgreSQL its JSONB form): the canonical
// form, and so the chain, does not change, and verify holds. A change of
// content in the same statement does not hold.
func testRecordReencoded(t *testing.T, tp Tamper) {
	s := tp.Open()
	defer s.Close()
	recs := tamperFixture(t, s)
	query := `UPDATE decisions SET record = replace(replace(record, '{"', '{ "'), '":', '" :	')`
	if tp.Postgres {
		query = "UPDATE decisions SET record = jsonb_pretty(record)::jsonb"
	}
	mustExec(t, tp, query)
	if !tp.Postgres { // the records were re-spaced: else an error
		mustExec(t, tp, `SELECT CASE WHEN (SELECT count(*) FROM decisions WHERE instr(record, '{ "') > 0) = 4 THEN 1 ELSE json('not re-encoded') END`)
	}
	VerifyLedger(t, s.(tollgate.LedgerStore))
	query = fmt.Sprintf("UPDATE decisions SET record = json_set(record, '$.request.metadata.initiator', 'mallory') WHERE id = '%s'", recs[0].Decision.ID)
	if tp.Postgres {
		query = fmt.Sprintf(`UPDATE decisions SET record = jsonb_set(record, '{request,metadata,initiator}', '"mallory"') WHERE id = '%s'`, recs[0].Decision.ID)
	}
	mustExec(t, tp, query)
	brokenAt(t, s.(tollgate.LedgerStore), 1, "it was altered after it was recorded")
}
