package rego

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

const defaultBundle = "../bundles/tollgate"

func mustPolicy(tb testing.TB, dir string) *Policy {
	tb.Helper()
	b, err := LoadBundle(dir)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Compile(context.Background(), b)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func exampleRequest() tollgate.Request {
	return tollgate.Request{
		Repository: "org/service-api",
		Branch:     "main",
		Pipeline:   "deploy-prod",
		Metadata:   tollgate.Metadata{Initiator: "github-actions", RunID: "123456789", Environment: "production"},
	}
}

func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func validContext(now time.Time) tollgate.Context {
	return tollgate.Context{Now: now, Licence: tollgate.Licence{Status: tollgate.LicenceValid, Subject: "acme", Edition: "pro"}}
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustPolicy(b, defaultBundle)
	r := exampleRequest()
	c := validContext(at(b, "2026-11-23T10:00:00+01:00"))
	ctx := context.Background()
	if d := p.Evaluate(ctx, r, c); d.Status != tollgate.Accepted {
		b.Fatalf("want accepted, got %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(ctx, r, c)
	}
}
