package rego

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Constant folding. A rule whose value cannot depend on the input (it
// refers to no input, directly or through the rules it uses, and calls no
// non-deterministic builtin such as time.now_ns or http.send) has the same
// value in every evaluation of a loaded bundle: the configuration's
// indexes, the freezes of each environment, a time zone. foldRules
// evaluates each such rule once, when the bundle is loaded, and every
// evaluation starts with those values in its virtual cache, as if it had
// just computed them itself. Nothing is written twice: the rules are the
// bundle's own, which stock `opa test` evaluates as usual. A `with` opens
// a cache frame of its own, which sees the folded values only when no
// `with` of the policy can change them (folded.inputWithsOnly).

// folded is the values of a bundle's input-independent rules, keyed like
// the virtual cache: by the rule's path.
type folded struct {
	bySig map[uint64][]foldedRule
	n     int
	// inputWithsOnly: every with of the policy replaces part of the input,
	// which no folded rule reads, so that the folded values hold in the
	// frames withs open too (the fixed point of decision.rego evaluates
	// the rules again at other times). A with on data or on a function
	// could change them: then only the first frame sees them.
	inputWithsOnly bool
}

// visible reports whether the folded values hold in the cache frame at
// depth (1 for the evaluation's own).
func (f *folded) visible(depth int) bool {
	return f != nil && (depth == 1 || f.inputWithsOnly)
}

type foldedRule struct {
	path  ast.Ref
	value *ast.Term // nil: the rule is undefined
}

// get returns the folded value of the rule at ref; ok is false when ref is
// not a folded rule.
func (f *folded) get(ref ast.Ref, sig uint64) (value *ast.Term, ok bool) {
	if f == nil {
		return nil, false
	}
	for _, r := range f.bySig[sig] {
		if len(r.path) == len(ref) && refEqual(r.path, ref) {
			return r.value, true
		}
	}
	return nil, false
}

// foldRules evaluates every input-independent rule of the compiled modules
// against store. A rule whose evaluation fails is left out: evaluations
// then meet the failure themselves, and report it (policy_error), as they
// would without folding. budget bounds the whole load's folding: the rules
// not folded within it (a runaway comprehension) are left to evaluation,
// and its own time budget. Only the end of parent is an error.
func foldRules(parent context.Context, compiler *ast.Compiler, store storage.Store, budget time.Duration) (*folded, error) {
	f := &folded{bySig: map[uint64][]foldedRule{}, inputWithsOnly: inputWithsOnly(compiler)}
	paths := independentPaths(compiler)
	if len(paths) == 0 {
		return f, nil
	}
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	for _, path := range paths {
		stop := topdown.NewCancel()
		done := context.AfterFunc(ctx, stop.Cancel)
		query := ast.NewBody(ast.Equality.Expr(ast.NewTerm(resultVar), ast.NewTerm(path)))
		var value *ast.Term
		err := topdown.NewQuery(query).
			WithCompiler(compiler).
			WithStore(store).
			WithTransaction(txn).
			WithStrictBuiltinErrors(true).
			WithCancel(stop).
			Iter(ctx, func(qr topdown.QueryResult) error {
				value = qr[resultVar]
				return nil
			})
		done()
		if parent.Err() != nil {
			return nil, fmt.Errorf("fold input-independent rules: %w", context.Cause(parent))
		}
		if ctx.Err() != nil {
			break // out of budget: the rules left are evaluated as usual
		}
		if err != nil {
			continue
		}
		if value == nil && !isComplete(compiler, path) {
			continue // an empty partial set or object is a value, not undefined
		}
		sig := refSig(path)
		f.bySig[sig] = append(f.bySig[sig], foldedRule{path: path, value: value})
		f.n++
	}
	return f, nil
}

// inputWithsOnly reports whether every with of the compiled modules
// replaces part of the input.
func inputWithsOnly(compiler *ast.Compiler) bool {
	ok := true
	for _, m := range compiler.Modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			for _, w := range e.With {
				if ref, isRef := w.Target.Value.(ast.Ref); !isRef || !ref.HasPrefix(ast.InputRootRef) {
					ok = false
				}
			}
			return !ok
		})
	}
	return ok
}

// isComplete reports whether path is a complete rule's, whose undefined
// value is worth folding too.
func isComplete(compiler *ast.Compiler, path ast.Ref) bool {
	rules := compiler.GetRulesExact(path)
	return len(rules) > 0 && rules[0].Head.RuleKind() == ast.SingleValue && rules[0].Head.Key == nil
}

// independentPaths lists the paths of the virtual documents whose rules
// are all input-independent, each as the ref evaluation caches it under.
// Functions are left out (their values depend on their arguments), and so
// are rules whose head has variables before its last term.
func independentPaths(compiler *ast.Compiler) []ast.Ref {
	a := analysis{compiler: compiler, memo: map[*ast.Rule]bool{}}
	seen := map[string]bool{}
	var paths []ast.Ref
	for _, name := range slices.Sorted(maps.Keys(compiler.Modules)) {
		for _, rule := range compiler.Modules[name].Rules {
			path, ok := cachePath(rule)
			if !ok || len(rule.Head.Args) > 0 || seen[path.String()] {
				continue
			}
			seen[path.String()] = true
			if a.allIndependent(compiler.GetRulesWithPrefix(path)) {
				paths = append(paths, path)
			}
		}
	}
	return paths
}

// allIndependent reports whether rules are all input-independent rules
// that are not functions.
func (a *analysis) allIndependent(rules []*ast.Rule) bool {
	for _, rule := range rules {
		if len(rule.Head.Args) > 0 || !a.independent(rule) {
			return false
		}
	}
	return len(rules) > 0
}

// cachePath is the ref under which evaluation caches the rule's value: its
// full path for a complete rule with a ground head, the path up to the key
// for a partial set or object.
func cachePath(rule *ast.Rule) (ast.Ref, bool) {
	full := rule.Ref() // compiled: data.<package>.<rule>
	prefix := full.GroundPrefix()
	switch {
	case len(prefix) == len(full):
		return full, true
	case len(prefix) == len(full)-1:
		return prefix, true
	}
	return nil, false
}

// analysis decides, once per rule, whether a rule's value can depend on
// the input.
type analysis struct {
	compiler *ast.Compiler
	memo     map[*ast.Rule]bool
}

func (a *analysis) independent(rule *ast.Rule) bool {
	if v, ok := a.memo[rule]; ok {
		return v
	}
	a.memo[rule] = false // rules are not recursive; this guards the walk anyway
	ok := true
	for r := rule; r != nil && ok; r = r.Else {
		ok = a.independentNode(r.Head) && a.independentNode(r.Body)
	}
	a.memo[rule] = ok
	return ok
}

func (a *analysis) independentNode(node any) bool {
	ok := true
	ast.WalkExprs(node, func(e *ast.Expr) bool {
		if !ok {
			return true
		}
		if len(e.With) > 0 {
			ok = false // with input/data as ...: judged conservatively
			return true
		}
		if e.IsCall() {
			name := e.Operator().String()
			if b, found := ast.BuiltinMap[name]; found && b.Nondeterministic {
				ok = false
			}
		}
		return false
	})
	ast.WalkTerms(node, func(t *ast.Term) bool {
		if call, isCall := t.Value.(ast.Call); isCall && ok {
			if b, found := ast.BuiltinMap[call[0].String()]; found && b.Nondeterministic {
				ok = false
			}
		}
		return !ok
	})
	if !ok {
		return false
	}
	ast.WalkRefs(node, func(ref ast.Ref) bool {
		if !ok {
			return true
		}
		switch {
		case ref.HasPrefix(ast.InputRootRef):
			ok = false
		case ref.HasPrefix(ast.DefaultRootRef):
			for _, dep := range a.compiler.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
				if !a.independent(dep) {
					ok = false
					break
				}
			}
		}
		return false
	})
	return ok
}
