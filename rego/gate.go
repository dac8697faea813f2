package rego

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

// PolicySource gives the policy to use now. *Engine is one; a request loads
// it once and uses that snapshot to the end, even if a reload swaps it.
type PolicySource interface {
	Policy() *Policy
}

// LicenceChecker reports the licence status at a given time
// (*licence.Verifier).
type LicenceChecker interface {
	Check(at time.Time) tollgate.Licence
}

// Gate decides requests the way the service does: it reads the clock, the
// licence and the cooldown state, evaluates the policy and records the
// decision, with the cooldown check and the record as one atomic step.
type Gate struct {
	Policies PolicySource
	Store    tollgate.DecisionStore
	Licence  LicenceChecker
	Now      func() time.Time // the clock adapter: time.Now in production
	NewID    func() string    // decision IDs, time-ordered
	// Score picks and computes the CVSS score of a finding from its vectors
	// (cvss.Best in production); ok is false when none can be scored.
	Score func([]tollgate.CVSSVector) (receipt tollgate.ScoreReceipt, ok bool)
	// EPSS, if set, gives the findings of a scan the EPSS of their CVE. A
	// lookup that fails fails the evaluation: a finding is never judged
	// without its score because the store could not be read.
	EPSS tollgate.EPSSStore
}

// epssLookup is the EPSS of a scan's CVEs, and which EPSS set it is from.
type epssLookup struct {
	scores map[string]tollgate.EPSSScore
	info   tollgate.EPSSInfo
}

// epss looks up the EPSS of the CVEs of scan's findings: empty without a
// scan, without an EPSSStore or without any CVE.
func (g *Gate) epss(ctx context.Context, scan *tollgate.Scan) (epssLookup, error) {
	if scan == nil || g.EPSS == nil {
		return epssLookup{}, nil
	}
	var cves []string
	for _, f := range scan.Findings {
		cves = append(cves, findingCVEs(f)...)
	}
	if len(cves) == 0 {
		return epssLookup{}, nil
	}
	scores, info, err := g.EPSS.EPSS(ctx, cves)
	if err != nil {
		return epssLookup{}, fmt.Errorf("EPSS lookup: %w", err)
	}
	return epssLookup{scores: scores, info: info}, nil
}

// findingCVEs is the upper-case CVE ids of f, its ID first, then its aliases.
func findingCVEs(f tollgate.Finding) []string {
	var out []string
	for _, id := range append([]string{f.ID}, f.Aliases...) {
		if id = strings.ToUpper(id); strings.HasPrefix(id, "CVE-") {
			out = append(out, id)
		}
	}
	return out
}

// findingEPSS is the score of f's first CVE that has one: its ID's, else an
// alias's.
func findingEPSS(f tollgate.Finding, scores map[string]tollgate.EPSSScore) *tollgate.EPSSScore {
	for _, id := range findingCVEs(f) {
		if sc, ok := scores[id]; ok {
			return &sc
		}
	}
	return nil
}

// release scores a scan submitted at now for the security gates.
func (g *Gate) release(scan *tollgate.Scan, now time.Time, epss epssLookup) *tollgate.Release {
	if scan == nil {
		return nil
	}
	r := &tollgate.Release{ScannedAt: now, Format: scan.Format, Unidentified: scan.Unidentified,
		EPSSModel: epss.info.ModelVersion, EPSSDate: epss.info.ScoreDate,
		Findings: make([]tollgate.ScoredFinding, len(scan.Findings))}
	for i, f := range scan.Findings {
		r.Findings[i].Finding = f
		if receipt, ok := g.Score(f.CVSS); ok {
			r.Findings[i].Score = &receipt
		}
		r.Findings[i].EPSS = findingEPSS(f, epss.scores)
	}
	return r
}

// Evaluate decides on r, with the scan of the release if there is one, and
// records the decision before returning it. An error means nothing was
// recorded and the request must not proceed: the caller answers 503, never
// accepted.
func (g *Gate) Evaluate(ctx context.Context, r tollgate.Request, scan *tollgate.Scan) (tollgate.Record, error) {
	policy := g.Policies.Policy()
	// Read before the cooldown key is held, so that the lookup does not
	// lengthen the wait of the requests queued behind this one.
	epss, err := g.epss(ctx, scan)
	if err != nil {
		return tollgate.Record{}, err
	}
	var key *tollgate.CooldownKey
	if k, ok := policy.CooldownKey(r); ok {
		key = &k
	}
	return g.Store.Decide(ctx, key, func(cooldown tollgate.Cooldown) (tollgate.Record, error) {
		// The clock is read once the key is held, so that a request that
		// waited for another one sees the cooldown that one started.
		now := g.Now().UTC()
		c := tollgate.Context{Now: now, Licence: g.Licence.Check(now), Cooldown: cooldown, Scan: g.release(scan, now, epss)}
		d := policy.Evaluate(ctx, r, c)
		d.ID = g.NewID()
		return tollgate.Record{Decision: d, Request: r, Context: c}, nil
	})
}

// Simulation is a "what if" question: another time, another cooldown state,
// another configuration. Nil fields mean "as it is now".
type Simulation struct {
	Request      tollgate.Request
	Scan         *tollgate.Scan
	At           *time.Time
	Cooldown     *tollgate.Cooldown
	GlobalPolicy any // replaces data.tollgate.config.global_policy
	Projects     any // replaces data.tollgate.config.projects
}

// Simulate answers a Simulation without side effects: nothing is recorded
// and no cooldown starts. Without a Cooldown it reads the current state, so
// that a simulation predicts what an evaluation would answer.
func (g *Gate) Simulate(ctx context.Context, s Simulation) (tollgate.Decision, error) {
	policy := g.Policies.Policy()
	if s.GlobalPolicy != nil || s.Projects != nil {
		b, err := policy.Bundle().WithConfig(s.GlobalPolicy, s.Projects)
		if err != nil {
			return tollgate.Decision{}, tollgate.Errorf(tollgate.EInvalid, "config: %v", err)
		}
		if policy, err = Compile(ctx, b); err != nil {
			return tollgate.Decision{}, fmt.Errorf("simulate: %w", err)
		}
	}
	epss, err := g.epss(ctx, s.Scan)
	if err != nil {
		return tollgate.Decision{}, err
	}
	now := g.Now().UTC()
	if s.At != nil {
		now = s.At.UTC()
	}
	c := tollgate.Context{Now: now, Licence: g.Licence.Check(now), Scan: g.release(s.Scan, now, epss)}
	switch key, ok := policy.CooldownKey(s.Request); {
	case s.Cooldown != nil:
		c.Cooldown = *s.Cooldown
	case ok:
		cooldown, err := g.Store.Cooldown(ctx, key)
		if err != nil {
			return tollgate.Decision{}, err
		}
		c.Cooldown = cooldown
	}
	d := policy.Evaluate(ctx, s.Request, c)
	d.Simulated = true
	d.Findings = policy.Breakdown(ctx, s.Request, c)
	return d, nil
}

// configRevision names a bundle whose configuration a simulation replaced:
// the bundle's revision plus a hash of the replacement.
func configRevision(base string, globalPolicy, projects any) string {
	h := sha256.New()
	json.NewEncoder(h).Encode([]any{globalPolicy, projects}) // map keys sorted: canonical
	return base + "+config:" + hex.EncodeToString(h.Sum(nil))[:12]
}
