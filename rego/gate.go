package rego

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

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
	// EPSS, if set, gives the findings of a scan the EPSS of their CVE.
	EPSS tollgate.EPSSStore
	// Scans, if set, holds the scans evaluations name by ID and the drift
	// baselines.
	Scans tollgate.ScanStore
	// Controls, if set, gives the exceptions, emergency freezes and
	// incident in force (*Controls in production).
	Controls ControlSource
	// Bundles, if set, keeps the bundle revision of every decision before
	// the decision is recorded, so that every recorded decision can be
	// replayed (`tollgate replay`).
	Bundles *Keeper
}

// ControlSource gives the controls in force at a time.
type ControlSource interface {
	InForce(ctx context.Context, at time.Time) ([]tollgate.Control, error)
}

// ScanSource is the scan of the release an evaluation judges: a report
// sent with the request, or the ID of a scan stored earlier (POST
// /v1/scans). The zero value means no scan.
type ScanSource struct {
	Report *tollgate.Scan
	ID     string
	// VEX are the statements of a VEX document sent beside the scan,
	// applied to it (tollgate.Scan.WithVEX) whichever way it came.
	VEX []tollgate.VEXStatement
}

// evidence is what an evaluation reads before it decides: the scan, the
// EPSS of its CVEs, the release it is compared with and the controls in
// force.
type evidence struct {
	project  string // the request's, "" when unmanaged
	scan     *tollgate.Scan
	stored   *tollgate.StoredScan // when the scan was stored earlier
	epss     map[string]tollgate.EPSSScore
	epssInfo tollgate.EPSSInfo
	baseline *tollgate.Baseline
	controls []tollgate.Control
}

// gather reads the evidence of r under policy. A failed read fails the
// evaluation: a release is never judged without its scores, its baseline or
// the controls in force because the store could not be read.
func (g *Gate) gather(ctx context.Context, policy *Policy, r tollgate.Request, src ScanSource) (evidence, error) {
	var ev evidence
	ev.project, _ = policy.Project(r)
	if g.Controls != nil {
		var err error
		if ev.controls, err = g.Controls.InForce(ctx, g.Now()); err != nil {
			return ev, err
		}
	}
	if err := g.gatherScan(ctx, &ev, r, src); err != nil {
		return ev, err
	}
	return ev, nil
}

// gatherScan reads the scan src names, the EPSS of its CVEs and the
// baseline it is compared with.
func (g *Gate) gatherScan(ctx context.Context, ev *evidence, r tollgate.Request, src ScanSource) error {
	switch {
	case src.Report != nil && src.ID != "":
		return tollgate.Errorf(tollgate.EInvalid, "send either scan or scan_id, not both")
	case src.Report != nil:
		ev.scan = src.Report
	case src.ID != "":
		if g.Scans == nil {
			return tollgate.Errorf(tollgate.EInternal, "this gate has no scan store")
		}
		stored, err := g.Scans.Scan(ctx, src.ID)
		if err != nil {
			if tollgate.ErrorCode(err) == tollgate.ENotFound {
				err = tollgate.Errorf(tollgate.EInvalid, "scan_id: %v", err)
			}
			return err
		}
		if ev.project != "" && stored.Project != ev.project {
			return tollgate.Errorf(tollgate.EInvalid, "scan_id: scan %s is of project %q, and this request is of project %q",
				stored.ID, stored.Project, ev.project)
		}
		ev.scan, ev.stored = &stored.Scan, &stored
	default:
		if len(src.VEX) > 0 {
			return tollgate.Errorf(tollgate.EInvalid, "vex applies to a scan: send it with scan or scan_id")
		}
		return nil
	}
	if len(src.VEX) > 0 {
		if err := sameArtifact(ev.stored, src.VEX); err != nil {
			return err
		}
		withVEX := ev.scan.WithVEX(src.VEX)
		ev.scan = &withVEX
	}
	if g.EPSS != nil {
		var cves []string
		for _, f := range ev.scan.Findings {
			cves = append(cves, findingCVEs(f)...)
		}
		if len(cves) > 0 {
			var err error
			if ev.epss, ev.epssInfo, err = g.EPSS.EPSS(ctx, cves); err != nil {
				return fmt.Errorf("EPSS lookup: %w", err)
			}
		}
	}
	if ev.project != "" && g.Scans != nil {
		var err error
		if ev.baseline, err = g.Scans.Baseline(ctx, ev.project, r.Metadata.Environment); err != nil {
			return fmt.Errorf("drift baseline: %w", err)
		}
	}
	return nil
}

// sameArtifact refuses a VEX document about another artifact than the
// stored scan it is applied to, when both name their digest.
func sameArtifact(stored *tollgate.StoredScan, statements []tollgate.VEXStatement) error {
	if stored == nil || stored.Artifact == "" {
		return nil
	}
	for _, st := range statements {
		if st.Artifact != "" && !strings.EqualFold(st.Artifact, stored.Artifact) {
			return tollgate.Errorf(tollgate.EInvalid, "vex: the document is about artifact %s, and scan %s is of artifact %s",
				st.Artifact, stored.ID, stored.Artifact)
		}
	}
	return nil
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

// context is the adapter context of an evaluation at now with ev.
func (g *Gate) context(now time.Time, ev evidence) tollgate.Context {
	c := tollgate.Context{Now: now, Licence: g.Licence.Check(now)}
	c.Exceptions, c.Freezes, c.Incident = forRequest(ev.controls, ev.project, now)
	if ev.scan == nil {
		return c
	}
	scan := ev.scan
	r := &tollgate.Release{ScannedAt: now, Format: scan.Format, Unidentified: scan.Unidentified,
		EPSSModel: ev.epssInfo.ModelVersion, EPSSDate: ev.epssInfo.ScoreDate,
		Findings: make([]tollgate.ScoredFinding, len(scan.Findings))}
	if ev.stored != nil {
		r.ScannedAt, r.ScanID, r.Artifact = ev.stored.ScannedAt.UTC(), ev.stored.ID, ev.stored.Artifact
	}
	for i, f := range scan.Findings {
		r.Findings[i].Finding = f
		if receipt, ok := g.Score(f.CVSS); ok {
			r.Findings[i].Score = &receipt
		} else if f.Reported != nil {
			// No vector to score: the report's own score, named as such.
			r.Findings[i].Score = &tollgate.ScoreReceipt{Score: f.Reported.Score, Source: f.Reported.Source}
		}
		r.Findings[i].EPSS = findingEPSS(f, ev.epss)
	}
	c.Scan, c.Baseline = r, ev.baseline
	return c
}

// decisionIDKey carries the ID a decision must be recorded under.
type decisionIDKey struct{}

// WithDecisionID has Evaluate record its decision under id rather than a
// new one: a gate job's worker names each scheduled check so, and a check
// run again after a worker died (its decision recorded, the job not yet
// updated) fails as a duplicate instead of deciding twice.
func WithDecisionID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, decisionIDKey{}, id)
}

// Evaluate decides on r, with the scan of the release if there is one, and
// records the decision before returning it, with the identity of ctx
// (tollgate.WithIdentity) as who asked, under the ID of ctx
// (WithDecisionID) or a new one. An error means nothing was
// recorded and the request must not proceed: the caller answers 503 (4xx
// for an EInvalid error: a scan_id that does not fit), never accepted.
func (g *Gate) Evaluate(ctx context.Context, r tollgate.Request, scan ScanSource) (tollgate.Record, error) {
	policy := g.Policies.Policy()
	if g.Bundles != nil {
		// Once per revision: a decision is never recorded without the
		// bundle that made it.
		if err := g.Bundles.Keep(ctx, policy.Bundle()); err != nil {
			return tollgate.Record{}, err
		}
	}
	// Read before the cooldown key is held, so that the lookups do not
	// lengthen the wait of the requests queued behind this one.
	ev, err := g.gather(ctx, policy, r, scan)
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
		c := g.context(g.Now().UTC(), ev)
		c.Cooldown = cooldown
		c.Language = policy.Language(r, LanguagesFrom(ctx))
		d := policy.Evaluate(ctx, r, c)
		if id, ok := ctx.Value(decisionIDKey{}).(string); ok {
			d.ID = id
		} else {
			d.ID = g.NewID()
		}
		return tollgate.Record{Decision: d, Request: r, Context: c, Identity: tollgate.IdentityFrom(ctx)}, nil
	})
}

// Simulation is a "what if" question: another time, another cooldown state,
// another configuration. Nil fields mean "as it is now".
type Simulation struct {
	Request      tollgate.Request
	Scan         ScanSource
	At           *time.Time
	Cooldown     *tollgate.Cooldown
	GlobalPolicy any // replaces data.tollgate.config.global_policy
	Projects     any // replaces data.tollgate.config.projects
	// Explain asks for the steps of the evaluation in Decision.Explain.
	Explain bool
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
		budget := policy.EvalTimeout()
		if policy, err = Compile(ctx, b); err != nil {
			return tollgate.Decision{}, fmt.Errorf("simulate: %w", err)
		}
		policy = policy.WithEvalTimeout(budget)
	}
	ev, err := g.gather(ctx, policy, s.Request, s.Scan)
	if err != nil {
		return tollgate.Decision{}, err
	}
	now := g.Now().UTC()
	if s.At != nil {
		now = s.At.UTC()
	}
	c := g.context(now, ev)
	c.Language = policy.Language(s.Request, LanguagesFrom(ctx))
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
	var d tollgate.Decision
	if s.Explain {
		d, d.Explain = policy.Explain(ctx, s.Request, c)
	} else {
		d = policy.Evaluate(ctx, s.Request, c)
	}
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

// StoreScan keeps scan for evaluations to name by the ID it returns: the
// scan of artifact (a digest: sha256:…) of project, which the projects
// registry must declare. Its age counts from now. req, if given, says which
// pipeline posted it.
func (g *Gate) StoreScan(ctx context.Context, project, artifact string, req *tollgate.Request, scan tollgate.Scan) (tollgate.StoredScan, error) {
	switch {
	case g.Scans == nil:
		return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EInternal, "this gate has no scan store")
	case project == "":
		return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EInvalid, "project is required: the name of the project in the projects registry")
	case !g.Policies.Policy().HasProject(project):
		return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EInvalid, "project %q is not in the projects registry of the active bundle", project)
	case artifact == "":
		return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EInvalid, "artifact is required: the digest of the scanned artifact, such as sha256:<64 hex digits>")
	}
	if _, err := digest.Parse(artifact); err != nil {
		return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EInvalid, "artifact %q is not a digest such as sha256:<64 lower-case hex digits>: %v", artifact, err)
	}
	s := tollgate.StoredScan{ID: g.NewID(), Project: project, Artifact: artifact,
		ScannedAt: g.Now().UTC(), Request: req, Scan: scan}
	if err := g.Scans.PutScan(ctx, s); err != nil {
		return tollgate.StoredScan{}, err
	}
	return s, nil
}
