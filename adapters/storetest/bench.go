package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// BenchmarkTables measures the store calls a request makes besides Decide:
// the cooldown read of a keyed decision, the token lookup of every authenticated request, the scan and baseline a
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
	key := tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}
	if _, err := s.Decide(ctx, &key, Fixed(Record(tollgate.Accepted, time.Now()))); err != nil {
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
	// Every keyed decision reads its key's cooldown before it is evaluated.
	run("Cooldown", func(int) error { _, err := s.Cooldown(ctx, key); return err })
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

// BenchmarkDecideParallel runs BenchmarkDecide on a store open opens with
// group commit ("group-commit/KEYS", for each of keys) and without it
// ("one-tx-each/nil-key": each decision in a transaction of its own).
func BenchmarkDecideParallel(b *testing.B, open func(b *testing.B, groupCommit bool) tollgate.DecisionStore, keys ...string) {
	for _, k := range keys {
		b.Run("group-commit/"+k, func(b *testing.B) { BenchmarkDecide(b, open(b, true), k) })
	}
	b.Run("one-tx-each/nil-key", func(b *testing.B) { BenchmarkDecide(b, open(b, false), "nil-key") })
}

// BenchmarkDecide records decisions from many goroutines at once (16 ×
// GOMAXPROCS), as a busy server does, and reports decisions/s and the
// mean group commit: keys says which cooldown keys they use — nil-key
// (none), distinct-keys (a key of its own each), same-key (one key, all
// accepted: they queue on its lock) or same-key-refused (one key, all
// refused, as a busy key in cooldown is).
func BenchmarkDecide(b *testing.B, s tollgate.DecisionStore, keys string) {
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var key *tollgate.CooldownKey
			status := tollgate.Accepted
			switch keys {
			case "distinct-keys":
				key = &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod",
					Branch: "release/" + strconv.FormatInt(next.Add(1), 10)}
			case "same-key", "same-key-refused":
				key = &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}
				if keys == "same-key-refused" {
					status = tollgate.Refused
				}
			}
			if _, err := s.Decide(context.Background(), key, Fixed(Record(status, time.Now()))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	if st := s.(writer).Stats(); st.Commits > 0 {
		b.ReportMetric(float64(st.Written)/float64(st.Commits), "decisions/commit")
	}
}

// BenchmarkClaimNothingDue measures a worker's look for due jobs when
// none is due, with 10 and with 10,000 jobs waiting: open must return a
// new, empty store each time. The two should cost the same, an index
// probe: waiting jobs cost nothing until they are due.
func BenchmarkClaimNothingDue(b *testing.B, open func(b *testing.B) tollgate.JobStore) {
	for _, waiting := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("waiting=%d", waiting), func(b *testing.B) {
			s := open(b)
			var wg sync.WaitGroup
			next := make(chan int)
			for range 8 {
				wg.Go(func() {
					for range next {
						j := newJob("org/service-api", "production", base)
						j.NextCheckAt = base.Add(time.Hour)
						if _, _, err := s.SubmitJob(context.Background(), j, tollgate.JobBounds{}); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for i := range waiting {
				next <- i
			}
			close(next)
			wg.Wait()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				jobs, err := s.ClaimJobs(context.Background(), "bench", base, time.Minute, 8)
				if err != nil || len(jobs) != 0 {
					b.Fatalf("ClaimJobs = %d jobs, %v; want none due", len(jobs), err)
				}
			}
		})
	}
}

// BenchmarkDecideFanningOut is BenchmarkDecide of refused decisions (every
// one an event for the outbox) while a notification worker fans them out
// every 100 ms, ten times as often as serve's: what the outbox costs the
// decision path, which it does not touch, through the database they share.
// Compare decisions/s with BenchmarkDecide's same-key-refused.
func BenchmarkDecideFanningOut(b *testing.B, s tollgate.DecisionStore) {
	outbox := s.(tollgate.Outbox)
	stop, done := make(chan struct{}), make(chan struct{})
	var made atomic.Int64
	go func() {
		defer close(done)
		route := func(string) []string { return []string{"hook"} }
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			n, err := outbox.FanOut(context.Background(), time.Now(), route, 100) // serve's batch
			if err != nil {
				b.Error(err)
				return
			}
			made.Add(int64(n))
		}
	}()
	BenchmarkDecide(b, s, "same-key-refused")
	close(stop)
	<-done
	b.ReportMetric(float64(made.Load())/b.Elapsed().Seconds(), "deliveries/s")
}
