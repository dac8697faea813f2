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
	Context struct {
		Scan json.RawMessage `json:"scan"`
	} `json:"context"`
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
