package main

import (
	"slices"
	"testing"
)

// judge holds issue 20's targets: which rows get them, the bounds, and
// that a row with errors meets none.
func TestJudge(t *testing.T) {
	met := func(r row) []bool {
		r.judge()
		var out []bool
		for _, t := range r.Targets {
			out = append(out, t.Met)
		}
		return out
	}
	sqlite := row{Name: "tollgate sqlite", RPSRatio: 1.5, RPSRatioMinimal: 1.0, P99RatioMinimal: 0.5}
	for _, c := range []struct {
		name string
		row  row
		want []bool
	}{
		{"sqlite at every bound", sqlite, []bool{true, true, true}},
		{"sqlite just short", row{Name: "tollgate sqlite", RPSRatio: 1.49, RPSRatioMinimal: 0.99, P99RatioMinimal: 0.51},
			[]bool{false, false, false}},
		{"sqlite with errors", func() row { r := sqlite; r.Errors = 1; return r }(), []bool{false, false, false}},
		{"sqlite without a minimal row", row{Name: "tollgate sqlite", RPSRatio: 2}, []bool{false, false, true}},
		{"the -against binary", row{Name: "tollgate sqlite (-against)", RPSRatio: 0.5, RPSRatioMinimal: 2, P99RatioMinimal: 0.1},
			[]bool{true, true, false}},
		{"postgres", row{Name: "tollgate postgres", RPSRatio: 1.0, RPSRatioMinimal: 0.1, P99RatioMinimal: 9}, []bool{true}},
		{"postgres short", row{Name: "tollgate postgres", RPSRatio: 0.9}, []bool{false}},
		{"stock opa", row{Name: stockOPA, RPSRatio: 1}, nil},
		{"the ceiling", row{Name: "net/http ceiling", RPSRatio: 10}, nil},
	} {
		if got := met(c.row); !slices.Equal(got, c.want) {
			t.Errorf("%s: met %v, want %v", c.name, got, c.want)
		}
	}
}
