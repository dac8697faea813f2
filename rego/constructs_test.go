package rego

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkConstructs measures what Rego constructs cost the engine, each
// as ten more of it than the base policy (compare allocs/op with "base"):
// a rule entered, an else chain whose first branch fails, a condition
// object.get(…) == null, a negation, a builtin call, an empty
// comprehension, a reference to a folded rule. test/bench/README.md
// ("Second round (issue 20): the engine") reads them.
func benchPolicy(b *testing.B, body string) {
	p := mustPolicy(b, newBundleDir(b, map[string]string{"policy.rego": "package tollgate\n\n" + body + `
decision := {"status": "accepted", "reasons": [], "warnings": [], "waived": [], "suppressed": [], "project": "", "pipeline": input.request.pipeline, "branch": x, "environment": input.request.metadata.environment}
`}))
	r := exampleRequest()
	c := validContext(at(b, "2026-11-23T10:00:00+01:00"))
	if d := p.Evaluate(context.Background(), r, c); d.Status != "accepted" {
		b.Fatal(d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(context.Background(), r, c)
	}
}

func BenchmarkConstructs(b *testing.B) {
	chain := func(n int, f func(i int) string) string {
		s := "a0 := input.request.branch\n"
		for i := 1; i <= n; i++ {
			s += f(i)
		}
		return s + fmt.Sprintf("x := a%d\n", n)
	}
	b.Run("base", func(b *testing.B) { benchPolicy(b, chain(0, nil)) })
	b.Run("10rules", func(b *testing.B) {
		benchPolicy(b, chain(10, func(i int) string { return fmt.Sprintf("a%d := a%d\n", i, i-1) }))
	})
	b.Run("10else", func(b *testing.B) {
		benchPolicy(b, chain(10, func(i int) string {
			return fmt.Sprintf("a%d := a%d if { a%d == \"x\" } else := a%d\n", i, i-1, i-1, i-1)
		}))
	})
	b.Run("10objectget", func(b *testing.B) {
		benchPolicy(b, chain(10, func(i int) string {
			return fmt.Sprintf("a%d := a%d if object.get(input.context, \"e\", null) == null\n", i, i-1)
		}))
	})
	b.Run("10not", func(b *testing.B) {
		benchPolicy(b, chain(10, func(i int) string {
			return fmt.Sprintf("a%d := a%d if not input.context.e\n", i, i-1)
		}))
	})
	b.Run("10concat", func(b *testing.B) {
		benchPolicy(b, chain(10, func(i int) string {
			return fmt.Sprintf("a%d := a%d if count(array.concat([], [])) == 0\n", i, i-1)
		}))
	})
	b.Run("10compr", func(b *testing.B) {
		benchPolicy(b, chain(10, func(i int) string {
			return fmt.Sprintf("a%d := a%d if count([y | some y in []]) == 0\n", i, i-1)
		}))
	})
	b.Run("10dataref", func(b *testing.B) {
		benchPolicy(b, "k := 1\n"+chain(10, func(i int) string {
			return fmt.Sprintf("a%d := a%d if k == 1\n", i, i-1)
		}))
	})
}
