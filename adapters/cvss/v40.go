package cvss

import (
	"math"
	"strings"

	gocvss40 "github.com/pandatix/go-cvss/40"
)

// CVSS v4.0 scoring, as FIRST's calculator computes it.
//
// go-cvss parses and validates v4.0 vectors, but its Score rounds the final
// value with math.Round(x*10)/10. Scores that are exactly x.x5 on paper are
// often a hair below in floating point (8.6-7.15 = 1.4499999999999993), so
// about 450 of the 104,976 base vectors come out 0.1 lower than the
// calculator says. The calculator (cvss40.js of
// github.com/RedHatProductSecurity/cvss-v4-calculator, which FIRST serves at
// first.org/cvss/calculator/4.0) adds 1e-6 before rounding; and as the
// rounding only agrees when the value before it agrees to the last bit,
// score40 follows the calculator's arithmetic step by step: same tables,
// same order of operations, same rounding. TestScoreV40AllBaseVectors and
// TestScoreV40RandomVectors compare it with the calculator on every base
// vector and on 5,000 vectors with Threat, Environmental and Supplemental
// metrics (adapters/cvss/testdata/cvss40ref).

// metricLevels40 is the calculator's METRIC_LEVELS: each value's severity
// level, in steps of 0.1, used to measure a vector's distance from the
// highest-severity vectors of its macro vector.
var metricLevels40 = map[string]map[string]float64{
	"AV": {"N": 0.0, "A": 0.1, "L": 0.2, "P": 0.3},
	"PR": {"N": 0.0, "L": 0.1, "H": 0.2},
	"UI": {"N": 0.0, "P": 0.1, "A": 0.2},
	"AC": {"L": 0.0, "H": 0.1},
	"AT": {"N": 0.0, "P": 0.1},
	"VC": {"H": 0.0, "L": 0.1, "N": 0.2},
	"VI": {"H": 0.0, "L": 0.1, "N": 0.2},
	"VA": {"H": 0.0, "L": 0.1, "N": 0.2},
	"SC": {"H": 0.1, "L": 0.2, "N": 0.3},
	"SI": {"S": 0.0, "H": 0.1, "L": 0.2, "N": 0.3},
	"SA": {"S": 0.0, "H": 0.1, "L": 0.2, "N": 0.3},
	"CR": {"H": 0.0, "M": 0.1, "L": 0.2},
	"IR": {"H": 0.0, "M": 0.1, "L": 0.2},
	"AR": {"H": 0.0, "M": 0.1, "L": 0.2},
	"E":  {"U": 0.2, "P": 0.1, "A": 0},
}

// The calculator's MAX_COMPOSED: the highest-severity vectors of each EQ
// level (specification Tables 24–28), as metric:value parts.
var (
	maxComposedEQ1 = [][]string{
		{"AV:N/PR:N/UI:N/"},
		{"AV:A/PR:N/UI:N/", "AV:N/PR:L/UI:N/", "AV:N/PR:N/UI:P/"},
		{"AV:P/PR:N/UI:N/", "AV:A/PR:L/UI:P/"},
	}
	maxComposedEQ2 = [][]string{
		{"AC:L/AT:N/"},
		{"AC:H/AT:N/", "AC:L/AT:P/"},
	}
	// Indexed by EQ3 then EQ6; EQ3 2 with EQ6 0 cannot happen.
	maxComposedEQ3EQ6 = [3][2][]string{
		{{"VC:H/VI:H/VA:H/CR:H/IR:H/AR:H/"}, {"VC:H/VI:H/VA:L/CR:M/IR:M/AR:H/", "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M/"}},
		{{"VC:L/VI:H/VA:H/CR:H/IR:H/AR:H/", "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H/"}, {"VC:L/VI:H/VA:L/CR:H/IR:M/AR:H/", "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M/", "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M/", "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H/", "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M/"}},
		{nil, {"VC:L/VI:L/VA:L/CR:H/IR:H/AR:H/"}},
	}
	maxComposedEQ4 = [][]string{{"SC:H/SI:S/SA:S/"}, {"SC:H/SI:H/SA:H/"}, {"SC:L/SI:L/SA:L/"}}
	maxComposedEQ5 = [][]string{{"E:A/"}, {"E:P/"}, {"E:U/"}}
)

// The calculator's MAX_SEVERITY: the depth of each EQ level, plus one.
var (
	maxSeverityEQ1    = []float64{1, 4, 5}
	maxSeverityEQ2    = []float64{1, 2}
	maxSeverityEQ3EQ6 = [3][2]float64{{7, 6}, {8, 8}, {0, 10}}
	maxSeverityEQ4    = []float64{6, 5, 4}
)

// metrics40 holds every v4.0 metric of a vector, "X" for those it omits.
type metrics40 map[string]string

// metricNames40 lists every CVSS v4.0 metric, in the specification's order.
var metricNames40 = []string{
	"AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
	"E",
	"CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA",
	"S", "AU", "R", "V", "RE", "U",
}

func metricsOf40(v *gocvss40.CVSS40) metrics40 {
	m := make(metrics40, len(metricNames40))
	for _, name := range metricNames40 {
		value, err := v.Get(name)
		if err != nil || value == "" {
			value = "X"
		}
		m[name] = value
	}
	return m
}

// effective is the calculator's getEffectiveMetricValue: E, CR, IR and AR
// not defined count as their worst case; a modified metric, when defined,
// replaces its base metric.
func (m metrics40) effective(metric string) string {
	if m[metric] == "X" {
		switch metric {
		case "E":
			return "A"
		case "CR", "IR", "AR":
			return "H"
		}
	}
	if modified, ok := m["M"+metric]; ok && modified != "X" {
		return modified
	}
	return m[metric]
}

// macroVector is the calculator's equivalentClasses: EQ1 to EQ6.
func (m metrics40) macroVector() [6]int {
	e := m.effective
	av, pr, ui := e("AV"), e("PR"), e("UI")
	var eq [6]int
	switch {
	case av == "N" && pr == "N" && ui == "N":
		eq[0] = 0
	case (av == "N" || pr == "N" || ui == "N") && av != "P":
		eq[0] = 1
	default:
		eq[0] = 2
	}
	if !(e("AC") == "L" && e("AT") == "N") {
		eq[1] = 1
	}
	vc, vi, va := e("VC"), e("VI"), e("VA")
	switch {
	case vc == "H" && vi == "H":
		eq[2] = 0
	case vc == "H" || vi == "H" || va == "H":
		eq[2] = 1
	default:
		eq[2] = 2
	}
	switch msi, msa := e("MSI"), e("MSA"); {
	case msi == "S" || msa == "S":
		eq[3] = 0
	case e("SC") == "H" || e("SI") == "H" || e("SA") == "H":
		eq[3] = 1
	default:
		eq[3] = 2
	}
	switch e("E") {
	case "A":
		eq[4] = 0
	case "P":
		eq[4] = 1
	case "U":
		eq[4] = 2
	}
	if !((e("CR") == "H" && vc == "H") || (e("IR") == "H" && vi == "H") || (e("AR") == "H" && va == "H")) {
		eq[5] = 1
	}
	return eq
}

// macroScore returns the calculator's LOOKUP_TABLE score of a macro vector,
// and false for one that does not exist (a level past the last).
func macroScore(eq [6]int) (float64, bool) {
	var key [6]byte
	for i, level := range eq {
		key[i] = byte('0' + level)
	}
	s, ok := lookup40[string(key[:])]
	return s, ok
}

// levelMetrics40 lists the metrics of metricLevels40, whose distances
// decide the score; levelIndex40 gives each one's index in it.
var (
	levelMetrics40 = [...]string{"AV", "PR", "UI", "AC", "AT", "VC", "VI", "VA", "SC", "SI", "SA", "CR", "IR", "AR", "E"}
	levelIndex40   = func() map[string]int {
		out := map[string]int{}
		for i, metric := range levelMetrics40 {
			out[metric] = i
		}
		return out
	}()
)

// severityDistances is the calculator's calculateSeverityDistances: for each
// metric of levelMetrics40, the vector's level (own) minus the level of the
// max vector composed of parts.
func severityDistances(own *[len(levelMetrics40)]float64, parts ...map[string]string) (d [len(levelMetrics40)]float64) {
	for i, metric := range levelMetrics40 {
		for _, part := range parts {
			if maxValue, ok := part[metric]; ok {
				d[i] = own[i] - metricLevels40[metric][maxValue]
			}
		}
	}
	return d
}

// maxParts holds every part of maxComposed*, parsed once.
var maxParts = func() map[string]map[string]string {
	out := map[string]map[string]string{}
	add := func(lists ...[]string) {
		for _, list := range lists {
			for _, s := range list {
				out[s] = parseParts(s)
			}
		}
	}
	add(maxComposedEQ1...)
	add(maxComposedEQ2...)
	for _, byEQ6 := range maxComposedEQ3EQ6 {
		add(byEQ6[:]...)
	}
	add(maxComposedEQ4...)
	add(maxComposedEQ5...)
	return out
}()

// score40 is the calculator's calculateScore, step for step.
func score40(v *gocvss40.CVSS40) float64 {
	const step = 0.1
	m := metricsOf40(v)
	noImpact := true
	for _, metric := range []string{"VC", "VI", "VA", "SC", "SI", "SA"} {
		if m.effective(metric) != "N" {
			noImpact = false
		}
	}
	if noImpact {
		return 0
	}

	eq := m.macroVector()
	value, _ := macroScore(eq)
	lower := func(i int) [6]int {
		next := eq
		next[i]++
		return next
	}
	var eq3eq6Next float64
	eq3eq6Exists := true
	switch eq3, eq6 := eq[2], eq[5]; {
	case eq3 == 1 && eq6 == 1, eq3 == 0 && eq6 == 1:
		eq3eq6Next, eq3eq6Exists = macroScore(lower(2))
	case eq3 == 1 && eq6 == 0:
		eq3eq6Next, eq3eq6Exists = macroScore(lower(5))
	case eq3 == 0 && eq6 == 0:
		left, okLeft := macroScore(lower(5))
		right, okRight := macroScore(lower(2))
		eq3eq6Next, eq3eq6Exists = math.Max(left, right), okLeft && okRight
	default:
		eq3eq6Exists = false
	}

	// The first composed max vector that the vector is nowhere above.
	var own, distances [len(levelMetrics40)]float64
	for i, metric := range levelMetrics40 {
		own[i] = metricLevels40[metric][m.effective(metric)]
	}
	eq3eq6Maxes := maxComposedEQ3EQ6[eq[2]][eq[5]]
found:
	for _, a := range maxComposedEQ1[eq[0]] {
		for _, b := range maxComposedEQ2[eq[1]] {
			for _, c := range eq3eq6Maxes {
				for _, d := range maxComposedEQ4[eq[3]] {
					for _, e := range maxComposedEQ5[eq[4]] {
						distances = severityDistances(&own, maxParts[a], maxParts[b], maxParts[c], maxParts[d], maxParts[e])
						if allNonNegative(distances[:]) {
							break found
						}
					}
				}
			}
		}
	}
	dist := func(metrics ...string) float64 {
		sum := 0.0
		for _, metric := range metrics {
			sum += distances[levelIndex40[metric]]
		}
		return sum
	}

	// Each EQ that has a next lower macro vector moves the score down by
	// its share of the gap to that macro vector's score.
	n := 0
	var normalized [5]float64
	if next, ok := macroScore(lower(0)); ok {
		n++
		normalized[0] = (value - next) * (dist("AV", "PR", "UI") / (maxSeverityEQ1[eq[0]] * step))
	}
	if next, ok := macroScore(lower(1)); ok {
		n++
		normalized[1] = (value - next) * (dist("AC", "AT") / (maxSeverityEQ2[eq[1]] * step))
	}
	if eq3eq6Exists {
		n++
		normalized[2] = (value - eq3eq6Next) * (dist("VC", "VI", "VA", "CR", "IR", "AR") / (maxSeverityEQ3EQ6[eq[2]][eq[5]] * step))
	}
	if next, ok := macroScore(lower(3)); ok {
		n++
		normalized[3] = (value - next) * (dist("SC", "SI", "SA") / (maxSeverityEQ4[eq[3]] * step))
	}
	if next, ok := macroScore(lower(4)); ok {
		n++
		normalized[4] = (value - next) * 0 // EQ5 has one metric: its distance is always 0
	}
	mean := 0.0
	if n > 0 {
		mean = (normalized[0] + normalized[1] + normalized[2] + normalized[3] + normalized[4]) / float64(n)
	}
	return roundHalfUp(math.Max(0, math.Min(10, value-mean)))
}

// roundHalfUp is the calculator's roundToDecimalPlaces: one decimal, half
// up, after adding 1e-6 so that a value meant to be x.x5 and computed a
// hair below still rounds up.
func roundHalfUp(x float64) float64 {
	return math.Round((x+1e-6)*10) / 10
}

func allNonNegative(distances []float64) bool {
	for _, d := range distances {
		if d < 0 {
			return false
		}
	}
	return true
}

// parseParts turns "AV:N/PR:N/" into {"AV": "N", "PR": "N"}.
func parseParts(s string) map[string]string {
	out := make(map[string]string, 16)
	for s != "" {
		var part string
		part, s, _ = strings.Cut(s, "/")
		metric, value, _ := strings.Cut(part, ":")
		out[metric] = value
	}
	return out
}
