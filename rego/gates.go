package rego

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate"
)

// GatesQuery gives the gate of every environment the configuration names:
// open or closed now, and until when (gate.rego).
const GatesQuery = "data.tollgate.gate.environments"

// EnvironmentGate is the gate of one environment at a time, by the rules
// that hold for every pipeline (freezes, windows, weekends, incident): what
// the Gate view shows. The policy computes it; this only reads it.
type EnvironmentGate struct {
	Environment string
	Open        bool
	// Until is when the gate next opens (closed) or closes (open) by the
	// passing of time alone; zero when no change is known.
	Until tollgate.ClearTime
	// Reasons close the gate now, each clearing at ClearsAt[code].
	Reasons  []tollgate.Reason
	ClearsAt map[string]tollgate.ClearTime
	// ClosesWith are the reasons that close an open gate at Until.
	ClosesWith []tollgate.Reason
}

var (
	kOpen, kUntil = ast.StringTerm("open"), ast.StringTerm("until")
	kClosesWith   = ast.StringTerm("closes_with")
)

// Gates evaluates the gate of every environment at c.Now with the freezes
// and incident of c, sorted by environment. A bundle without the rule, or
// whose rule answers something else than gate.rego documents, is an error:
// the view shows no gate it cannot read.
func (p *Policy) Gates(ctx context.Context, c tollgate.Context) ([]EnvironmentGate, error) {
	result, err := p.eval(ctx, p.gatesQuery, tollgate.Request{}, c, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", GatesQuery, p.failure(ctx, err))
	}
	if result == nil {
		return nil, fmt.Errorf("%s is undefined: the active bundle has no gate.rego (bundles/tollgate has one)", GatesQuery)
	}
	gates, err := decodeGates(result.Value)
	if err != nil {
		return nil, fmt.Errorf("%s is malformed: %w", GatesQuery, err)
	}
	return gates, nil
}

func decodeGates(v ast.Value) ([]EnvironmentGate, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("want an object from environment to gate, got %s", ast.ValueName(v))
	}
	var gates []EnvironmentGate
	err := obj.Iter(func(k, v *ast.Term) error {
		env, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("%v: an environment must be a string", k)
		}
		g, err := decodeGate(string(env), v.Value)
		if err != nil {
			return fmt.Errorf("%s: %w", string(env), err)
		}
		gates = append(gates, g)
		return nil
	})
	slices.SortFunc(gates, func(a, b EnvironmentGate) int { return strings.Compare(a.Environment, b.Environment) })
	return gates, err
}

func decodeGate(env string, v ast.Value) (EnvironmentGate, error) {
	g := EnvironmentGate{Environment: env}
	obj, ok := v.(ast.Object)
	if !ok {
		return g, fmt.Errorf("want an object, got %s", ast.ValueName(v))
	}
	open, ok := valueOf(obj, kOpen).(ast.Boolean)
	if !ok {
		return g, fmt.Errorf("open: want a boolean")
	}
	g.Open = bool(open)
	var err error
	if g.Until, err = clearTime(valueOf(obj, kUntil)); err != nil {
		return g, fmt.Errorf("until: %w", err)
	}
	if g.Open {
		g.ClosesWith, err = decodeReasons(obj, kClosesWith)
		return g, err
	}
	if g.Reasons, err = decodeReasons(obj, kReasons); err != nil {
		return g, err
	}
	if len(g.Reasons) == 0 {
		return g, fmt.Errorf("closed without a reason")
	}
	clears, ok := valueOf(obj, kClearsAt).(ast.Object)
	if !ok {
		return g, fmt.Errorf("clears_at: want an object from reason code to RFC 3339 time or null")
	}
	g.ClearsAt = map[string]tollgate.ClearTime{}
	err = clears.Iter(func(k, v *ast.Term) error {
		code, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("clears_at: %v is not a reason code", k)
		}
		at, err := clearTime(v.Value)
		if err != nil {
			return fmt.Errorf("clears_at[%s]: %w", code, err)
		}
		g.ClearsAt[string(code)] = at
		return nil
	})
	return g, err
}

// Gates is the gate of every environment now, with the emergency freezes
// and the incident in force: what the policy would apply to any request.
func (g *Gate) Gates(ctx context.Context) ([]EnvironmentGate, error) {
	var ev evidence
	if g.Controls != nil {
		var err error
		if ev.controls, err = g.Controls.InForce(ctx, g.Now()); err != nil {
			return nil, err
		}
	}
	return g.Policies.Policy().Gates(ctx, g.context(g.Now().UTC(), ev))
}
