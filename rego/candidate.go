package rego

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate"
)

// Why a candidate bundle was rejected, beyond failing tests and bad
// configuration: the reason label of tollgate_bundle_reload_rejected_total.
const (
	RejectNoDecisionRule = "no_decision_rule"   // nothing defines data.tollgate.decision
	RejectDecisionShape  = "decision_shape"     // the probe decision is not well formed
	RejectNoTests        = "no_tests"           // no test passed: none, or all skipped
	RejectCoverage       = "coverage"           // below EngineOptions.MinCoverage
	RejectPolicyErrors   = "policy_errors"      // new policy_error on recorded decisions
	RejectProjectProbes  = "project_probes"     // new policy_error on a registered project's probe
	RejectHistory        = "history_unreadable" // the recorded decisions could not be read
	RejectReplayTimeout  = "replay_timeout"     // the replay did not finish within replayTimeout
	RejectTestsFailed    = "tests_failed"
	RejectConfig         = "config"
	RejectInvalid        = "invalid" // does not load, verify or compile
)

// CandidateError rejects a candidate bundle that loads and compiles but
// could not decide: every request would be refused with policy_error.
type CandidateError struct {
	Dir    string
	Reason string // one of the Reject constants
	Detail string
	// DecisionIDs are the recorded decisions the candidate turns into
	// policy_error (RejectPolicyErrors), newest first.
	DecisionIDs []string
}

func (e *CandidateError) Error() string {
	return fmt.Sprintf("candidate bundle %s: %s", e.Dir, e.Detail)
}

// RejectReason classifies why a reload rejected its candidate, for metrics.
func RejectReason(err error) string {
	var ce *CandidateError
	var tf *TestsFailedError
	var conf *ConfigError
	switch {
	case errors.As(err, &ce):
		return ce.Reason
	case errors.As(err, &tf):
		return RejectTestsFailed
	case errors.As(err, &conf):
		return RejectConfig
	}
	return RejectInvalid
}

// probeRequest is what checkDecision asks a candidate: an unmanaged
// repository, with a valid licence, so that the policy goes past the
// licence check and must still answer.
var probeRequest = tollgate.Request{
	Repository: "tollgate-probe/unmanaged", Branch: "main", Pipeline: "deploy",
	Metadata: tollgate.Metadata{Initiator: "tollgate", RunID: "reload-probe", Environment: "production"},
}

// checkDecision makes sure the candidate can decide: a rule defines
// data.tollgate.decision (checked in the compiled rule tree, as a missing
// rule is only undefined to OPA, not an error), and asked about
// probeRequest at now, it answers a well-formed decision ({"status",
// "reasons", …} as decodeDecision reads it), not a policy_error.
func checkDecision(ctx context.Context, p *Policy, now time.Time) error {
	ref := ast.MustParseRef(DecisionQuery)
	if len(p.compiler.GetRules(ref)) == 0 {
		return &CandidateError{Dir: p.bundle.Dir, Reason: RejectNoDecisionRule, Detail: fmt.Sprintf(
			"no rule defines %s, which the server asks for every decision: every request would be refused with policy_error", DecisionQuery)}
	}
	c := tollgate.Context{Now: now, Licence: tollgate.Licence{Status: tollgate.LicenceValid, Subject: "tollgate-probe", Edition: "pro"}}
	d := p.Evaluate(ctx, probeRequest, c)
	if err := ctx.Err(); err != nil {
		return err
	}
	if i := policyErrorAt(d.Reasons); i >= 0 {
		return &CandidateError{Dir: p.bundle.Dir, Reason: RejectDecisionShape, Detail: fmt.Sprintf(
			"asked about an unmanaged repository (%s, branch %s, pipeline %s, environment %s), it answers no well-formed decision: %s",
			probeRequest.Repository, probeRequest.Branch, probeRequest.Pipeline, probeRequest.Metadata.Environment, d.Reasons[i].Message)}
	}
	return nil
}

// MaxProjectProbes bounds the requests checkProjects asks: one per
// registered project and pipeline, in name order, up to this many.
const MaxProjectProbes = 200

// checkProjects asks the candidate about each registered project and
// pipeline (Config.probes, as at now with a valid licence) and rejects it
// if it answers policy_error where the active bundle does not. The probe
// of checkDecision is unmanaged, and the recorded traffic may be empty (a
// new server, a quiet weekend longer than the replay window): a candidate
// that breaks only managed requests would go through both.
// With active nil (`tollgate impact`, which has no active bundle), any
// policy_error rejects. Like the replay, the probes together take at most
// replayTimeout: two
// bundles that both run out of their budget on every probe would
// otherwise hold the reload for 200 budgets.
func checkProjects(ctx context.Context, candidate, active *Policy, now time.Time, pace func(func())) error {
	c := tollgate.Context{Now: now, Licence: tollgate.Licence{Status: tollgate.LicenceValid, Subject: "tollgate-probe", Edition: "pro"}}
	pctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	for _, r := range candidate.bundle.Config.probes(MaxProjectProbes) {
		var d tollgate.Decision
		pace(func() { d = candidate.Evaluate(pctx, r, c) })
		if err := ctx.Err(); err != nil {
			return err // an evaluation cut short is no verdict on the candidate
		}
		i := policyErrorAt(d.Reasons)
		if i >= 0 && pctx.Err() == nil && active != nil && policyErrorAt(active.Evaluate(pctx, r, c).Reasons) >= 0 {
			continue
		}
		if pctx.Err() != nil {
			return &CandidateError{Dir: candidate.bundle.Dir, Reason: RejectReplayTimeout, Detail: fmt.Sprintf(
				"asking it about the registered projects did not finish within %v: its rules are too slow (see serve --eval-timeout)", replayTimeout)}
		}
		if i < 0 {
			continue
		}
		where := " where the active bundle decides"
		if active == nil {
			where = ""
		}
		return &CandidateError{Dir: candidate.bundle.Dir, Reason: RejectProjectProbes, Detail: fmt.Sprintf(
			"asked about registered repository %s (branch %s, pipeline %s, environment %s, run ID %s), it answers policy_error%s: %s",
			r.Repository, r.Branch, r.Pipeline, r.Metadata.Environment, r.Metadata.RunID, where, d.Reasons[i].Message)}
	}
	return nil
}

// ProbeProjects is the reload's check of the registered projects
// (checkProjects), unpaced, for `tollgate impact`: it returns a
// *CandidateError if candidate answers policy_error to one of them.
func ProbeProjects(ctx context.Context, candidate *Policy, now time.Time) error {
	return checkProjects(ctx, candidate, nil, now, func(step func()) { step() })
}

func policyErrorAt(reasons []tollgate.Reason) int {
	for i, r := range reasons {
		if r.Code == tollgate.CodePolicyError {
			return i
		}
	}
	return -1
}

// checkTests rejects a candidate none of whose tests passed (it has none,
// or all are skipped: `tollgate test` refuses it too), and one whose tests
// cover less than minCoverage percent of its policy lines.
func checkTests(dir string, report *TestReport, minCoverage float64) error {
	if report.Passed == 0 {
		return &CandidateError{Dir: dir, Reason: RejectNoTests, Detail: fmt.Sprintf(
			"no test passed (%d tests, %d skipped): a bundle ships its rules with _test.rego files that test them, and a bundle without is not activated",
			report.Total(), report.Skipped)}
	}
	if minCoverage > 0 && report.Coverage != nil && report.Coverage.Percent < minCoverage {
		return &CandidateError{Dir: dir, Reason: RejectCoverage, Detail: fmt.Sprintf(
			"its tests cover %.1f%% of its policy lines, below the %.1f%% required (serve --reload-min-coverage)",
			report.Coverage.Percent, minCoverage)}
	}
	return nil
}

// Defaults of the recorded decisions a reload replays.
const (
	DefaultReplayLimit  = 200
	DefaultReplayWindow = 24 * time.Hour
)

// replayTimeout bounds a reload's replay, paced: 200 decisions take well
// under a second, but a candidate whose rules run away on recorded inputs
// would take its evaluation budget for each, and hold up reloads.
const replayTimeout = 2 * time.Minute

// maxListedIDs bounds the decision IDs a rejection lists in its message.
const maxListedIDs = 10

// checkRecorded re-evaluates the newest recorded decisions (at most limit,
// made within window before now) under the candidate, each with its own
// recorded request and context, and rejects the candidate if it turns any
// of them into policy_error that was not one. A history that cannot be
// read rejects the candidate too: the check did not run.
func checkRecorded(ctx context.Context, history tollgate.HistoryReader, candidate *Policy, now time.Time, limit int, window time.Duration, pace bool) error {
	dir := candidate.bundle.Dir
	rctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	impact, err := AnalyseImpact(rctx, history, candidate, ImpactOptions{
		Filter: tollgate.DecisionFilter{Since: now.Add(-window)}, Limit: limit, Pace: pace, SkipPolicyErrors: true,
	})
	if ctx.Err() != nil {
		return ctx.Err() // an evaluation cut short is no verdict on the candidate
	}
	if rctx.Err() != nil {
		return &CandidateError{Dir: dir, Reason: RejectReplayTimeout, Detail: fmt.Sprintf(
			"replaying the decisions recorded in the last %v under it did not finish within %v: its rules are too slow on recorded inputs (see serve --eval-timeout)",
			window, replayTimeout)}
	}
	if err != nil {
		return &CandidateError{Dir: dir, Reason: RejectHistory, Detail: fmt.Sprintf(
			"cannot read the recorded decisions to replay them (the next rescan retries): %v", err)}
	}
	if impact.NewPolicyErrors == 0 {
		return nil
	}
	ids := impact.PolicyErrorIDs
	listed := strings.Join(ids[:min(len(ids), maxListedIDs)], ", ")
	if impact.NewPolicyErrors > maxListedIDs {
		listed += fmt.Sprintf(" and %d more", impact.NewPolicyErrors-maxListedIDs)
	}
	return &CandidateError{Dir: dir, Reason: RejectPolicyErrors, DecisionIDs: ids, Detail: fmt.Sprintf(
		"it turns %d of the %d decisions recorded in the last %v (newest %d at most) into policy_error: %s; the first says: %s",
		impact.NewPolicyErrors, impact.Evaluated, window, limit, listed, impact.PolicyErrorMessage)}
}
