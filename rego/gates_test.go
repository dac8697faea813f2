package rego

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

type inForce []tollgate.Control

func (l inForce) InForce(context.Context, time.Time) ([]tollgate.Control, error) { return l, nil }

// The shipped bundle's gate of each environment reaches Go through the real
// evaluator, with the emergency freezes in force: production open until
// its window ends, staging closed until the freeze expires.
func TestGatesOfTheShippedBundle(t *testing.T) {
	now := at(t, "2026-06-10T10:00:00+02:00")
	expiry := at(t, "2026-06-10T12:30:00+02:00")
	g := &Gate{
		Policies: fixedPolicy{mustPolicy(t, defaultBundle)},
		Licence:  validLicence{},
		Now:      func() time.Time { return now },
		Controls: inForce{{ID: "f1", Kind: tollgate.KindFreeze, State: tollgate.StateActive, Reason: "failover",
			Environments: []string{"staging"}, ExpiresAt: expiry}},
	}
	gates, err := g.Gates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(gates) != 2 || gates[0].Environment != "production" || gates[1].Environment != "staging" {
		t.Fatalf("gates %+v, want production and staging", gates)
	}
	prod, staging := gates[0], gates[1]
	if !prod.Open || !prod.Until.Equal(at(t, "2026-06-10T18:00:00+02:00")) || len(prod.ClosesWith) != 1 ||
		prod.ClosesWith[0].Code != tollgate.CodeTimeWindowViolation {
		t.Errorf("production %+v, want open until 18:00 by the window", prod)
	}
	if staging.Open || !staging.Until.Equal(expiry) || len(staging.Reasons) != 1 || staging.Reasons[0].Code != tollgate.CodeFreezeActive ||
		!strings.Contains(staging.Reasons[0].Message, "failover") || !staging.ClearsAt[tollgate.CodeFreezeActive].Equal(expiry) {
		t.Errorf("staging %+v, want closed by the freeze until %s", staging, expiry)
	}
}

// A bundle without gate.rego, or whose rule answers another shape, gives
// an error: the view shows no gate it cannot read.
func TestGatesOfABundleThatCannotSay(t *testing.T) {
	for _, tc := range []struct{ name, module, want string }{
		{"no rule", "package tollgate\n\ndecision := {}\n", "is undefined"},
		{"not an object", "package tollgate.gate\n\nenvironments := [1]\n", "want an object"},
		{"open not a boolean", "package tollgate.gate\n\nenvironments := {\"p\": {\"open\": \"yes\", \"until\": null, \"closes_with\": []}}\n", "p: open"},
		{"until not a time", "package tollgate.gate\n\nenvironments := {\"p\": {\"open\": true, \"until\": \"soon\", \"closes_with\": []}}\n", "p: until"},
		{"closed without a reason", "package tollgate.gate\n\nenvironments := {\"p\": {\"open\": false, \"until\": null, \"reasons\": [], \"clears_at\": {}}}\n", "without a reason"},
		{"clears_at missing", "package tollgate.gate\n\nenvironments := {\"p\": {\"open\": false, \"until\": null, \"reasons\": [{\"code\": \"x\", \"message\": \"y\"}]}}\n", "clears_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, newBundleDir(t, map[string]string{"policy.rego": tc.module}))
			_, err := p.Gates(context.Background(), validContext(time.Now()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// BenchmarkGates measures the Gate view's evaluation on the shipped
// bundle: production open inside its window (its closing searched among
// the window ends and the weekend), and closed on the evening before the
// year-end freeze (its opening followed through the freeze).
func BenchmarkGates(b *testing.B) {
	p := mustPolicy(b, defaultBundle)
	for _, now := range []string{"2026-06-10T10:00:00+02:00", "2026-12-23T19:00:00+01:00"} {
		c := validContext(at(b, now))
		b.Run(now, func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Gates(context.Background(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
