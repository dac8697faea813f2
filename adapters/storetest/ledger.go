package storetest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// ledgerTests are the conformance checks of tollgate.LedgerStore, which
// every store must be.
var ledgerTests = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Ledger/EmptyChain", testLedgerEmpty},
	{"Ledger/ConcurrentRecordsMakeOneChain", testLedgerConcurrent},
	{"Ledger/CanonicalAcrossEncodings", testLedgerCanonical},
	{"Ledger/DurableAcrossReopen", testLedgerDurable},
	{"Ledger/ExportThousandsFilteredAndSigned", testLedgerExport},
	{"Ledger/ExportSince", testLedgerExportSince},
	{"Ledger/PruneKeepsTheRestVerifiable", testLedgerPrune},
	{"Ledger/PruneRefusesAnotherRecord", testLedgerPruneConflict},
}

func (h *harness) ledger() tollgate.LedgerStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.LedgerStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.LedgerStore", h.store)
	}
	return s
}

// VerifyLedger verifies the chain of s and fails t at a break.
func VerifyLedger(t *testing.T, s tollgate.LedgerStore) ledger.Summary {
	t.Helper()
	sum, brk, err := ledger.Verify(t.Context(), s, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if brk != nil {
		t.Fatalf("Verify: the chain is broken: %v", brk)
	}
	return sum
}

// BrokenAt verifies the chain of s and fails t unless it breaks at seq, with
// a reason containing want.
func BrokenAt(t *testing.T, s tollgate.LedgerStore, seq int64, want string) {
	t.Helper()
	_, brk, err := ledger.Verify(t.Context(), s, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if brk == nil || brk.Seq != seq || !strings.Contains(brk.Reason, want) {
		t.Fatalf("Verify: break %v; want one at seq %d saying %q", brk, seq, want)
	}
}

func ledgerHead(t *testing.T, s tollgate.LedgerStore) tollgate.LedgerHead {
	t.Helper()
	h, err := s.LedgerHead(t.Context())
	if err != nil {
		t.Fatalf("LedgerHead: %v", err)
	}
	return h
}

// entries reads the whole chain.
func entries(t *testing.T, s tollgate.LedgerStore) []tollgate.LedgerEntry {
	t.Helper()
	head := ledgerHead(t, s)
	var es []tollgate.LedgerEntry
	if err := s.LedgerEntries(t.Context(), head.AnchorSeq+1, head.Seq, func(e tollgate.LedgerEntry) error {
		es = append(es, e)
		return nil
	}); err != nil {
		t.Fatalf("LedgerEntries: %v", err)
	}
	return es
}

func testLedgerEmpty(t *testing.T, h *harness) {
	head := ledgerHead(t, h.ledger())
	zero := ledger.Genesis()
	if head.Seq != 0 || head.AnchorSeq != 0 || !bytes.Equal(head.Hash, zero) || !bytes.Equal(head.AnchorHash, zero) || head.Unchained != 0 {
		t.Fatalf("head of an empty store = %+v; want seq 0 and 32 zero bytes, anchored at the same", head)
	}
	if sum := VerifyLedger(t, h.ledger()); sum.Records != 0 {
		t.Fatalf("Verify of an empty chain checked %d records", sum.Records)
	}
}

// testLedgerConcurrent records from many goroutines, with and without
// cooldown keys (through the group-commit writer and, on PostgreSQL,
// transactions of their own), and expects one unbroken chain holding each
// record once.
func testLedgerConcurrent(t *testing.T, h *harness) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				sp := spec{branch: fmt.Sprintf("b-%d-%d", w, i), status: tollgate.Refused}
				var key *tollgate.CooldownKey
				if i%2 == 0 {
					sp.status = tollgate.Accepted
					key = keyOf(spec{project: "service-api", pipeline: "deploy-prod", branch: sp.branch})
				}
				if _, err := h.store.Decide(t.Context(), key, fixed(sp.record())); err != nil {
					t.Errorf("Decide: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	sum := VerifyLedger(t, h.ledger())
	if sum.Records != workers*each {
		t.Fatalf("Verify checked %d records; want %d", sum.Records, workers*each)
	}
	es := entries(t, h.ledger())
	seen := map[string]bool{}
	for i, e := range es {
		if e.Seq != int64(i+1) || seen[e.ID] {
			t.Fatalf("entry %d: seq %d, decision %s (seen before: %v)", i, e.Seq, e.ID, seen[e.ID])
		}
		seen[e.ID] = true
	}
	if head := ledgerHead(t, h.ledger()); head.Seq != workers*each || !bytes.Equal(head.Hash, es[len(es)-1].Hash) {
		t.Fatalf("head %+v is not the last record", head)
	}
}

// testLedgerCanonical records what a database may re-encode (PostgreSQL's
// JSONB: key order, escapes, numbers) and expects the stored record to hash
// as it did when recorded.
func testLedgerCanonical(t *testing.T, h *harness) {
	rec := spec{branch: "feature/<é>&\u2028\"quoted\"\t€"}.record()
	rec.Request.Metadata.Initiator = "Zoë \\ 日本 \U0001F600"
	rec.Decision.Reasons = []tollgate.Reason{{Code: "risk_threshold_exceeded", Message: "CVSS 9.8 > 7.0, risk 1e-7"}}
	put(t, h.store, rec)
	VerifyLedger(t, h.ledger())
}

func testLedgerDurable(t *testing.T, h *harness) {
	putAll(t, h.store, []spec{{}, {}, {}})
	before := ledgerHead(t, h.ledger())
	h.reopen()
	if after := ledgerHead(t, h.ledger()); after.Seq != 3 || !bytes.Equal(after.Hash, before.Hash) {
		t.Fatalf("head after reopen %+v; want %+v", after, before)
	}
	putAll(t, h.store, []spec{{}, {}})
	if sum := VerifyLedger(t, h.ledger()); sum.Records != 5 {
		t.Fatalf("Verify checked %d records; want 5", sum.Records)
	}
}

// putMany records n records, every third one for project "payments".
func putMany(t *testing.T, s tollgate.DecisionStore, n int, at func(i int) time.Time) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sp := spec{branch: "b" + strconv.Itoa(i), at: at(i)}
			if i%3 == 0 {
				sp.project = "payments"
			}
			if _, err := s.Decide(t.Context(), nil, fixed(sp.record())); err != nil {
				t.Errorf("Decide: %v", err)
			}
		})
	}
	wg.Wait()
}

func testLedgerExport(t *testing.T, h *harness) {
	// A few thousand: the export streams them a page of lines at a time.
	const n = 2001
	putMany(t, h.store, n, func(int) time.Time { return base })
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	flushes := 0
	sum, err := ledger.Export(t.Context(), &out, h.ledger(), ledger.ExportOptions{
		Filter: tollgate.DecisionFilter{Project: "payments"},
		Signer: priv,
		Flush:  func() { flushes++ },
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if sum.Records != (n+2)/3 || sum.From != 1 || sum.Through != n {
		t.Fatalf("Export summary %+v; want %d records of seq 1..%d", sum, (n+2)/3, n)
	}
	if flushes < n/500-1 {
		t.Fatalf("Export flushed %d times for %d lines: it should stream", flushes, n+2)
	}
	if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != n+2 {
		t.Fatalf("export has %d lines; want %d (start, one per record, end)", lines, n+2)
	}
	got, brk, err := ledger.VerifyExport(bytes.NewReader(out.Bytes()), pub)
	if err != nil || brk != nil {
		t.Fatalf("VerifyExport: %v, %v", brk, err)
	}
	if got.Records != (n+2)/3 || got.Links != n-(n+2)/3 || got.EndSeq != n || got.Key != ledger.KeyID(pub) {
		t.Fatalf("VerifyExport summary %+v", got)
	}

	// Altered, signed by another key: each is caught.
	// (The first record, not the start line's filter, which names the
	// project too.)
	start := bytes.IndexByte(out.Bytes(), '\n') + 1
	tampered := append(bytes.Clone(out.Bytes()[:start]),
		bytes.Replace(out.Bytes()[start:], []byte(`"project":"payments"`), []byte(`"project":"paymentz"`), 1)...)
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(tampered), pub); brk == nil || !strings.Contains(brk.Reason, "altered") {
		t.Fatalf("VerifyExport of an altered record: %v; want a break saying altered", brk)
	}
	refiltered := bytes.Replace(out.Bytes(), []byte(`"filter":{"project":"payments"}`), []byte(`"filter":{"project":"paymentz"}`), 1)
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(refiltered), pub); brk == nil || !strings.Contains(brk.Reason, "filters do not select") {
		t.Fatalf("VerifyExport with another filter stated: %v; want a break saying the filters do not select a record", brk)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(out.Bytes()), other); brk == nil || !strings.Contains(brk.Reason, "not by the key given") {
		t.Fatalf("VerifyExport with another key: %v", brk)
	}
	cut := out.Bytes()[:bytes.LastIndex(out.Bytes()[:out.Len()-1], []byte("\n"))+1]
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(cut), pub); brk == nil || !strings.Contains(brk.Reason, "cut short") {
		t.Fatalf("VerifyExport of an export without its end: %v", brk)
	}
	// Lines after the signed end line are outside the signature: a record
	// line, or a whole second export, appended must not pass as part of it.
	lastRecord := out.Bytes()[bytes.LastIndex(cut[:len(cut)-1], []byte("\n"))+1 : len(cut)]
	for name, extra := range map[string][]byte{
		"a record line":   lastRecord,
		"a second export": out.Bytes(),
		"a stray value":   []byte("{}\n"),
	} {
		appended := append(bytes.Clone(out.Bytes()), extra...)
		if _, brk, _ := ledger.VerifyExport(bytes.NewReader(appended), pub); brk == nil || !strings.Contains(brk.Reason, "after the end line") {
			t.Fatalf("VerifyExport with %s after the end line: %v; want a break saying so", name, brk)
		}
	}
	// A line must read the same to every JSON reader: a forged record
	// under "record" first and the real one under a key encoding/json
	// also takes for it (another case, or the same key again) last shows
	// jq and the like the forgery under a sound chain.
	rl := bytes.Index(out.Bytes(), []byte(`{"type":"record"`))
	recordLine := out.Bytes()[rl : rl+bytes.IndexByte(out.Bytes()[rl:], '\n')+1]
	forged := bytes.Replace(recordLine, []byte(`"record":{`), []byte(`"record":{"forged":true},"record":{`), 1)
	recased := bytes.Replace(recordLine, []byte(`"record":{`), []byte(`"record":{"forged":true},"Record":{`), 1)
	for name, line := range map[string][]byte{"a key twice": forged, "a key in another case": recased} {
		swapped := bytes.Replace(bytes.Clone(out.Bytes()), recordLine, line, 1)
		if _, brk, _ := ledger.VerifyExport(bytes.NewReader(swapped), pub); brk == nil || !strings.Contains(brk.Reason, "record") {
			t.Fatalf("VerifyExport of a line with %s: %v; want a break naming the key", name, brk)
		}
	}
	// Relabelled as the older format, whose signature covers less: the
	// signature over the v2 text does not verify as a v1 one.
	downgraded := bytes.Replace(out.Bytes(), []byte(`"format":"`+ledger.Format+`"`), []byte(`"format":"`+ledger.FormatV1+`"`), 1)
	if bytes.Equal(downgraded, out.Bytes()) {
		t.Fatal("the start line does not state the format as expected")
	}
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(downgraded), pub); brk == nil || !strings.Contains(brk.Reason, "signature of the end line is not valid") {
		t.Fatalf("VerifyExport of a v2 export relabelled v1: %v; want the signature to fail", brk)
	}
	if _, brk, _ := ledger.VerifyExport(bytes.NewReader(append(bytes.Clone(out.Bytes()), " \n\n"...)), pub); brk != nil {
		t.Fatalf("VerifyExport with blank lines after the end line: %v; want sound", brk)
	}
}

func testLedgerExportSince(t *testing.T, h *harness) {
	putMany(t, h.store, 1, func(int) time.Time { return base })
	putMany(t, h.store, 1, func(int) time.Time { return base.Add(time.Hour) })
	putMany(t, h.store, 1, func(int) time.Time { return base.Add(2 * time.Hour) })
	var out bytes.Buffer
	sum, err := ledger.Export(t.Context(), &out, h.ledger(), ledger.ExportOptions{
		Filter: tollgate.DecisionFilter{Since: base.Add(time.Hour), Until: base.Add(2 * time.Hour)},
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if sum.From != 2 || sum.Through != 3 || sum.Records != 1 {
		t.Fatalf("Export since the 2nd record: %+v; want seq 2..3 with one record", sum)
	}
	got, brk, err := ledger.VerifyExport(&out, nil)
	if err != nil || brk != nil || got.StartSeq != 1 || got.Records != 1 || got.Links != 1 {
		t.Fatalf("VerifyExport: %+v, %v, %v", got, brk, err)
	}
}

func testLedgerPrune(t *testing.T, h *harness) {
	putMany(t, h.store, 30, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	es := entries(t, h.ledger())
	n, err := h.ledger().PruneLedger(t.Context(), 10, es[9].Hash)
	if err != nil || n != 10 {
		t.Fatalf("PruneLedger through 10 = %d, %v; want 10 deleted", n, err)
	}
	head := ledgerHead(t, h.ledger())
	if head.AnchorSeq != 10 || !bytes.Equal(head.AnchorHash, es[9].Hash) {
		t.Fatalf("anchor after pruning = %d %x; want 10 %x", head.AnchorSeq, head.AnchorHash, es[9].Hash)
	}
	if sum := VerifyLedger(t, h.ledger()); sum.Records != 20 || sum.From != 11 {
		t.Fatalf("Verify after pruning: %+v; want 20 records from seq 11", sum)
	}
	if _, err := h.store.Decision(t.Context(), es[0].ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("a pruned decision: %v; want not found", err)
	}
	putMany(t, h.store, 2, func(int) time.Time { return base })
	h.reopen()
	if sum := VerifyLedger(t, h.ledger()); sum.Records != 22 {
		t.Fatalf("Verify after recording more and reopening: %+v", sum)
	}
	if n, err := h.ledger().PruneLedger(t.Context(), 10, es[9].Hash); err == nil || n != 0 {
		t.Fatalf("PruneLedger of pruned records = %d, %v; want an error, nothing deleted", n, err)
	}
}

func testLedgerPruneConflict(t *testing.T, h *harness) {
	putMany(t, h.store, 5, func(int) time.Time { return base })
	n, err := h.ledger().PruneLedger(t.Context(), 3, ledger.Genesis())
	var tgErr *tollgate.Error
	if n != 0 || !errors.As(err, &tgErr) || tgErr.Code != tollgate.EConflict {
		t.Fatalf("PruneLedger with another record's hash = %d, %v; want EConflict, nothing deleted", n, err)
	}
	if sum := VerifyLedger(t, h.ledger()); sum.Records != 5 {
		t.Fatalf("Verify: %+v; want the 5 records", sum)
	}
}
