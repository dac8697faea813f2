package cvss

import (
	"fmt"
	"slices"
	"strings"
)

// Vector syntax, checked before go-cvss parses a vector, so that a vector
// that is not valid is refused with the reason: go-cvss's errors ("invalid
// metric order", "invalid metric value") do not say which metric is at
// fault, and one "invalid metric order" covers a missing metric, a
// duplicate, an unknown metric and metrics out of order alike.

// metricSpec is one metric of a CVSS version: its abbreviation, its values
// and whether every vector must set it.
type metricSpec struct {
	name      string
	values    []string
	mandatory bool
}

// spec40 lists the CVSS v4.0 metrics in the specification's order (Table
// 23), which vectors must follow.
var spec40 = []metricSpec{
	{"AV", []string{"N", "A", "L", "P"}, true},
	{"AC", []string{"L", "H"}, true},
	{"AT", []string{"N", "P"}, true},
	{"PR", []string{"N", "L", "H"}, true},
	{"UI", []string{"N", "P", "A"}, true},
	{"VC", []string{"H", "L", "N"}, true},
	{"VI", []string{"H", "L", "N"}, true},
	{"VA", []string{"H", "L", "N"}, true},
	{"SC", []string{"H", "L", "N"}, true},
	{"SI", []string{"H", "L", "N"}, true},
	{"SA", []string{"H", "L", "N"}, true},
	{"E", []string{"X", "A", "P", "U"}, false},
	{"CR", []string{"X", "H", "M", "L"}, false},
	{"IR", []string{"X", "H", "M", "L"}, false},
	{"AR", []string{"X", "H", "M", "L"}, false},
	{"MAV", []string{"X", "N", "A", "L", "P"}, false},
	{"MAC", []string{"X", "L", "H"}, false},
	{"MAT", []string{"X", "N", "P"}, false},
	{"MPR", []string{"X", "N", "L", "H"}, false},
	{"MUI", []string{"X", "N", "P", "A"}, false},
	{"MVC", []string{"X", "H", "L", "N"}, false},
	{"MVI", []string{"X", "H", "L", "N"}, false},
	{"MVA", []string{"X", "H", "L", "N"}, false},
	{"MSC", []string{"X", "H", "L", "N"}, false},
	{"MSI", []string{"X", "S", "H", "L", "N"}, false},
	{"MSA", []string{"X", "S", "H", "L", "N"}, false},
	{"S", []string{"X", "N", "P"}, false},
	{"AU", []string{"X", "N", "Y"}, false},
	{"R", []string{"X", "A", "U", "I"}, false},
	{"V", []string{"X", "D", "C"}, false},
	{"RE", []string{"X", "L", "M", "H"}, false},
	{"U", []string{"X", "Clear", "Green", "Amber", "Red"}, false},
}

// spec3 lists the CVSS v3.0 and v3.1 metrics (the two share them), in the
// specifications' order; v3.x allows any order.
var spec3 = []metricSpec{
	{"AV", []string{"N", "A", "L", "P"}, true},
	{"AC", []string{"L", "H"}, true},
	{"PR", []string{"N", "L", "H"}, true},
	{"UI", []string{"N", "R"}, true},
	{"S", []string{"U", "C"}, true},
	{"C", []string{"H", "L", "N"}, true},
	{"I", []string{"H", "L", "N"}, true},
	{"A", []string{"H", "L", "N"}, true},
	{"E", []string{"X", "U", "P", "F", "H"}, false},
	{"RL", []string{"X", "O", "T", "W", "U"}, false},
	{"RC", []string{"X", "U", "R", "C"}, false},
	{"CR", []string{"X", "L", "M", "H"}, false},
	{"IR", []string{"X", "L", "M", "H"}, false},
	{"AR", []string{"X", "L", "M", "H"}, false},
	{"MAV", []string{"X", "N", "A", "L", "P"}, false},
	{"MAC", []string{"X", "L", "H"}, false},
	{"MPR", []string{"X", "N", "L", "H"}, false},
	{"MUI", []string{"X", "N", "R"}, false},
	{"MS", []string{"X", "U", "C"}, false},
	{"MC", []string{"X", "N", "L", "H"}, false},
	{"MI", []string{"X", "N", "L", "H"}, false},
	{"MA", []string{"X", "N", "L", "H"}, false},
}

// checkMetrics checks the metrics of a vector, the part after "CVSS:x.y/",
// against specs, and returns what is wrong with them in words, "" when
// nothing is. With ordered, metrics must come in specs' order.
func checkMetrics(metrics string, specs []metricSpec, ordered bool) string {
	if metrics == "" {
		return fmt.Sprintf("it has no metrics: want %s", names(specs, true))
	}
	index := make(map[string]int, len(specs))
	for i, s := range specs {
		index[s.name] = i
	}
	seen := make(map[string]bool, len(specs))
	last := -1 // index in specs of the last metric read
	for i, part := range strings.Split(metrics, "/") {
		name, value, ok := strings.Cut(part, ":")
		switch {
		case part == "":
			return fmt.Sprintf("metric %d is empty (a \"/\" too many?)", i+1)
		case !ok:
			return fmt.Sprintf("%q is not a METRIC:VALUE pair", part)
		}
		at, known := index[name]
		if !known {
			return fmt.Sprintf("unknown metric %q: the metrics are %s", name, names(specs, false))
		}
		spec := specs[at]
		if seen[name] {
			return fmt.Sprintf("metric %s appears twice", name)
		}
		seen[name] = true
		if !slices.Contains(spec.values, value) {
			return fmt.Sprintf("unknown value %q for metric %s: want %s", value, name, orList(spec.values))
		}
		if ordered && at < last {
			return fmt.Sprintf("metric %s comes after %s: metrics must be in the specification's order, %s",
				name, specs[last].name, names(specs, false))
		}
		last = max(last, at)
	}
	var missing []string
	for _, s := range specs {
		if s.mandatory && !seen[s.name] {
			missing = append(missing, s.name)
		}
	}
	switch len(missing) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("mandatory metric %s is missing", missing[0])
	default:
		return fmt.Sprintf("mandatory metrics %s are missing", strings.Join(missing, ", "))
	}
}

// names lists the metrics of specs, only the mandatory ones if asked.
func names(specs []metricSpec, mandatoryOnly bool) string {
	var out []string
	for _, s := range specs {
		if s.mandatory || !mandatoryOnly {
			out = append(out, s.name)
		}
	}
	return strings.Join(out, ", ")
}

func orList(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}
