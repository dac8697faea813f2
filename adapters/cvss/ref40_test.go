package cvss_test

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/adapters/cvss"
)

// The reference tables in testdata/cvss40ref were written by gen.js there
// from FIRST's calculator code (cvss40.js of
// github.com/RedHatProductSecurity/cvss-v4-calculator); its README says
// which version.

// base40 lists the CVSS v4.0 base metrics and their values in the order
// gen.js enumerates them (baseVectors there): a mixed-radix counter, AV
// most significant.
var base40 = []struct {
	metric string
	values []string
}{
	{"AV", []string{"N", "A", "L", "P"}},
	{"AC", []string{"L", "H"}},
	{"AT", []string{"N", "P"}},
	{"PR", []string{"N", "L", "H"}},
	{"UI", []string{"N", "P", "A"}},
	{"VC", []string{"H", "L", "N"}},
	{"VI", []string{"H", "L", "N"}},
	{"VA", []string{"H", "L", "N"}},
	{"SC", []string{"H", "L", "N"}},
	{"SI", []string{"H", "L", "N"}},
	{"SA", []string{"H", "L", "N"}},
}

// baseVector returns the i-th base vector of gen.js's enumeration.
func baseVector(i int) string {
	parts := make([]string, len(base40))
	for k := len(base40) - 1; k >= 0; k-- {
		n := len(base40[k].values)
		parts[k] = base40[k].metric + ":" + base40[k].values[i%n]
		i /= n
	}
	return "CVSS:4.0/" + strings.Join(parts, "/")
}

func readGzip(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// TestScoreV40AllBaseVectors: every one of the 104,976 CVSS v4.0 base
// vectors scores what FIRST's calculator gives it.
func TestScoreV40AllBaseVectors(t *testing.T) {
	want := readGzip(t, "testdata/cvss40ref/base.bin.gz")
	if len(want) != 104976 {
		t.Fatalf("base.bin has %d scores, want 104976", len(want))
	}
	if baseVector(0) != "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H" ||
		baseVector(len(want)-1) != "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N" {
		t.Fatalf("enumeration out of step with gen.js: %s … %s", baseVector(0), baseVector(len(want)-1))
	}
	wrong := 0
	for i, w := range want {
		vector := baseVector(i)
		got, err := cvss.Score(vector)
		if err != nil {
			t.Fatalf("%s: %v", vector, err)
		}
		if got.Score != float64(w)/10 {
			if wrong++; wrong <= 10 {
				t.Errorf("%s: score %.1f, calculator %.1f", vector, got.Score, float64(w)/10)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d base vectors differ from the calculator", wrong, len(want))
	}
}

// TestScoreV40RandomVectors: vectors with Threat, Environmental and
// Supplemental metrics, drawn with a fixed seed by gen.js, score what the
// calculator gives them.
func TestScoreV40RandomVectors(t *testing.T) {
	sc := bufio.NewScanner(strings.NewReader(string(readGzip(t, "testdata/cvss40ref/random.txt.gz"))))
	n, wrong := 0, 0
	for sc.Scan() {
		score, vector, ok := strings.Cut(sc.Text(), " ")
		want, err := strconv.ParseFloat(score, 64)
		if !ok || err != nil {
			t.Fatalf("line %d: %q", n+1, sc.Text())
		}
		n++
		got, err := cvss.Score(vector)
		if err != nil {
			t.Fatalf("%s: %v", vector, err)
		}
		if got.Score != want {
			if wrong++; wrong <= 10 {
				t.Errorf("%s: score %.1f, calculator %.1f", vector, got.Score, want)
			}
		}
	}
	if n != 5000 {
		t.Fatalf("random.txt has %d vectors, want 5000", n)
	}
	if wrong > 0 {
		t.Errorf("%d of %d vectors differ from the calculator", wrong, n)
	}
}
