package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// BenchmarkTables measures the store calls a request makes besides Decide:
// the token lookup of every authenticated request, the scan and baseline a
// decision on a stored scan reads, the EPSS lookup of its findings, a bundle
// read and the writes of tokens, scans and bundles. s must implement
// TokenStore, ScanStore, BundleStore and EPSSStore; it is not closed.
func BenchmarkTables(b *testing.B, s tollgate.DecisionStore) {
	ctx := context.Background()
	tokens := s.(tollgate.TokenStore)
	scans := s.(tollgate.ScanStore)
	bundles := s.(tollgate.BundleStore)
	epss := s.(tollgate.EPSSStore)

	tok, _, hash, err := tollgate.NewToken(rand.Reader, "bench", []tollgate.Scope{tollgate.ScopeEvaluate}, base, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	if err := tokens.CreateToken(ctx, tok, hash); err != nil {
		b.Fatal(err)
	}
	scan := storedScan("service-api", "registry.example/service-api:1.2.3")
	if err := scans.PutScan(ctx, scan); err != nil {
		b.Fatal(err)
	}
	if err := bundles.PutBundle(ctx, sampleBundle("sha256:bench")); err != nil {
		b.Fatal(err)
	}
	set := tollgate.EPSSSet{ModelVersion: "v2025.03.14", ScoreDate: base}
	var cves []string
	for i := range 1000 {
		cve := fmt.Sprintf("CVE-2024-%05d", i)
		set.Scores = append(set.Scores, tollgate.EPSSScore{CVE: cve, EPSS: 0.5, Percentile: 0.5})
		if i%50 == 0 {
			cves = append(cves, cve)
		}
	}
	if err := epss.ImportEPSS(ctx, set); err != nil {
		b.Fatal(err)
	}

	run := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if err := op(i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("TokenByID", func(int) error { _, _, err := tokens.TokenByID(ctx, tok.ID); return err })
	run("Tokens", func(int) error { _, err := tokens.Tokens(ctx, true); return err })
	run("Scan", func(int) error { _, err := scans.Scan(ctx, scan.ID); return err })
	run("Baseline", func(int) error { _, err := scans.Baseline(ctx, "service-api", "production"); return err })
	run("EPSS/20-cves", func(int) error { _, _, err := epss.EPSS(ctx, cves); return err })
	run("Bundle", func(int) error { _, err := bundles.Bundle(ctx, "sha256:bench"); return err })
	run("PutScan", func(int) error {
		sc := storedScan("service-api", "registry.example/service-api:1.2.3")
		return scans.PutScan(ctx, sc)
	})
	run("PutBundle/kept-already", func(int) error { return bundles.PutBundle(ctx, sampleBundle("sha256:bench")) })
	run("CreateAndRevokeToken", func(i int) error {
		t, _, h, err := tollgate.NewToken(rand.Reader, fmt.Sprintf("bench-%d", i), []tollgate.Scope{tollgate.ScopeRead}, base, time.Time{})
		if err != nil {
			return err
		}
		if err := tokens.CreateToken(ctx, t, h); err != nil {
			return err
		}
		_, err = tokens.RevokeToken(ctx, t.Name, base.Add(time.Second))
		return err
	})
}
