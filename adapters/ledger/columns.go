package ledger

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

// served is what of a record the stores copy into columns, to list,
// filter and export by, and what verification needs of it to check the
// cooldowns.
type served struct {
	Decision struct {
		ID             string          `json:"decision_id"`
		Status         tollgate.Status `json:"status"`
		Project        string          `json:"project"`
		Pipeline       string          `json:"pipeline"`
		Branch         string          `json:"branch"`
		Environment    string          `json:"environment"`
		BundleRevision string          `json:"bundle_revision"`
		EvaluatedAt    time.Time       `json:"evaluated_at"`
	} `json:"decision"`
	CooldownKey *tollgate.CooldownKey `json:"cooldown_key"`
}

func decodeServed(record []byte) (served, error) {
	var s served
	err := json.Unmarshal(record, &s)
	return s, err
}

// checkColumns compares the stored columns of e with the fields of its
// record they copy. The record is what the chain hashes; the columns are
// what the API, the CLI, the history page and exports select records by,
// so each one that disagrees is named, with both values.
func checkColumns(e tollgate.LedgerEntry) (served, *Break) {
	rec, err := decodeServed(e.Record)
	if err != nil {
		return rec, &Break{Seq: e.Seq, ID: e.ID, Reason: "the stored record is not a decision record: " + err.Error()}
	}
	d := rec.Decision
	var bad []string
	for _, c := range []struct{ column, stored, recorded string }{
		{"id", e.ID, d.ID},
		{"status", string(e.Status), string(d.Status)},
		{"project", e.Project, d.Project},
		{"pipeline", e.Pipeline, d.Pipeline},
		{"branch", e.Branch, d.Branch},
		{"environment", e.Environment, d.Environment},
		{"bundle_revision", e.BundleRevision, d.BundleRevision},
	} {
		if c.stored != c.recorded {
			bad = append(bad, fmt.Sprintf("%s is %q but the record says %q", c.column, c.stored, c.recorded))
		}
	}
	if !e.EvaluatedAt.Equal(d.EvaluatedAt) {
		bad = append(bad, fmt.Sprintf("evaluated_at is %s but the record says %s",
			e.EvaluatedAt.UTC().Format(time.RFC3339Nano), d.EvaluatedAt.UTC().Format(time.RFC3339Nano)))
	}
	if len(bad) > 0 {
		return rec, &Break{Seq: e.Seq, ID: d.ID, Reason: "the stored columns do not match the hashed record, they were edited around tollgate: " +
			strings.Join(bad, "; ")}
	}
	return rec, nil
}

// cooldowns checks the stored cooldowns against the accepted records of
// the chain. A cooldown is derived state: the latest accepted decision
// recorded under its key (Record.CooldownKey). It is read before the walk
// (the rows are one per key, few) and checked as the records go by; the
// records after asOf, recorded since the cooldowns were read, are left out.
type cooldowns struct {
	asOf   int64
	stored map[tollgate.CooldownKey]tollgate.StoredCooldown
	named  map[string]tollgate.CooldownKey // decision ID → the key of the cooldown naming it
	seen   map[string]bool                 // named decisions met in the chain
	latest map[tollgate.CooldownKey]started
}

// started is the accepted record that last started a key's cooldown.
type started struct {
	seq int64
	id  string
	at  time.Time
}

func newCooldowns(rows []tollgate.StoredCooldown, asOf, anchor int64) *cooldowns {
	c := &cooldowns{
		asOf:   asOf,
		stored: make(map[tollgate.CooldownKey]tollgate.StoredCooldown, len(rows)),
		named:  make(map[string]tollgate.CooldownKey),
		seen:   make(map[string]bool),
		latest: make(map[tollgate.CooldownKey]started),
	}
	for _, r := range rows {
		c.stored[r.Key] = r
		// A decision pruned since the cooldowns were read is not in the
		// walk; one the store does not hold at all (seq 0) is reported.
		if r.DecisionID != "" && (r.DecisionSeq == 0 || r.DecisionSeq > anchor) {
			c.named[r.DecisionID] = r.Key
		}
	}
	return c
}

func keyString(k tollgate.CooldownKey) string {
	return fmt.Sprintf("%s/%s on branch %q", k.Project, k.Pipeline, k.Branch)
}

// record checks the entry e, whose record is rec, against the cooldown
// naming it, if any, and notes the cooldown it started.
func (c *cooldowns) record(e tollgate.LedgerEntry, rec served) *Break {
	d := rec.Decision
	if key, ok := c.named[d.ID]; ok {
		c.seen[d.ID] = true
		// A record made before stores wrote the key in it started the
		// cooldown of its project, pipeline and branch.
		recKey := tollgate.CooldownKey{Project: d.Project, Pipeline: d.Pipeline, Branch: d.Branch}
		if rec.CooldownKey != nil {
			recKey = *rec.CooldownKey
		}
		row := c.stored[key]
		switch {
		case d.Status != tollgate.Accepted:
			return &Break{Seq: e.Seq, ID: d.ID, Reason: fmt.Sprintf("the cooldown of %s names this decision, which is %s: only an accepted decision starts a cooldown", keyString(key), d.Status)}
		case recKey != key:
			return &Break{Seq: e.Seq, ID: d.ID, Reason: fmt.Sprintf("the cooldown of %s names this decision, which started the cooldown of %s", keyString(key), keyString(recKey))}
		case !row.LastAcceptedAt.Equal(d.EvaluatedAt):
			return &Break{Seq: e.Seq, ID: d.ID, Reason: fmt.Sprintf("the cooldown of %s says it was last accepted at %s, but this decision, which it names, was evaluated at %s",
				keyString(key), row.LastAcceptedAt.UTC().Format(time.RFC3339Nano), d.EvaluatedAt.UTC().Format(time.RFC3339Nano))}
		}
	}
	if d.Status == tollgate.Accepted && rec.CooldownKey != nil && e.Seq <= c.asOf {
		// The store keeps the latest by evaluation time; of two at the same
		// time, the one committed last (the higher seq).
		if prev, ok := c.latest[*rec.CooldownKey]; !ok || !d.EvaluatedAt.Before(prev.at) {
			c.latest[*rec.CooldownKey] = started{seq: e.Seq, id: d.ID, at: d.EvaluatedAt}
		}
	}
	return nil
}

// finish checks, after the walk, that every cooldown names a decision the
// chain holds and that every key the chain started has its cooldown, at the
// latest accepted decision (or later, when that one was pruned).
func (c *cooldowns) finish() *Break {
	for id, key := range c.named {
		if !c.seen[id] {
			return &Break{Reason: fmt.Sprintf("the cooldown of %s names decision %s, which the ledger does not hold: the cooldown was edited around tollgate", keyString(key), id)}
		}
	}
	for key, s := range c.latest {
		row, ok := c.stored[key]
		switch {
		case !ok:
			return &Break{Seq: s.seq, ID: s.id, Reason: fmt.Sprintf("this accepted decision started the cooldown of %s, which the store no longer has: it was deleted around tollgate", keyString(key))}
		case row.DecisionID == "" && row.LastAcceptedAt.Before(s.at):
			return &Break{Seq: s.seq, ID: s.id, Reason: fmt.Sprintf("this accepted decision started the cooldown of %s at %s, but the store's cooldown says %s and names no decision",
				keyString(key), s.at.UTC().Format(time.RFC3339Nano), row.LastAcceptedAt.UTC().Format(time.RFC3339Nano))}
		case row.DecisionID != "" && row.DecisionID != s.id:
			return &Break{Seq: s.seq, ID: s.id, Reason: fmt.Sprintf("this is the latest accepted decision of %s, but its cooldown names decision %s", keyString(key), row.DecisionID)}
		}
	}
	return nil
}
