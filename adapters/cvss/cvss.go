// Package cvss computes CVSS base scores from vector strings, with the receipt
// that lets anyone check them: vector, version, score and source.
//
// github.com/pandatix/go-cvss parses every vector and scores v3.0 and v3.1
// ones. CVSS v4.0 vectors are scored by score40 (v40.go), which follows
// FIRST's calculator step for step, rounding included: go-cvss's own v4.0
// score rounds 450 of the 104,976 base vectors 0.1 lower than the
// calculator. Tests compare every base vector, and 5,000 random vectors with
// Threat, Environmental and Supplemental metrics, with tables the calculator
// generated (testdata/cvss40ref). Only v3.0, v3.1 and v4.0 are scored; v2
// vectors are refused, as tollgate's gates compare v3/v4 scores only.
package cvss

import (
	"fmt"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/tollgate/tollgate"
)

// Versions, as ScoreReceipt.Version spells them.
const (
	V40 = "4.0"
	V31 = "3.1"
	V30 = "3.0"
)

// Score parses a CVSS v3.0, v3.1 or v4.0 vector and returns its receipt,
// without a source (Best fills it in from the finding's vector).
//
// For v3.x the score is the base score: temporal and environmental metrics,
// if the vector has any, are ignored. For v4.0 it is the score the
// specification defines for the metrics present, as FIRST's calculator
// computes it: a vector with only base metrics, as scanners publish them,
// gets the base score (CVSS-B); one that also sets Threat or Environmental
// metrics gets the CVSS-BT, -BE or -BTE score its author meant.
//
// A vector that is empty, not CVSS v3.x/v4.0, or malformed is a
// tollgate.EInvalid error that says what is wrong: which metric is missing,
// twice, unknown, has an unknown value or, in v4.0, is out of order.
func Score(vector string) (tollgate.ScoreReceipt, error) {
	vector = strings.TrimSpace(vector)
	receipt := tollgate.ScoreReceipt{Vector: vector}
	switch {
	case vector == "":
		return receipt, tollgate.Errorf(tollgate.EInvalid, "CVSS vector is empty: want CVSS:4.0/AV:…, CVSS:3.1/AV:… or CVSS:3.0/AV:…")
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		if err := check(vector, V40, spec40, true); err != nil {
			return receipt, err
		}
		v, err := gocvss40.ParseVector(vector)
		if err != nil {
			return receipt, invalid(vector, V40, err.Error())
		}
		receipt.Version, receipt.Score = V40, score40(v)
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		if err := check(vector, V31, spec3, false); err != nil {
			return receipt, err
		}
		v, err := gocvss31.ParseVector(vector)
		if err != nil {
			return receipt, invalid(vector, V31, err.Error())
		}
		receipt.Version, receipt.Score = V31, v.BaseScore()
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		if err := check(vector, V30, spec3, false); err != nil {
			return receipt, err
		}
		v, err := gocvss30.ParseVector(vector)
		if err != nil {
			return receipt, invalid(vector, V30, err.Error())
		}
		receipt.Version, receipt.Score = V30, v.BaseScore()
	case isV2(vector):
		return receipt, tollgate.Errorf(tollgate.EInvalid,
			"CVSS vector %q is CVSS v2, which tollgate does not score: give the v3.1 or v4.0 vector of the same vulnerability", vector)
	default:
		return receipt, tollgate.Errorf(tollgate.EInvalid,
			"%q is not a CVSS v3.x or v4.0 vector: %s; want it to start with CVSS:4.0/, CVSS:3.1/ or CVSS:3.0/", vector, prefixProblem(vector))
	}
	return receipt, nil
}

// check refuses a vector whose metrics are not valid for its version,
// saying which metric is at fault and how.
func check(vector, version string, specs []metricSpec, ordered bool) error {
	_, metrics, _ := strings.Cut(vector, "/")
	if problem := checkMetrics(metrics, specs, ordered); problem != "" {
		return invalid(vector, version, problem)
	}
	return nil
}

func invalid(vector, version, problem string) error {
	return tollgate.Errorf(tollgate.EInvalid, "CVSS v%s vector %q is not valid: %s", version, vector, problem)
}

// prefixProblem says what is wrong with the start of a vector that is
// neither v3.x nor v4.0.
func prefixProblem(vector string) string {
	head, _, _ := strings.Cut(vector, "/")
	switch version, ok := strings.CutPrefix(head, "CVSS:"); {
	case ok && (version == "4.0" || version == "3.1" || version == "3.0"):
		return fmt.Sprintf("%q must be followed by \"/\" and the metrics", head)
	case ok:
		return fmt.Sprintf("version %q is not one tollgate scores", version)
	case strings.EqualFold(head[:min(len(head), 5)], "CVSS:"):
		return fmt.Sprintf("the prefix is %q, and it is case-sensitive", head)
	default:
		return "it has no CVSS: prefix"
	}
}

// isV2 recognises a CVSS v2 vector: v2 has no version prefix (some tools
// write "CVSS:2.0/" or wrap it in parentheses) and its own Au metric.
func isV2(vector string) bool {
	v := strings.TrimPrefix(strings.TrimPrefix(vector, "("), "CVSS:2.0/")
	return strings.HasPrefix(v, "AV:") && strings.Contains(v, "/Au:")
}

// Best returns the receipt to judge a finding by, among the vectors a
// report carries for it, and false when none of them can be scored.
//
// The newest version wins: v4.0, else v3.1, else v3.0 — a newer version is
// what its publisher considers the better description. Among vectors of that
// version, the one from "nvd" is preferred, being the one source every
// scanner shares, so that the same vulnerability scores the same whatever
// tool reported it; without an NVD vector, the highest score wins, the safe
// choice when sources disagree. Vectors that do not parse are skipped: a
// finding none of whose vectors parse has no score, which the unknowns gate
// counts.
func Best(vectors []tollgate.CVSSVector) (tollgate.ScoreReceipt, bool) {
	var best tollgate.ScoreReceipt
	found := false
	for _, v := range vectors {
		receipt, err := Score(v.Vector)
		if err != nil {
			continue
		}
		receipt.Source = v.Source
		if !found || better(receipt, best) {
			best, found = receipt, true
		}
	}
	return best, found
}

// better reports whether a is preferred to b, per Best's order.
func better(a, b tollgate.ScoreReceipt) bool {
	if ra, rb := versionRank(a.Version), versionRank(b.Version); ra != rb {
		return ra > rb
	}
	if na, nb := isNVD(a.Source), isNVD(b.Source); na != nb {
		return na
	}
	return a.Score > b.Score
}

func versionRank(version string) int {
	switch version {
	case V40:
		return 3
	case V31:
		return 2
	case V30:
		return 1
	}
	return 0
}

func isNVD(source string) bool { return strings.EqualFold(source, "nvd") }
