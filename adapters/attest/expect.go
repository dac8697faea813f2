package attest

import (
	"fmt"
	"time"
)

// Expect is what a deploy step requires of an attested decision besides
// its signature: that it is about this run. Empty fields, and a zero
// MaxAge, are not checked.
type Expect struct {
	Repository, Branch, Pipeline, RunID, Environment string
	// MaxAge is how old the decision may be: a decision is for now, not
	// for a deployment an hour later.
	MaxAge time.Duration
}

// Mismatches lists how a falls short of e at now, one sentence each,
// naming the flag of verify-decision that asked; none when it does not.
func (a Attestation) Mismatches(e Expect, now time.Time) []string {
	var out []string
	for _, c := range []struct{ flag, noun, want, got string }{
		{"repository", "repository", e.Repository, a.Request.Repository},
		{"branch", "branch", e.Branch, a.Decision.Branch},
		{"pipeline", "pipeline", e.Pipeline, a.Decision.Pipeline},
		{"run-id", "run ID", e.RunID, a.Request.Metadata.RunID},
		{"environment", "environment", e.Environment, a.Decision.Environment},
	} {
		if c.want != "" && c.got != c.want {
			out = append(out, fmt.Sprintf("--%s %s: the decision is for %s %q", c.flag, c.want, c.noun, c.got))
		}
	}
	if age := now.Sub(a.Decision.EvaluatedAt); e.MaxAge > 0 && age > e.MaxAge {
		out = append(out, fmt.Sprintf("--max-age %v: the decision was made %v ago, at %s",
			e.MaxAge, age.Round(time.Second), a.Decision.EvaluatedAt.UTC().Format(time.RFC3339)))
	}
	return out
}
