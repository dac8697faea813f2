package epss_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tollgate/tollgate/adapters/epss"
)

// benchRows is about the size of FIRST's daily file in 2025.
const benchRows = 300_000

// generate returns a FIRST-shaped file of n distinct CVEs, sorted as FIRST
// sorts them, with scores of FIRST's precision.
func generate(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.Grow(n * 32)
	b.WriteString("#model_version:v2025.03.14,score_date:2025-03-30T12:55:00Z\ncve,epss,percentile\n")
	const years = 2025 - 1999 + 1
	perYear := (n + years - 1) / years
	for i := range n {
		year, seq := 1999+i/perYear, 1+i%perYear
		e := rng.Float64() * rng.Float64() * rng.Float64() // skewed low, as EPSS is
		fmt.Fprintf(&b, "CVE-%d-%04d,%.5f,%.5f\n", year, seq, e, rng.Float64())
	}
	return b.Bytes()
}

func TestGenerate(t *testing.T) {
	set, err := epss.Parse(bytes.NewReader(generate(10_000)))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Scores) != 10_000 {
		t.Errorf("%d scores, want 10000", len(set.Scores))
	}
}

// BenchmarkParse parses a 300,000-row file: ns/op is the time for the whole
// file, MB/s is of the CSV (decompressed) bytes in both cases.
func BenchmarkParse(b *testing.B) {
	plain := generate(benchRows)
	for _, form := range []struct {
		name string
		data []byte
	}{
		{"csv", plain},
		{"gzip", gzipped(b, plain)},
	} {
		b.Run(form.name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				set, err := epss.Parse(bytes.NewReader(form.data))
				if err != nil {
					b.Fatal(err)
				}
				if len(set.Scores) != benchRows {
					b.Fatalf("%d scores, want %d", len(set.Scores), benchRows)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/benchRows, "ns/row")
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	set, err := epss.Parse(bytes.NewReader(generate(benchRows)))
	if err != nil {
		b.Fatal(err)
	}
	ids := []string{"CVE-2021-0042", "CVE-2024-9999", "cve-2019-0708", "CVE-2099-0001"}
	var i int
	for b.Loop() {
		set.Lookup(ids[i%len(ids)])
		i++
	}
}
