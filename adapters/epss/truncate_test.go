package epss_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/epss"
)

// A plain CSV cut anywhere inside a row is refused, whether what is left of
// the row still parses ("…,0.99" of "…,0.99156") or not: an import either
// brings a whole day or changes nothing. Every cut of the fixture's rows is
// tried, gzipped after the cut too (a download cut, then compressed again,
// has a valid gzip stream).
func TestParseRefusesAFileCutMidLine(t *testing.T) {
	data := readFixture(t, fixture2025)
	rowsStart := bytes.Index(data, []byte("\nCVE-")) + 1
	for cut := rowsStart + 1; cut < len(data); cut++ {
		if data[cut-1] == '\n' {
			continue // a cut at a line end: see TestCheckReplace
		}
		for _, form := range []struct {
			name string
			body []byte
		}{{"plain", data[:cut]}, {"gzip", gzipped(t, data[:cut])}} {
			set, err := epss.Parse(bytes.NewReader(form.body))
			if err == nil {
				t.Fatalf("%s cut at byte %d (%q): imported %d scores, want an error",
					form.name, cut, data[bytes.LastIndexByte(data[:cut], '\n')+1:cut], len(set.Scores))
			}
			if tollgate.ErrorCode(err) != tollgate.EInvalid {
				t.Fatalf("%s cut at byte %d: %v (code %s), want %s", form.name, cut, err, tollgate.ErrorCode(err), tollgate.EInvalid)
			}
		}
	}
}

// The case: the last value cut short still parses as a number.
func TestParseRefusesATruncatedLastValue(t *testing.T) {
	data := string(readFixture(t, fixture2025))
	if !strings.HasSuffix(data, "CVE-2025-1094,0.81214,0.99156\n") {
		t.Fatalf("fixture changed: %q", data[len(data)-40:])
	}
	cut := strings.TrimSuffix(data, "156\n") // …,0.99
	_, err := parseString(cut)
	want := "EPSS file line 14: the file ends in the middle of a line (no newline after the last row): it was cut short; download it again"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %q", err, want)
	}
}

func TestCheckReplace(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 3, d, 12, 55, 0, 0, time.UTC) }
	set := func(date time.Time, n int) *epss.Set {
		s := &epss.Set{ScoreDate: date, Scores: map[string]epss.Score{}}
		for i := range n {
			cve := fmt.Sprintf("CVE-2025-%05d", i)
			s.Scores[cve] = epss.Score{CVE: cve}
		}
		return s
	}
	inUse := tollgate.EPSSInfo{ModelVersion: "v2025.03.14", ScoreDate: day(30), Count: 100}
	for _, tt := range []struct {
		name    string
		current tollgate.EPSSInfo
		next    *epss.Set
		force   bool
		want    string // "" for accepted, else a part of the EConflict message
	}{
		{"first import", tollgate.EPSSInfo{}, set(day(1), 1), false, ""},
		{"a newer day", inUse, set(day(31), 100), false, ""},
		{"the same day again", inUse, set(day(30), 100), false, ""},
		{"more CVEs", inUse, set(day(31), 150), false, ""},
		{"95% of the CVEs", inUse, set(day(31), 95), false, ""},
		{"an older day", inUse, set(day(29), 100), false,
			"the EPSS file's scores are of 2025-03-29T12:55:00Z, older than those in use (2025-03-30T12:55:00Z): import the newer file, or force to go back to older scores"},
		{"an older day, forced", inUse, set(day(29), 100), true, ""},
		{"an older time of the same day", inUse, set(day(30).Add(-time.Minute), 100), false, "older than those in use"},
		{"fewer CVEs: cut at a line end", inUse, set(day(31), 94), false,
			"the EPSS file has 94 scores, fewer than 95% of the 100 in use: it may have been cut short; download it again, or force to import it anyway"},
		{"fewer CVEs, forced", inUse, set(day(31), 10), true, ""},
		// A score_date in the future passed as the freshest set, and made
		// every real file after it "older".
		{"a day ahead of the clock (time zones)", inUse, set(day(31).Add(24*time.Hour), 100), false, ""},
		{"a year ahead", inUse, set(day(31).AddDate(1, 0, 0), 100), false,
			"the EPSS file's score_date 2026-03-31T12:55:00Z is in the future (now is 2025-03-31T12:55:00Z)"},
		{"a year ahead, first import", tollgate.EPSSInfo{}, set(day(31).AddDate(1, 0, 0), 1), false, "is in the future"},
		{"a year ahead, forced", inUse, set(day(31).AddDate(1, 0, 0), 100), true, ""},
	} {
		err := epss.CheckReplace(tt.current, tt.next, tt.force, day(31))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tt.name, err)
		case tt.want != "" && (err == nil || tollgate.ErrorCode(err) != tollgate.EConflict || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v (code %s), want %s saying %q", tt.name, err, tollgate.ErrorCode(err), tollgate.EConflict, tt.want)
		}
	}
}
