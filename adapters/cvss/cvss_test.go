package cvss_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/cvss"
)

// CVSS v4.0 scores as FIRST's calculator (https://www.first.org/cvss/calculator/4.0)
// gives them. The calculator is the code of
// github.com/RedHatProductSecurity/cvss-v4-calculator; the pairs are taken
// from two test suites that check themselves against it:
//
//   - [go-cvss] github.com/pandatix/go-cvss v0.6.4, 40/cvss40_test.go,
//     TestScore, by case name. The "clement-*" and "issue-292-*" cases are
//     there because they once differed from the official calculator (one
//     exposed a typo in the calculator itself); they hold its values.
//   - [rh-cvss] github.com/RedHatProductSecurity/cvss, tests/vectors_simple4
//     (lines "VECTOR - (SCORE,)") and tests/test_cvss4.py, by test name;
//     Red Hat maintains both that library and the calculator.
var v40Reference = []struct {
	vector string
	score  float64
	source string
}{
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 10.0, "go-cvss full-impact"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0, "go-cvss no-impact"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, "go-cvss full-system-no-subsequent"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:H/SI:H/SA:H", 7.9, "go-cvss no-system-full-subsequent"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:U", 9.1, "go-cvss with-t (CVSS-BT)"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/MVI:L/MSA:S", 9.8, "go-cvss with-e (CVSS-BE)"},
	{"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 1.0, "go-cvss smol"},
	{"CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:P/VC:N/VI:H/VA:H/SC:N/SI:L/SA:L", 5.2, "go-cvss clement-b"},
	{"CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:P/VC:N/VI:H/VA:H/SC:N/SI:L/SA:L/E:P/CR:H/IR:M/AR:H/MAV:A/MAT:P/MPR:N/MVI:H/MVA:N/MSI:H/MSA:N/S:N/V:C/U:Amber", 4.7, "go-cvss clement-bte"},
	{"CVSS:4.0/AV:N/AC:H/AT:N/PR:H/UI:N/VC:N/VI:N/VA:H/SC:H/SI:H/SA:H/CR:L/IR:L/AR:L", 5.8, "go-cvss reg-deptheq3eq6"},
	{"CVSS:4.0/AV:N/AC:L/AT:P/PR:L/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/E:P/CR:X/IR:M/AR:X/MAV:N/MAC:H/MAT:X/MPR:L/MUI:X/MVC:L/MVI:N/MVA:H/MSC:L/MSI:S/MSA:S", 7.4, "go-cvss issue-292-case-1"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/E:X/CR:H/IR:M/AR:L/MAV:P/MAC:H/MAT:X/MPR:N/MUI:P/MVC:N/MVI:H/MVA:N/MSC:N/MSI:X/MSA:S/S:P/AU:X/R:A/V:X/RE:M/U:Amber", 5.4, "go-cvss issue-292-case-2"},
	{"CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:P/VC:H/VI:N/VA:L/SC:H/SI:N/SA:L/E:X/CR:M/IR:H/AR:H/MAV:N/MAC:X/MAT:N/MPR:N/MUI:A/MVC:N/MVI:X/MVA:N/MSC:N/MSI:X/MSA:N", 0.0, "go-cvss issue-292-case-3"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:H/VA:L/SC:N/SI:H/SA:L", 9.2, "rh-cvss vectors_simple4 line 1"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:H/SI:N/SA:L", 7.8, "rh-cvss vectors_simple4 line 2"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:L/SA:N", 6.9, "rh-cvss vectors_simple4 line 3"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:L/VI:N/VA:N/SC:L/SI:N/SA:L", 5.3, "rh-cvss vectors_simple4 line 8"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 8.6, "rh-cvss vectors_simple4 line 11"},
	{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:N/SA:H", 9.5, "rh-cvss vectors_simple4 (AT:P, 9.5)"},
	{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:N/SA:N", 2.1, "rh-cvss vectors_simple4 (UI:A, 2.1)"},
	{"CVSS:4.0/AV:N/AC:H/AT:N/PR:H/UI:A/VC:N/VI:N/VA:N/SC:N/SI:H/SA:N", 4.0, "rh-cvss vectors_simple4 (AC:H PR:H, 4.0)"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N", 8.7, "rh-cvss test_json_schema_high_va"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N/AR:L", 7.9, "rh-cvss test_json_schema_high_va_low_ar"},
	{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/MSI:H", 7.7, "rh-cvss test_json_schema_high_msi"},
	{"CVSS:4.0/AV:A/AC:H/AT:P/PR:L/UI:P/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0, "rh-cvss test_json_schema_no_impact_metrics"},
}

func TestScoreV40MatchesFIRSTCalculator(t *testing.T) {
	if len(v40Reference) < 10 {
		t.Fatalf("only %d reference vectors: the issue asks for ten at least", len(v40Reference))
	}
	for _, ref := range v40Reference {
		got, err := cvss.Score(ref.vector)
		if err != nil {
			t.Errorf("%s: %v", ref.source, err)
			continue
		}
		want := tollgate.ScoreReceipt{Vector: ref.vector, Version: "4.0", Score: ref.score}
		if got != want {
			t.Errorf("%s: Score(%s) = %+v, want score %.1f", ref.source, ref.vector, got, ref.score)
		}
	}
}

func TestScoreV3(t *testing.T) {
	for _, tt := range []struct {
		vector, version string
		score           float64
	}{
		// The specification's and NVD's best-known base scores.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1", 9.8},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.1", 10.0},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "3.1", 6.1},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "3.1", 7.5},
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "3.1", 7.8},
		{"CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", "3.1", 5.4},
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.0", 9.8},
		{"CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", "3.0", 5.9},
		// Temporal and environmental metrics leave the base score alone.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:U", "3.1", 9.8},
		// Surrounding blanks, as a shell or a file may leave them.
		{"  CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n", "3.1", 9.8},
	} {
		got, err := cvss.Score(tt.vector)
		if err != nil {
			t.Errorf("Score(%q): %v", tt.vector, err)
			continue
		}
		if got.Version != tt.version || got.Score != tt.score || got.Vector != strings.TrimSpace(tt.vector) || got.Source != "" {
			t.Errorf("Score(%q) = %+v, want version %s score %.1f", tt.vector, got, tt.version, tt.score)
		}
	}
}

func TestScoreRefusesBadVectors(t *testing.T) {
	for _, tt := range []struct{ vector, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS v2"},
		{"(AV:N/AC:L/Au:N/C:P/I:P/A:P)", "CVSS v2"},
		{"CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS v2"},
		// Wrong prefix or version.
		{"9.8", `not a CVSS v3.x or v4.0 vector: it has no CVSS: prefix`},
		{"cvss:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `not a CVSS v3.x or v4.0 vector: the prefix is "cvss:3.1", and it is case-sensitive`},
		{"CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `not a CVSS v3.x or v4.0 vector: version "3.2" is not one tollgate scores`},
		{"CVSS:4.0", `"CVSS:4.0" must be followed by "/" and the metrics`},
		{"CVSS:4.0/", `CVSS v4.0 vector "CVSS:4.0/" is not valid: it has no metrics: want AV, AC, AT, PR, UI, VC, VI, VA, SC, SI, SA`},
		// A missing mandatory metric, named.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "CVSS v3.1 vector \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H\" is not valid: mandatory metric A is missing"},
		{"CVSS:3.0/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS v3.0 vector \"CVSS:3.0/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\" is not valid: mandatory metric AV is missing"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H", "is not valid: mandatory metrics SC, SI, SA are missing"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SA:N", "is not valid: mandatory metric SI is missing"},
		// A duplicate metric.
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H", "CVSS v3.0 vector \"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H\" is not valid: metric A appears twice"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A/E:P", "is not valid: metric E appears twice"},
		{"CVSS:4.0/AV:N/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "is not valid: metric AV appears twice"},
		// An unknown metric.
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/JJ:H", `is not valid: unknown metric "JJ": the metrics are AV, AC, AT,`},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AT:N", `is not valid: unknown metric "AT": the metrics are AV, AC, PR,`},
		{"CVSS:3.1/av:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `is not valid: unknown metric "av"`},
		// An unknown value, with the metric and the values it takes.
		{"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `is not valid: unknown value "X" for metric AV: want N, A, L or P`},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:J", `is not valid: unknown value "J" for metric SA: want H, L or N`},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/U:amber", `is not valid: unknown value "amber" for metric U: want X, Clear, Green, Amber or Red`},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/MSI:S:S", `is not valid: unknown value "S:S" for metric MSI`},
		// Not METRIC:VALUE.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/", `is not valid: metric 9 is empty (a "/" too many?)`},
		{"CVSS:4.0/AV:N//AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", `is not valid: metric 2 is empty`},
		{"CVSS:3.1/AVN/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `is not valid: "AVN" is not a METRIC:VALUE pair`},
		// v4.0 metrics out of the specification's order.
		{"CVSS:4.0/AC:L/AV:N/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "is not valid: metric AV comes after AC: metrics must be in the specification's order, AV, AC, AT,"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/CR:H/E:A", "is not valid: metric E comes after CR"},
	} {
		got, err := cvss.Score(tt.vector)
		if err == nil {
			t.Errorf("Score(%q) = %+v, want an error", tt.vector, got)
			continue
		}
		if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Score(%q): %v (code %s), want %s saying %q", tt.vector, err, tollgate.ErrorCode(err), tollgate.EInvalid, tt.want)
		}
	}
}

// v3.x allows its metrics in any order (CVSS v3.1 specification, section
// 6); only v4.0 prescribes one.
func TestScoreV3AnyOrder(t *testing.T) {
	got, err := cvss.Score("CVSS:3.1/A:H/I:H/C:H/S:U/UI:N/PR:N/AC:L/AV:N")
	if err != nil || got.Score != 9.8 {
		t.Errorf("Score = %+v, %v; want 9.8", got, err)
	}
}

func TestBestPrefersNewestVersionThenNVDThenHighest(t *testing.T) {
	const (
		v40Critical = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N" // 9.3
		v40High     = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N" // 8.7
		v31Critical = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"                    // 9.8
		v31Medium   = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"                    // 6.1
		v31High     = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"                    // 7.5
		v30Critical = "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"                    // 10.0
		v2          = "AV:N/AC:L/Au:N/C:C/I:C/A:C"
	)
	for _, tt := range []struct {
		name    string
		vectors []tollgate.CVSSVector
		want    tollgate.ScoreReceipt
		ok      bool
	}{
		{"nothing", nil, tollgate.ScoreReceipt{}, false},
		{"only v2 and garbage", []tollgate.CVSSVector{{Vector: v2, Source: "nvd"}, {Vector: "CVSS:3.1/AV:N", Source: "nvd"}},
			tollgate.ScoreReceipt{}, false},
		{"v4.0 beats a higher v3.1",
			[]tollgate.CVSSVector{{Vector: v31Critical, Source: "nvd"}, {Vector: v40High, Source: "ghsa"}},
			tollgate.ScoreReceipt{Vector: v40High, Version: "4.0", Score: 8.7, Source: "ghsa"}, true},
		{"v3.1 beats a higher v3.0",
			[]tollgate.CVSSVector{{Vector: v30Critical, Source: "nvd"}, {Vector: v31Medium, Source: "redhat"}},
			tollgate.ScoreReceipt{Vector: v31Medium, Version: "3.1", Score: 6.1, Source: "redhat"}, true},
		{"v3.0 when it is all there is",
			[]tollgate.CVSSVector{{Vector: v2, Source: "nvd"}, {Vector: v30Critical}},
			tollgate.ScoreReceipt{Vector: v30Critical, Version: "3.0", Score: 10.0}, true},
		{"nvd beats a higher score of the same version",
			[]tollgate.CVSSVector{{Vector: v31Critical, Source: "ghsa"}, {Vector: v31Medium, Source: "nvd"}},
			tollgate.ScoreReceipt{Vector: v31Medium, Version: "3.1", Score: 6.1, Source: "nvd"}, true},
		{"NVD in capitals is nvd",
			[]tollgate.CVSSVector{{Vector: v40Critical, Source: "ghsa"}, {Vector: v40High, Source: "NVD"}},
			tollgate.ScoreReceipt{Vector: v40High, Version: "4.0", Score: 8.7, Source: "NVD"}, true},
		{"without nvd, the highest score",
			[]tollgate.CVSSVector{{Vector: v31Medium, Source: "ghsa"}, {Vector: v31Critical, Source: "redhat"}, {Vector: v31High, Source: "debian"}},
			tollgate.ScoreReceipt{Vector: v31Critical, Version: "3.1", Score: 9.8, Source: "redhat"}, true},
		{"among nvd vectors, the highest score",
			[]tollgate.CVSSVector{{Vector: v31High, Source: "nvd"}, {Vector: v31Critical, Source: "nvd"}},
			tollgate.ScoreReceipt{Vector: v31Critical, Version: "3.1", Score: 9.8, Source: "nvd"}, true},
		{"a tie keeps the first",
			[]tollgate.CVSSVector{{Vector: v31High, Source: "a"}, {Vector: v31High, Source: "b"}},
			tollgate.ScoreReceipt{Vector: v31High, Version: "3.1", Score: 7.5, Source: "a"}, true},
		{"a bad v4.0 vector does not hide a good v3.1 one",
			[]tollgate.CVSSVector{{Vector: "CVSS:4.0/AV:N/AC:L", Source: "nvd"}, {Vector: v31High, Source: "ghsa"}},
			tollgate.ScoreReceipt{Vector: v31High, Version: "3.1", Score: 7.5, Source: "ghsa"}, true},
	} {
		got, ok := cvss.Best(tt.vectors)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: Best = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzScore: any string either scores within 0–10 with a known version, or
// is refused with EInvalid; nothing panics.
func FuzzScore(f *testing.F) {
	for _, ref := range v40Reference {
		f.Add(ref.vector)
	}
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	f.Add("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	f.Add("AV:N/AC:L/Au:N/C:P/I:P/A:P")
	f.Fuzz(func(t *testing.T, vector string) {
		got, err := cvss.Score(vector)
		if err != nil {
			if tollgate.ErrorCode(err) != tollgate.EInvalid {
				t.Fatalf("Score(%q): %v, code %s", vector, err, tollgate.ErrorCode(err))
			}
			return
		}
		if got.Score < 0 || got.Score > 10 || (got.Version != "4.0" && got.Version != "3.1" && got.Version != "3.0") {
			t.Fatalf("Score(%q) = %+v", vector, got)
		}
	})
}
