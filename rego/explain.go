package rego

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/tollgate/tollgate"
)

// Bounds of an explanation, so that a policy that loops over a large scan
// cannot make a simulation's answer huge.
const (
	maxExplainSteps = 1000
	maxValueChars   = 300
)

// Explain evaluates like Evaluate and also says how the policy got there:
// the rules that fired, with their values, and the expressions of the
// bundle it evaluated, with their results and the variables and input
// documents they read, in evaluation order. It traces the evaluation with
// OPA's topdown tracer, as `opa eval --explain` does, and keeps only the
// events an author reads: rule exits and expression results.
func (p *Policy) Explain(ctx context.Context, r tollgate.Request, c tollgate.Context) (tollgate.Decision, []tollgate.ExplainStep) {
	x := &explainer{dir: p.bundle.Dir, open: map[evalKey]int{}, seen: map[string]bool{}, refs: map[ast.Var]ast.Ref{}}
	d := p.evaluate(ctx, r, c, x)
	if x.truncated {
		x.steps = append(x.steps, tollgate.ExplainStep{Expression: fmt.Sprintf("… explanation cut at %d steps", maxExplainSteps)})
	}
	return d, x.steps
}

// explainer is a topdown.QueryTracer that turns events into steps as they
// come: bindings can only be read (plugged) while the event is emitted.
type explainer struct {
	dir       string
	steps     []tollgate.ExplainStep
	open      map[evalKey]int     // the step of an expression being evaluated
	seen      map[string]bool     // steps already given, to say each once
	refs      map[ast.Var]ast.Ref // generated variables and the reference each stands for
	truncated bool
}

type evalKey struct {
	query uint64
	expr  *ast.Expr
}

var _ topdown.QueryTracer = (*explainer)(nil)

func (x *explainer) Enabled() bool { return true }

func (x *explainer) Config() topdown.TraceConfig { return topdown.TraceConfig{PlugLocalVars: true} }

func (x *explainer) TraceEvent(e topdown.Event) {
	switch node := e.Node.(type) {
	case *ast.Expr:
		if v, ref, ok := rewrittenRef(node); ok {
			x.refs[v] = ref
			return
		}
		if node.Generated || e.Location == nil || e.Location.File == "" {
			return
		}
		key := evalKey{e.QueryID, node}
		switch e.Op {
		case topdown.EvalOp:
			x.open[key] = x.add(tollgate.ExplainStep{
				Location:   x.location(e.Location),
				Expression: string(e.Location.Text),
				Result:     true,
				Values:     x.values(&e, node),
			})
		case topdown.FailOp:
			if i, ok := x.open[key]; ok && i >= 0 {
				x.steps[i].Result = false
			}
			delete(x.open, key)
		}
	case *ast.Rule:
		if e.Op != topdown.ExitOp || node.Location == nil {
			return
		}
		var value any = true
		switch {
		case node.Head.Value != nil:
			value = termJSON(e.Plug(node.Head.Value))
		case node.Head.Key != nil:
			value = termJSON(e.Plug(node.Head.Key))
		}
		x.add(tollgate.ExplainStep{
			Location:   x.location(node.Location),
			Rule:       node.Path().String(),
			Expression: firstLine(string(node.Head.Location.Text)),
			Result:     value,
		})
	}
}

// add appends s unless the same step was given already, and returns its
// index (-1 when it was not added).
func (x *explainer) add(s tollgate.ExplainStep) int {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%v", s.Location, s.Rule, s.Expression, s.Values)
	if x.seen[key] {
		return -1
	}
	if len(x.steps) >= maxExplainSteps {
		x.truncated = true
		return -1
	}
	x.seen[key] = true
	x.steps = append(x.steps, s)
	return len(x.steps) - 1
}

// location is file:line, the file relative to the bundle directory.
func (x *explainer) location(loc *ast.Location) string {
	file := loc.File
	if rel, err := filepath.Rel(x.dir, file); err == nil && !strings.HasPrefix(rel, "..") {
		file = filepath.ToSlash(rel)
	}
	return fmt.Sprintf("%s:%d", file, loc.Row)
}

// rewrittenRef recognises `__localN__ = input.request.branch`, which the
// compiler adds to read a reference into a generated variable.
func rewrittenRef(expr *ast.Expr) (ast.Var, ast.Ref, bool) {
	if !expr.IsEquality() {
		return "", nil, false
	}
	v, ok := expr.Operand(0).Value.(ast.Var)
	ref, isRef := expr.Operand(1).Value.(ast.Ref)
	if !ok || !isRef || !v.IsGenerated() {
		return "", nil, false
	}
	return v, ref, true
}

// values is what an expression read: its variables, by the names the
// author wrote, and the documents it refers to (input.request.branch…),
// whose reads the compiler moved into generated variables.
func (x *explainer) values(e *topdown.Event, expr *ast.Expr) map[string]any {
	values := map[string]any{}
	ast.WalkVars(expr, func(v ast.Var) bool {
		name := ""
		if meta, ok := e.LocalMetadata[v]; ok && !meta.Name.IsGenerated() && !meta.Name.IsWildcard() {
			name = string(meta.Name) // a variable the author named
		} else if ref, ok := x.refs[v]; ok {
			if plugged, ok := e.Plug(ast.RefTerm(ref...)).Value.(ast.Ref); ok {
				name = plugged.String()
			}
		}
		if name == "" {
			return false
		}
		if t := e.Plug(ast.VarTerm(string(v))); t.IsGround() {
			values[name] = termJSON(t)
		}
		return false
	})
	if len(values) == 0 {
		return nil
	}
	return values
}

// termJSON is t as JSON values, or its Rego text cut short when it is
// large or not JSON.
func termJSON(t *ast.Term) any {
	text := t.String()
	if len(text) > maxValueChars {
		return text[:maxValueChars] + "…"
	}
	v, err := ast.JSON(t.Value)
	if err != nil {
		return text
	}
	return v
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
