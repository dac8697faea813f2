package tollgate

import (
	"context"
	"time"
)

// Record is a decision as the history keeps it: the answer, the request it
// answered and the context it was evaluated in. With the bundle revision in
// the decision, that is enough to replay it and get the same answer.
type Record struct {
	Decision Decision `json:"decision"`
	Request  Request  `json:"request"`
	Context  Context  `json:"context"`
	// Identity is who asked: the name of the API token, DevIdentity on a
	// server without authentication.
	Identity string `json:"identity"`
	// CooldownKey is the cooldown the decision was made under, set by the
	// store that records it (nil: none applied, or recorded before stores
	// kept it). An accepted record with a key started that key's cooldown:
	// hashed with the record, it lets verification check the stored
	// cooldowns against the ledger.
	CooldownKey *CooldownKey `json:"cooldown_key,omitempty"`
}

// DecisionStore is the decision history and the cooldown state.
// HistoryReader lists recorded decisions, newest first, one page at a
// time: what impact analyses and a reload's replay read.
type HistoryReader interface {
	Decisions(ctx context.Context, f DecisionFilter) (DecisionPage, error)
}

type DecisionStore interface {
	// Decide runs decide with the cooldown state of key and records the
	// Record it returns, as one atomic step: no other Decide for the same
	// key runs between the read and the write, across every process sharing
	// the store, so simultaneous requests cannot all pass a cooldown. An
	// accepted record starts the key's cooldown. A nil key means no cooldown
	// applies: decide gets the zero Cooldown. The record is durable when
	// Decide returns; if decide or the write fails, nothing is recorded.
	Decide(ctx context.Context, key *CooldownKey, decide func(Cooldown) (Record, error)) (Record, error)

	// Cooldown reads the cooldown state of key without recording anything,
	// for simulations.
	Cooldown(ctx context.Context, key CooldownKey) (Cooldown, error)

	// Decision returns one record by decision ID, or an ENotFound error.
	Decision(ctx context.Context, id string) (Record, error)

	// Decisions lists records, newest first, one page at a time.
	Decisions(ctx context.Context, f DecisionFilter) (DecisionPage, error)

	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error

	// Close flushes pending writes and releases the store.
	Close() error
}

// DecisionFilter selects history records. Zero fields do not filter.
type DecisionFilter struct {
	Project, Pipeline, Branch string
	Status                    Status
	Since, Until              time.Time // evaluated_at in [Since, Until)
	Limit                     int       // page size; the store caps it
	Cursor                    string    // NextCursor of the previous page
}

// DecisionPage is one page of history. NextCursor is empty on the last page.
type DecisionPage struct {
	Records    []Record
	NextCursor string
}

// Page sizes of DecisionFilter.Limit.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// EPSSStore keeps one day's Exploit Prediction Scoring System scores, as
// FIRST publishes them, for the gate to look findings up in.
type EPSSStore interface {
	// ImportEPSS replaces every stored score with set, in one transaction:
	// readers see the old set or the new one, never a mix, and a failed
	// import changes nothing.
	ImportEPSS(ctx context.Context, set EPSSSet) error

	// EPSS returns the scores of those of cves that are stored, by upper-case
	// CVE id, and which set they come from. Info is zero when no set was
	// ever imported.
	EPSS(ctx context.Context, cves []string) (map[string]EPSSScore, EPSSInfo, error)
}

// EPSSScore is the EPSS of one CVE.
type EPSSScore struct {
	CVE        string  `json:"cve"`        // upper case: CVE-2021-44228
	EPSS       float64 `json:"score"`      // probability of exploitation activity in the next 30 days, in [0,1]
	Percentile float64 `json:"percentile"` // share of scored CVEs with an EPSS no higher, in [0,1]
}

// EPSSSet is one day's scores, as one FIRST file carries them.
type EPSSSet struct {
	ModelVersion string    // v2025.03.14; may be empty
	ScoreDate    time.Time // when FIRST computed the scores
	Scores       []EPSSScore
}

// EPSSInfo describes the stored set.
type EPSSInfo struct {
	ModelVersion string
	ScoreDate    time.Time // UTC; zero when nothing was imported
	Count        int       // scores stored
}

// LedgerStore is the decision history seen as a hash chain (see
// adapters/ledger for the hash): every record the store keeps has a place in
// one chain, in the order the store committed them, and the hash of the one
// before it. Records older than the anchor were archived and pruned.
type LedgerStore interface {
	// LedgerHead returns the chain's anchor and head.
	LedgerHead(ctx context.Context) (LedgerHead, error)

	// LedgerEntries calls fn with each entry from seq from through seq
	// through, in seq order, reading a page at a time; it stops at fn's
	// first error and returns it. A seq the store does not hold is skipped:
	// the caller sees the gap.
	LedgerEntries(ctx context.Context, from, through int64, fn func(LedgerEntry) error) error

	// LedgerSeqSince returns the lowest seq of a record evaluated at or
	// after t, and false if there is none.
	LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error)

	// PruneLedger deletes the records through seq through, whose hash must
	// be hash (else nothing is deleted: EConflict), and makes that record
	// the chain's anchor. It returns how many records it deleted.
	PruneLedger(ctx context.Context, through int64, hash []byte) (int64, error)

	// LedgerCooldowns calls fn with every stored cooldown, the state the
	// accepted records imply, for verification to compare, and returns the
	// chain head's seq in the same snapshot: the records through it are
	// those the cooldowns reflect. It stops at fn's first error and returns
	// it.
	LedgerCooldowns(ctx context.Context, fn func(StoredCooldown) error) (int64, error)

	// LedgerBaselines is LedgerCooldowns for the drift baselines.
	LedgerBaselines(ctx context.Context, fn func(StoredBaseline) error) (int64, error)
}

// StoredBaseline is one stored drift baseline, as verification compares it
// with the accepted record that set it.
type StoredBaseline struct {
	Project, Environment string
	EvaluatedAt          time.Time
	// DecisionID is the decision that set it (kept when that decision is
	// pruned), DecisionSeq its place in the chain: 0 when the store does
	// not hold it.
	DecisionID  string
	DecisionSeq int64
	Baseline    []byte // as stored: a Baseline as JSON
}

// StoredCooldown is one row of a store's cooldown state: the latest
// accepted decision of a key, as the store keeps it.
type StoredCooldown struct {
	Key            CooldownKey
	LastAcceptedAt time.Time
	// DecisionID is the decision that started it, and DecisionSeq its
	// place in the chain; empty and 0 once that decision was archived and
	// pruned (DecisionSeq is 0 too if the store does not hold DecisionID).
	DecisionID  string
	DecisionSeq int64
}

// LedgerHead is where a store's chain starts and ends. The first record
// after the anchor has seq AnchorSeq+1 and prev_hash AnchorHash; the last
// has seq Seq and hash Hash. A chain that was never pruned is anchored at
// seq 0 and 32 zero bytes; an empty one ends there too.
type LedgerHead struct {
	AnchorSeq  int64
	AnchorHash []byte
	Seq        int64
	Hash       []byte
	// Unchained counts records that have no place in the chain, no seq or
	// one outside AnchorSeq+1..Seq: written around the store (by hand, in
	// SQL), which verification reports.
	Unchained int64
}

// LedgerEntry is one record with its place in the chain.
type LedgerEntry struct {
	Seq      int64
	PrevHash []byte
	Hash     []byte
	Record   []byte // the stored record, as JSON

	// The stored columns the history is listed, filtered and exported by:
	// copies of the record's fields, which verification checks against it.
	ID, Project, Pipeline, Branch, Environment, BundleRevision string
	Status                                                     Status
	EvaluatedAt                                                time.Time
}
