package rego

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/tollgate/tollgate"
)

// DecisionQuery is the bundle's entrypoint.
const DecisionQuery = "data.tollgate.decision"

// Policy is a compiled bundle with its decision query prepared. It is safe
// for concurrent use; a reload builds a new Policy rather than changing one.
type Policy struct {
	bundle     *Bundle
	timeout    time.Duration // budget of one evaluation
	compiler   *ast.Compiler
	store      storage.Store
	query      ast.Body // compiled once: decision = data.tollgate.decision
	riskQuery  ast.Body // decision = data.tollgate.risk.findings, for breakdowns
	gatesQuery ast.Body // decision = data.tollgate.gate.environments, for the Gate view
	folded     *folded  // the input-independent rules' values (fold.go)
}

// Compile compiles the bundle's policy modules (not its tests) and the
// decision query against its data, and folds the rules that do not depend
// on the input (fold.go).
func Compile(ctx context.Context, b *Bundle) (*Policy, error) {
	compiler := ast.NewCompiler().WithEnablePrintStatements(false)
	if compiler.Compile(b.modules); compiler.Failed() {
		return nil, fmt.Errorf("compile bundle %s: %w", b.Dir, compiler.Errors)
	}
	query, err := compileQuery(compiler, DecisionQuery)
	if err != nil {
		return nil, fmt.Errorf("compile %s in bundle %s: %w", DecisionQuery, b.Dir, err)
	}
	riskQuery, err := compileQuery(compiler, RiskFindingsQuery)
	if err != nil {
		return nil, fmt.Errorf("compile %s in bundle %s: %w", RiskFindingsQuery, b.Dir, err)
	}
	gatesQuery, err := compileQuery(compiler, GatesQuery)
	if err != nil {
		return nil, fmt.Errorf("compile %s in bundle %s: %w", GatesQuery, b.Dir, err)
	}
	// Evaluation only reads the store: it may share the bundle's data.
	store := inmem.NewFromASTObject(b.data)
	folded, err := foldRules(ctx, compiler, store, foldBudget)
	if err != nil {
		return nil, fmt.Errorf("compile bundle %s: %w", b.Dir, err)
	}
	return &Policy{bundle: b, timeout: DefaultEvalTimeout, compiler: compiler, store: store, query: query,
		riskQuery: riskQuery, gatesQuery: gatesQuery, folded: folded}, nil
}

// foldBudget bounds the constant folding of one load (fold.go). The
// shipped bundle folds in milliseconds, even with 10,000 projects.
const foldBudget = time.Second

// DefaultEvalTimeout is the time budget of one evaluation. The shipped
// bundle decides in well under a millisecond, so a policy that needs
// seconds is broken (a runaway comprehension, a walk over a huge document)
// and must not hold a request, nor the cooldown lock it runs under, for
// longer. The budget is wall-clock time, which also counts the time an
// evaluation waits for a CPU: 1 s was exceeded by ordinary evaluations
// under -race on this 2-core machine at load 10, and a budget that fires
// on a busy machine refuses good requests. 5 s keeps that margin and stays
// well inside the server's 30 s write timeout and the CI client's.
const DefaultEvalTimeout = 5 * time.Second

// WithEvalTimeout returns the policy with another evaluation time budget
// (zero or less keeps DefaultEvalTimeout). The policy itself is unchanged:
// the copy shares its compiled modules and data, which are read-only.
func (p *Policy) WithEvalTimeout(d time.Duration) *Policy {
	if d <= 0 {
		d = DefaultEvalTimeout
	}
	c := *p
	c.timeout = d
	return &c
}

// EvalTimeout is the time budget of one evaluation.
func (p *Policy) EvalTimeout() time.Duration { return p.timeout }

// RiskFindingsQuery gives the composite risk of each scored finding, as the
// security gates compute it: [{"id", "cvss", "risk"}].
const RiskFindingsQuery = "data.tollgate.risk.findings"

func compileQuery(compiler *ast.Compiler, ref string) (ast.Body, error) {
	return compiler.QueryCompiler().Compile(ast.NewBody(ast.Equality.Expr(ast.NewTerm(resultVar), ast.MustParseTerm(ref))))
}

const resultVar = ast.Var("decision")

// Bundle returns the bundle the policy was compiled from.
func (p *Policy) Bundle() *Bundle { return p.bundle }

// Revision identifies the bundle content the policy was compiled from.
func (p *Policy) Revision() string { return p.bundle.Revision }

// CooldownKey resolves the request the way the policy does, so that the
// cooldown adapter can look up the right history before evaluation. ok is
// false when the request is unmanaged or its pipeline has no cooldown.
func (p *Policy) CooldownKey(r tollgate.Request) (key tollgate.CooldownKey, ok bool) {
	name, found := p.bundle.Config.project(r.Repository)
	if !found {
		return key, false
	}
	if minutes, _ := p.bundle.Config.pipeline(name, r.Pipeline); minutes <= 0 {
		return key, false
	}
	return tollgate.CooldownKey{Project: name, Pipeline: r.Pipeline, Branch: r.Branch}, true
}

// Project resolves the request's project the way the policy does: ok is
// false when the request is unmanaged (an unknown repository, or a pipeline
// its project does not declare).
func (p *Policy) Project(r tollgate.Request) (name string, ok bool) {
	name, found := p.bundle.Config.project(r.Repository)
	if !found {
		return "", false
	}
	if _, found := p.bundle.Config.pipeline(name, r.Pipeline); !found {
		return "", false
	}
	return name, true
}

// HasProject reports whether the projects registry declares name.
func (p *Policy) HasProject(name string) bool {
	return p.bundle.Config.hasProject(name)
}

// Evaluate decides on a request. It never fails: anything that keeps the
// policy from producing a well-formed decision is a refusal with
// policy_error. The decision carries the bundle revision and c.Now.
func (p *Policy) Evaluate(ctx context.Context, r tollgate.Request, c tollgate.Context) tollgate.Decision {
	return p.evaluate(ctx, r, c, nil)
}

// evaluate is Evaluate with an optional tracer, which Explain uses.
func (p *Policy) evaluate(ctx context.Context, r tollgate.Request, c tollgate.Context, tracer topdown.QueryTracer) (d tollgate.Decision) {
	policyError := func(detail string) tollgate.Decision {
		return tollgate.PolicyError(r, p.bundle.policyErrorMessage(c.Language, detail))
	}
	defer func() {
		if v := recover(); v != nil {
			d = policyError(fmt.Sprintf("policy evaluation panicked: %v", v))
		}
		d.BundleRevision = p.bundle.Revision
		d.EvaluatedAt = c.Now
		d.Language = c.Language
	}()
	result, err := p.eval(ctx, p.query, r, c, tracer)
	if err != nil {
		return policyError(p.failure(ctx, err))
	}
	if result == nil {
		return policyError(DecisionQuery + " is undefined: the bundle produced no decision")
	}
	d, err = decodeDecision(result.Value)
	if err != nil {
		return policyError(fmt.Sprintf("%s is malformed: %v", DecisionQuery, err))
	}
	return d
}

// errBudget ends an evaluation that ran past the policy's time budget.
var errBudget = errors.New("evaluation time budget exceeded")

// failure says why an evaluation failed, in the policy_error message.
func (p *Policy) failure(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, errBudget):
		return fmt.Sprintf("policy evaluation did not finish within its time budget of %v (serve/eval --eval-timeout): "+
			"a rule runs too long, such as a comprehension over a huge range; the request is refused", p.timeout)
	case ctx.Err() != nil:
		return fmt.Sprintf("policy evaluation stopped: %v", context.Cause(ctx))
	}
	return fmt.Sprintf("policy evaluation failed: %v", err)
}

func isCancel(err error) bool {
	var te *topdown.Error
	return errors.As(err, &te) && te.Code == topdown.CancelErr
}

// eval runs the prepared query with topdown directly rather than through
// rego.PreparedEvalQuery: the wrapper's metrics, result conversion to Go
// values and per-call set-up cost more than the policy itself (see the
// README's benchmark section). It returns nil when the decision is
// undefined. tracer may be nil.
//
// The query stops when ctx ends or the time budget runs out: topdown does
// not watch the context itself, it polls a Cancel between steps (and in
// long builtins such as numbers.range), which the timer sets.
func (p *Policy) eval(ctx context.Context, query ast.Body, r tollgate.Request, c tollgate.Context, tracer topdown.QueryTracer) (*ast.Term, error) {
	cancel := topdown.NewCancel()
	budget := time.AfterFunc(p.timeout, cancel.Cancel)
	defer budget.Stop()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, cancel.Cancel)
		defer stop()
	}
	txn, err := p.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer p.store.Abort(ctx, txn)
	cache := getFlatCache(p.folded)
	defer cache.release()
	var result *ast.Term
	err = topdown.NewQuery(query).
		WithVirtualCache(cache).
		WithCompiler(p.compiler).
		WithStore(p.store).
		WithTransaction(txn).
		WithInput(ast.NewTerm(inputValue(r, c))).
		WithTime(c.Now).
		WithMetrics(noMetrics).
		WithStrictBuiltinErrors(true).
		WithCancel(cancel).
		WithQueryTracer(tracer).
		Iter(ctx, func(qr topdown.QueryResult) error {
			if result != nil {
				return fmt.Errorf("%s has more than one value", DecisionQuery)
			}
			result = qr[resultVar]
			return nil
		})
	if err != nil && isCancel(err) && ctx.Err() == nil {
		return nil, errBudget
	}
	return result, err
}

var noMetrics = metrics.NoOp()

// Keys of the input and decision documents, allocated once.
var (
	kRequest, kContext   = ast.StringTerm("request"), ast.StringTerm("context")
	kRepository, kBranch = ast.StringTerm("repository"), ast.StringTerm("branch")
	kPipeline, kMetadata = ast.StringTerm("pipeline"), ast.StringTerm("metadata")
	kInitiator, kRunID   = ast.StringTerm("initiator"), ast.StringTerm("run_id")
	kEnvironment         = ast.StringTerm("environment")
	kNow, kLicence       = ast.StringTerm("now_ns"), ast.StringTerm("licence")
	kStatus, kDetail     = ast.StringTerm("status"), ast.StringTerm("detail")
	kSubject, kEdition   = ast.StringTerm("subject"), ast.StringTerm("edition")
	kExpires, kCooldown  = ast.StringTerm("expires_ns"), ast.StringTerm("cooldown")
	kLastAccepted        = ast.StringTerm("last_accepted_ns")
	kScan                = ast.StringTerm("scan")
	kBaseline            = ast.StringTerm("baseline")
	kReasons, kWarnings  = ast.StringTerm("reasons"), ast.StringTerm("warnings")
	kWaived, kIncidentID = ast.StringTerm("waived"), ast.StringTerm("incident_id")
	kSuppressed          = ast.StringTerm("suppressed")
	kExceptionID         = ast.StringTerm("exception_id")
	kProject             = ast.StringTerm("project")
	kCode, kMessage      = ast.StringTerm("code"), ast.StringTerm("message")
	kClearsAt            = ast.StringTerm("clears_at")
	kLanguage            = ast.StringTerm("language")
	kMissingTemplate     = ast.StringTerm("missing_template")
	kNextCheckAt         = ast.StringTerm("next_check_at")
)

// Breakdown lists every finding of c.Scan with its score receipt and the
// composite risk the policy gives it. A policy without risk.rego, or one
// that fails, leaves the risks nil: a breakdown explains, it never decides.
func (p *Policy) Breakdown(ctx context.Context, r tollgate.Request, c tollgate.Context) []tollgate.FindingRisk {
	if c.Scan == nil {
		return nil
	}
	risks := map[string]float64{}
	if result, err := p.eval(ctx, p.riskQuery, r, c, nil); err == nil && result != nil {
		if list, ok := result.Value.(*ast.Array); ok {
			list.Foreach(func(t *ast.Term) {
				obj, _ := t.Value.(ast.Object)
				if obj == nil {
					return
				}
				id, _ := valueOf(obj, ast.StringTerm("id")).(ast.String)
				if n, ok := valueOf(obj, ast.StringTerm("risk")).(ast.Number); ok {
					if f, ok := n.Float64(); ok {
						risks[string(id)] = f
					}
				}
			})
		}
	}
	out := make([]tollgate.FindingRisk, len(c.Scan.Findings))
	for i, f := range c.Scan.Findings {
		out[i].ScoredFinding = f
		if risk, ok := risks[f.ID]; ok && f.Score != nil {
			out[i].Risk = &risk
		}
	}
	return out
}

// inputValue builds the input document directly as an AST value, which
// saves a JSON round trip per evaluation. Its shape is documented in the
// README ("The input document").
func inputValue(r tollgate.Request, c tollgate.Context) ast.Value {
	metadata := ast.NewObject(
		ast.Item(kInitiator, ast.StringTerm(r.Metadata.Initiator)),
		ast.Item(kRunID, ast.StringTerm(r.Metadata.RunID)),
		ast.Item(kEnvironment, ast.StringTerm(r.Metadata.Environment)),
	)
	request := ast.NewObject(
		ast.Item(kRepository, ast.StringTerm(r.Repository)),
		ast.Item(kBranch, ast.StringTerm(r.Branch)),
		ast.Item(kPipeline, ast.StringTerm(r.Pipeline)),
		ast.Item(kMetadata, ast.NewTerm(metadata)),
	)
	licence := ast.NewObject(
		ast.Item(kStatus, ast.StringTerm(string(c.Licence.Status))),
		ast.Item(kDetail, ast.StringTerm(c.Licence.Detail)),
		ast.Item(kSubject, ast.StringTerm(c.Licence.Subject)),
		ast.Item(kEdition, ast.StringTerm(c.Licence.Edition)),
	)
	if !c.Licence.ExpiresAt.IsZero() {
		licence.Insert(kExpires, ast.IntNumberTerm(int(c.Licence.ExpiresAt.UnixNano())))
	}
	cooldown := ast.NewObject()
	if !c.Cooldown.LastAcceptedAt.IsZero() {
		cooldown.Insert(kLastAccepted, ast.IntNumberTerm(int(c.Cooldown.LastAcceptedAt.UnixNano())))
	}
	// The language goes in with the rest: an Insert would grow the object.
	items := [...][2]*ast.Term{
		ast.Item(kNow, ast.IntNumberTerm(int(c.Now.UnixNano()))),
		ast.Item(kLicence, ast.NewTerm(licence)),
		ast.Item(kCooldown, ast.NewTerm(cooldown)),
		{kLanguage, nil},
	}
	n := len(items) - 1
	if c.Language != "" {
		items[n][1] = ast.StringTerm(c.Language)
		n++
	}
	context := ast.NewObject(items[:n]...)
	if len(c.Exceptions) > 0 {
		list := make([]*ast.Term, len(c.Exceptions))
		for i, e := range c.Exceptions {
			obj := controlValue(e)
			obj.Insert(ast.StringTerm("kind"), ast.StringTerm(e.ExceptionKind))
			obj.Insert(ast.StringTerm("code"), ast.StringTerm(e.Code))
			obj.Insert(kProject, ast.StringTerm(e.Project))
			for _, f := range []struct{ key, value string }{
				{"finding_id", e.FindingID}, {"pipeline", e.Pipeline}, {"environment", e.Environment}, {"branch", e.Branch},
			} {
				if f.value != "" {
					obj.Insert(ast.StringTerm(f.key), ast.StringTerm(f.value))
				}
			}
			list[i] = ast.NewTerm(obj)
		}
		context.Insert(ast.StringTerm("exceptions"), ast.ArrayTerm(list...))
	}
	if len(c.Freezes) > 0 {
		list := make([]*ast.Term, len(c.Freezes))
		for i, f := range c.Freezes {
			obj := controlValue(f)
			if len(f.Environments) > 0 {
				envs := make([]*ast.Term, len(f.Environments))
				for j, e := range f.Environments {
					envs[j] = ast.StringTerm(e)
				}
				obj.Insert(ast.StringTerm("environments"), ast.ArrayTerm(envs...))
			}
			list[i] = ast.NewTerm(obj)
		}
		context.Insert(ast.StringTerm("freezes"), ast.ArrayTerm(list...))
	}
	if c.Incident != nil {
		context.Insert(ast.StringTerm("incident"), ast.NewTerm(controlValue(*c.Incident)))
	}
	if c.Baseline != nil {
		baseline := scanValue(&c.Baseline.Release)
		baseline.Insert(ast.StringTerm("decision_id"), ast.StringTerm(c.Baseline.DecisionID))
		context.Insert(kBaseline, ast.NewTerm(baseline))
	}
	input := ast.NewObject(
		ast.Item(kRequest, ast.NewTerm(request)),
		ast.Item(kContext, ast.NewTerm(context)),
	)
	if c.Scan != nil {
		input.Insert(kScan, ast.NewTerm(scanValue(c.Scan)))
	}
	return input
}

// controlValue is what every control shows the policy: {"id", "reason",
// "expires_ns"}; the caller adds what its kind needs.
func controlValue(c tollgate.Control) ast.Object {
	return ast.NewObject(
		ast.Item(ast.StringTerm("id"), ast.StringTerm(c.ID)),
		ast.Item(ast.StringTerm("reason"), ast.StringTerm(c.Reason)),
		ast.Item(ast.StringTerm("expires_ns"), ast.IntNumberTerm(int(c.ExpiresAt.UnixNano()))),
	)
}

// scanValue is input.scan, as risk.rego documents it.
func scanValue(r *tollgate.Release) ast.Object {
	findings := make([]*ast.Term, len(r.Findings))
	for i, f := range r.Findings {
		obj := ast.NewObject(
			ast.Item(ast.StringTerm("id"), ast.StringTerm(f.ID)),
			ast.Item(ast.StringTerm("package"), ast.StringTerm(f.Package)),
			ast.Item(ast.StringTerm("version"), ast.StringTerm(f.Version)),
			ast.Item(ast.StringTerm("severity"), ast.StringTerm(string(f.Severity))),
			ast.Item(ast.StringTerm("vex_status"), ast.StringTerm(string(f.VEXStatus))),
		)
		if f.VEX != nil {
			obj.Insert(ast.StringTerm("vex"), ast.ObjectTerm(
				ast.Item(ast.StringTerm("document"), ast.StringTerm(f.VEX.Document)),
				ast.Item(ast.StringTerm("ref"), ast.StringTerm(f.VEX.Ref)),
				ast.Item(ast.StringTerm("id"), ast.StringTerm(f.VEX.ID)),
				ast.Item(ast.StringTerm("affects"), ast.StringTerm(f.VEX.Affects)),
				ast.Item(ast.StringTerm("state"), ast.StringTerm(f.VEX.State)),
				ast.Item(ast.StringTerm("justification"), ast.StringTerm(f.VEX.Justification)),
			))
		}
		if f.Score != nil {
			obj.Insert(ast.StringTerm("cvss"), ast.ObjectTerm(
				ast.Item(ast.StringTerm("score"), ast.FloatNumberTerm(f.Score.Score)),
				ast.Item(ast.StringTerm("version"), ast.StringTerm(f.Score.Version)),
				ast.Item(ast.StringTerm("vector"), ast.StringTerm(f.Score.Vector)),
				ast.Item(ast.StringTerm("source"), ast.StringTerm(f.Score.Source)),
			))
		}
		if f.EPSS != nil {
			obj.Insert(ast.StringTerm("epss"), ast.ObjectTerm(
				ast.Item(ast.StringTerm("score"), ast.FloatNumberTerm(f.EPSS.EPSS)),
				ast.Item(ast.StringTerm("percentile"), ast.FloatNumberTerm(f.EPSS.Percentile)),
			))
		}
		findings[i] = ast.NewTerm(obj)
	}
	return ast.NewObject(
		ast.Item(ast.StringTerm("scanned_at_ns"), ast.IntNumberTerm(int(r.ScannedAt.UnixNano()))),
		ast.Item(ast.StringTerm("unidentified"), ast.IntNumberTerm(r.Unidentified)),
		ast.Item(ast.StringTerm("findings"), ast.ArrayTerm(findings...)),
	)
}

// Input returns the input document of an evaluation as JSON-compatible
// values: what `opa eval --input` needs to reproduce it.
func Input(r tollgate.Request, c tollgate.Context) (any, error) {
	return ast.JSON(inputValue(r, c))
}

// decodeDecision checks the shape of what the policy returned. Anything
// unexpected is an error, so that a broken policy refuses instead of
// letting a request through.
func decodeDecision(v ast.Value) (tollgate.Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return tollgate.Decision{}, fmt.Errorf("want an object, got %s", ast.ValueName(v))
	}
	var d tollgate.Decision
	var err error
	str := func(key *ast.Term) string {
		s, ok := valueOf(obj, key).(ast.String)
		if !ok && err == nil {
			err = fmt.Errorf("%s: want a string", key.Value.(ast.String))
		}
		return string(s)
	}
	d.Status = tollgate.Status(str(kStatus))
	d.Project, d.Pipeline = str(kProject), str(kPipeline)
	d.Branch, d.Environment = str(kBranch), str(kEnvironment)
	if err != nil {
		return d, err
	}
	if d.Reasons, err = decodeReasons(obj, kReasons); err != nil {
		return d, err
	}
	if d.Warnings, err = decodeReasons(obj, kWarnings); err != nil {
		return d, err
	}
	if obj.Get(kWaived) != nil {
		if d.Waived, err = decodeReasons(obj, kWaived); err != nil {
			return d, err
		}
		for i, w := range d.Waived {
			if w.ExceptionID == "" {
				return d, fmt.Errorf("waived[%d]: no exception_id: a waived reason must name the exception that waived it", i)
			}
		}
		if len(d.Waived) == 0 {
			d.Waived = nil
		}
	}
	if t := obj.Get(kSuppressed); t != nil {
		if d.Suppressed, err = decodeSuppressed(t.Value); err != nil {
			return d, err
		}
	}
	if t := obj.Get(kIncidentID); t != nil {
		id, ok := t.Value.(ast.String)
		if !ok || id == "" {
			return d, fmt.Errorf("incident_id: want a non-empty string")
		}
		d.IncidentID = string(id)
	}
	if err := decodeClearance(obj, &d); err != nil {
		return d, err
	}
	switch {
	case d.Status == tollgate.Accepted && len(d.Reasons) > 0:
		return d, fmt.Errorf("status accepted with %d reasons", len(d.Reasons))
	case d.Status == tollgate.Refused && len(d.Reasons) == 0:
		return d, fmt.Errorf("status refused without a reason")
	case d.Status != tollgate.Accepted && d.Status != tollgate.Refused:
		return d, fmt.Errorf("status: want \"accepted\" or \"refused\", got %q", d.Status)
	}
	return d, nil
}

// decodeClearance reads when the decision's refusal can clear: clears_at,
// an object from the code of a standing reason to an RFC 3339 time or null,
// and next_check_at, an RFC 3339 time or null, which says that waiting can
// help and so needs every standing reason in clears_at. A policy that gets
// these wrong is broken: its decision is a policy_error, so that nothing
// waits on a time the policy did not mean.
func decodeClearance(obj ast.Object, d *tollgate.Decision) error {
	clears, next := obj.Get(kClearsAt), obj.Get(kNextCheckAt)
	if clears == nil && next == nil {
		return nil
	}
	if d.Status != tollgate.Refused {
		return fmt.Errorf("clears_at or next_check_at in a decision that is not refused")
	}
	standing := map[string]bool{}
	for _, r := range d.Reasons {
		standing[r.Code] = true
	}
	if clears != nil {
		list, ok := clears.Value.(ast.Object)
		if !ok {
			return fmt.Errorf("clears_at: want an object from reason code to RFC 3339 time or null, got %s", ast.ValueName(clears.Value))
		}
		d.ClearsAt = make(map[string]tollgate.ClearTime, list.Len())
		err := list.Iter(func(k, v *ast.Term) error {
			code, ok := k.Value.(ast.String)
			if !ok || !standing[string(code)] {
				return fmt.Errorf("clears_at: %v is not the code of a reason of the decision", k)
			}
			at, err := clearTime(v.Value)
			if err != nil {
				return fmt.Errorf("clears_at[%s]: %w", code, err)
			}
			d.ClearsAt[string(code)] = at
			return nil
		})
		if err != nil {
			return err
		}
	}
	if next != nil {
		for _, r := range d.Reasons {
			if _, ok := d.ClearsAt[r.Code]; !ok {
				return fmt.Errorf("next_check_at with reason %s, which is not in clears_at: time cannot clear it", r.Code)
			}
		}
		at, err := clearTime(next.Value)
		if err != nil {
			return fmt.Errorf("next_check_at: %w", err)
		}
		d.NextCheckAt = tollgate.NextCheck{Waiting: true, At: at.Time}
	}
	return nil
}

// clearTime reads an RFC 3339 time, or null for an unknown one.
func clearTime(v ast.Value) (tollgate.ClearTime, error) {
	if _, ok := v.(ast.Null); ok {
		return tollgate.ClearTime{}, nil
	}
	s, ok := v.(ast.String)
	if !ok {
		return tollgate.ClearTime{}, fmt.Errorf("want an RFC 3339 time or null, got %v", v)
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return tollgate.ClearTime{}, fmt.Errorf("want an RFC 3339 time or null: %w", err)
	}
	return tollgate.ClearTime{Time: t.UTC()}, nil
}

// decodeSuppressed reads the decision's "suppressed" findings: each names
// its finding and the VEX status that took it out of the gates, so that a
// policy cannot hide a finding without saying which and why.
func decodeSuppressed(v ast.Value) ([]tollgate.Suppression, error) {
	if arr, ok := v.(*ast.Array); ok && arr.Len() == 0 {
		return nil, nil // every decision without a VEX: no JSON round trip
	}
	raw, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("suppressed: %w", err)
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("suppressed: %w", err)
	}
	var list []tollgate.Suppression
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("suppressed: want an array of {id, package, version, vex_status, statement}: %w", err)
	}
	for i, s := range list {
		if s.ID == "" || s.VEXStatus == "" {
			return nil, fmt.Errorf("suppressed[%d]: a suppressed finding must name its id and vex_status", i)
		}
	}
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}

func valueOf(obj ast.Object, key *ast.Term) ast.Value {
	if t := obj.Get(key); t != nil {
		return t.Value
	}
	return nil
}

func decodeReasons(obj ast.Object, key *ast.Term) ([]tollgate.Reason, error) {
	list, ok := valueOf(obj, key).(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("%s: want an array", key.Value.(ast.String))
	}
	reasons := make([]tollgate.Reason, list.Len())
	for i := range reasons {
		item, _ := list.Elem(i).Value.(ast.Object)
		var code, message ast.String
		if item != nil {
			code, _ = valueOf(item, kCode).(ast.String)
			message, _ = valueOf(item, kMessage).(ast.String)
		}
		if item != nil && message == "" {
			if missing, ok := valueOf(item, kMissingTemplate).(ast.String); ok {
				return nil, fmt.Errorf("%s[%d]: no message for %q in the catalogue of the decision's language (messages/<language>/data.json): add it to every language", key.Value.(ast.String), i, string(missing))
			}
		}
		if code == "" || message == "" {
			return nil, fmt.Errorf("%s[%d]: want {\"code\": string, \"message\": string}, got %v", key.Value.(ast.String), i, list.Elem(i))
		}
		reasons[i] = tollgate.Reason{Code: string(code), Message: string(message)}
		if item != nil {
			if id, ok := valueOf(item, kExceptionID).(ast.String); ok {
				reasons[i].ExceptionID = string(id)
			}
		}
	}
	return reasons, nil
}
