package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tollgate/tollgate"
)

// derived checks one table of derived state against the chain: rows, one
// per key, each a copy of what the latest accepted record that set the key
// set (a cooldown, a drift baseline). The rows are read before the walk
// (one per key: few) in one snapshot with the head's seq then, asOf; the
// records after asOf, recorded since, are left out.
type derived[K comparable] struct {
	kind[K]
	asOf, anchor int64
	stored       map[K]derivedRow
	named        map[string]K // decision ID → the key of the row naming it
	seen         map[string]bool
	latest       map[K]started
}

// kind is what differs between two kinds of derived state.
type kind[K comparable] struct {
	noun    string // "cooldown"
	started string // "started": what a record did to the row
	starts  string // "starts a cooldown"
	name    func(K) string
	// setBy is the key an accepted record set, if it set one, and the
	// digest of what it set (nil when the row holds nothing but the time).
	setBy func(served) (K, []byte, bool)
	// claimed is the key a record a row names must have set, for records
	// too old to say (nil: setBy's).
	claimed func(served) (K, bool)
	// dangling: the rows keep the IDs of pruned decisions (no foreign key),
	// so a row naming a decision the store does not hold is not an error
	// once the chain was pruned.
	dangling bool
}

// derivedRow is one stored row, as derived compares it.
type derivedRow struct {
	at     time.Time
	id     string // the decision it names; "" for none
	seq    int64  // that decision's seq; 0 when the store does not hold it
	digest []byte // of the value it holds; nil when it holds only the time
}

// started is the accepted record that last set a key.
type started struct {
	seq    int64
	id     string
	at     time.Time
	digest []byte
}

// derivedRows is the derived state of a store, as read before a walk.
type derivedRows struct {
	cooldowns                    map[tollgate.CooldownKey]derivedRow
	baselines                    map[baselineKey]derivedRow
	cooldownsAsOf, baselinesAsOf int64
}

// readDerived reads the cooldowns and the drift baselines of s. A baseline
// that is not JSON is a break.
func readDerived(ctx context.Context, s tollgate.LedgerStore) (derivedRows, *Break, error) {
	rows := derivedRows{cooldowns: make(map[tollgate.CooldownKey]derivedRow), baselines: make(map[baselineKey]derivedRow)}
	var err error
	rows.cooldownsAsOf, err = s.LedgerCooldowns(ctx, func(c tollgate.StoredCooldown) error {
		rows.cooldowns[c.Key] = derivedRow{at: c.LastAcceptedAt, id: c.DecisionID, seq: c.DecisionSeq}
		return nil
	})
	if err != nil {
		return rows, nil, err
	}
	var brk *Break
	rows.baselinesAsOf, err = s.LedgerBaselines(ctx, func(b tollgate.StoredBaseline) error {
		key := baselineKey{b.Project, b.Environment}
		digest, err := Digest(b.Baseline)
		if err != nil {
			brk = &Break{Reason: fmt.Sprintf("the drift baseline of %s is not valid JSON: %v", baselines.name(key), err)}
			return brk
		}
		rows.baselines[key] = derivedRow{at: b.EvaluatedAt, id: b.DecisionID, seq: b.DecisionSeq, digest: digest}
		return nil
	})
	if brk != nil {
		return rows, brk, nil
	}
	return rows, nil, err
}

func newDerived[K comparable](k kind[K], rows map[K]derivedRow, asOf, anchor int64) *derived[K] {
	d := &derived[K]{kind: k, asOf: asOf, anchor: anchor, stored: rows,
		named: make(map[string]K), seen: make(map[string]bool), latest: make(map[K]started)}
	for key, r := range rows {
		// A decision pruned since the rows were read is not in the walk;
		// one the store does not hold at all (seq 0) is reported, unless
		// the rows keep the IDs of pruned ones and some were pruned.
		if r.id != "" && (r.seq > anchor || (r.seq == 0 && !(k.dangling && anchor > 0))) {
			d.named[r.id] = key
		}
	}
	return d
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// record checks the entry e, whose record is rec, against the row naming
// it, if any, and notes the key it set.
func (d *derived[K]) record(e tollgate.LedgerEntry, rec served) *Break {
	dec := rec.Decision
	key, named := d.named[dec.ID]
	var (
		set    K
		digest []byte
		sets   bool
	)
	if dec.Status == tollgate.Accepted || named {
		set, digest, sets = d.setBy(rec)
	}
	if named {
		d.seen[dec.ID] = true
		row := d.stored[key]
		claimed, claims := set, sets
		if d.claimed != nil {
			claimed, claims = d.claimed(rec)
		}
		switch {
		case dec.Status != tollgate.Accepted:
			return &Break{Seq: e.Seq, ID: dec.ID, Reason: fmt.Sprintf("the %s of %s names this decision, which is %s: only an accepted decision %s",
				d.noun, d.name(key), dec.Status, d.starts)}
		case !claims:
			return &Break{Seq: e.Seq, ID: dec.ID, Reason: fmt.Sprintf("the %s of %s names this decision, which %s none", d.noun, d.name(key), d.started)}
		case claimed != key:
			return &Break{Seq: e.Seq, ID: dec.ID, Reason: fmt.Sprintf("the %s of %s names this decision, which %s the %s of %s",
				d.noun, d.name(key), d.started, d.noun, d.name(claimed))}
		case !row.at.Equal(dec.EvaluatedAt):
			return &Break{Seq: e.Seq, ID: dec.ID, Reason: fmt.Sprintf("the %s of %s says it was set at %s, but this decision, which it names, was evaluated at %s",
				d.noun, d.name(key), stamp(row.at), stamp(dec.EvaluatedAt))}
		case row.digest != nil && !bytes.Equal(row.digest, digest):
			return &Break{Seq: e.Seq, ID: dec.ID, Reason: fmt.Sprintf("the %s of %s names this decision, but does not hold what it %s: it was edited around tollgate",
				d.noun, d.name(key), d.started)}
		}
	}
	if sets && dec.Status == tollgate.Accepted && e.Seq <= d.asOf {
		// The store keeps the latest by evaluation time; of two at the same
		// time, the one committed last (the higher seq).
		if prev, ok := d.latest[set]; !ok || !dec.EvaluatedAt.Before(prev.at) {
			d.latest[set] = started{seq: e.Seq, id: dec.ID, at: dec.EvaluatedAt, digest: digest}
		}
	}
	return nil
}

// finish checks, after the walk, that every row names a decision the chain
// holds, and that every key the chain set has its row, naming the latest
// record that set it (or naming none the chain holds, when that one was
// pruned, and no older).
func (d *derived[K]) finish() *Break {
	for id, key := range d.named {
		if !d.seen[id] {
			return &Break{Reason: fmt.Sprintf("the %s of %s names decision %s, which the ledger does not hold: the %s was edited around tollgate", d.noun, d.name(key), id, d.noun)}
		}
	}
	for key, s := range d.latest {
		row, ok := d.stored[key]
		_, held := d.named[row.id]
		switch {
		case !ok:
			return &Break{Seq: s.seq, ID: s.id, Reason: fmt.Sprintf("this accepted decision %s the %s of %s, which the store no longer has: it was deleted around tollgate",
				d.started, d.noun, d.name(key))}
		case !held && row.at.Before(s.at):
			return &Break{Seq: s.seq, ID: s.id, Reason: fmt.Sprintf("this accepted decision %s the %s of %s at %s, but the store's %s says %s and names no decision in the ledger",
				d.started, d.noun, d.name(key), stamp(s.at), d.noun, stamp(row.at))}
		case held && row.id != s.id:
			return &Break{Seq: s.seq, ID: s.id, Reason: fmt.Sprintf("this is the latest accepted decision that %s the %s of %s, but the %s names decision %s",
				d.started, d.noun, d.name(key), d.noun, row.id)}
		}
	}
	return nil
}

// cooldowns is the cooldown state: the time of the latest accepted
// decision recorded under each cooldown key (Record.CooldownKey).
var cooldowns = kind[tollgate.CooldownKey]{
	noun: "cooldown", started: "started", starts: "starts a cooldown",
	name: func(k tollgate.CooldownKey) string {
		return fmt.Sprintf("%s/%s on branch %q", k.Project, k.Pipeline, k.Branch)
	},
	setBy: func(rec served) (tollgate.CooldownKey, []byte, bool) {
		if rec.CooldownKey == nil {
			return tollgate.CooldownKey{}, nil, false
		}
		return *rec.CooldownKey, nil, true
	},
	// A record made before stores wrote the key in it started the cooldown
	// of its project, pipeline and branch, if any.
	claimed: func(rec served) (tollgate.CooldownKey, bool) {
		if rec.CooldownKey != nil {
			return *rec.CooldownKey, true
		}
		d := rec.Decision
		return tollgate.CooldownKey{Project: d.Project, Pipeline: d.Pipeline, Branch: d.Branch}, true
	},
}

// baselineKey is the key of a drift baseline.
type baselineKey struct{ project, environment string }

// baselines are the drift baselines: the scored scan of the latest
// accepted decision of each project and environment that had one, with
// its decision ID (storekit.BaselineOf).
var baselines = kind[baselineKey]{
	noun: "drift baseline", started: "set", starts: "sets a drift baseline",
	name: func(k baselineKey) string { return fmt.Sprintf("%s in %s", k.project, k.environment) },
	setBy: func(rec served) (baselineKey, []byte, bool) {
		d := rec.Decision
		if d.Project == "" || len(rec.Context.Scan) == 0 || string(rec.Context.Scan) == "null" {
			return baselineKey{}, nil, false
		}
		digest, err := baselineDigest(d.ID, rec.Context.Scan)
		if err != nil {
			return baselineKey{}, nil, false
		}
		return baselineKey{d.Project, d.Environment}, digest, true
	},
	dangling: true,
}

// baselineDigest is the digest of the baseline a record with decision ID id
// and scan scan sets: the scan's members and decision_id, canonical.
func baselineDigest(id string, scan json.RawMessage) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(scan, &members); err != nil {
		return nil, err
	}
	quoted, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	members["decision_id"] = quoted
	data, err := json.Marshal(members)
	if err != nil {
		return nil, err
	}
	return Digest(data)
}
