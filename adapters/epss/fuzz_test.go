package epss_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/epss"
)

var cveID = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)

// FuzzParse: Parse never panics, refuses only with EInvalid (the input is in
// memory, so no error can be a read error), and what it accepts is a valid set.
func FuzzParse(f *testing.F) {
	for _, path := range []string{fixture2025, fixture2024} {
		data := readFixture(f, path)
		f.Add(data)
		f.Add(gzipped(f, data))
	}
	for _, s := range []string{
		"",
		"#model_version:v1,score_date:2025-03-30\ncve,epss,percentile\nCVE-2021-44228,1,0\n",
		"\ufeff#score_date:2025-03-30T12:55:00+0000\r\npercentile,cve,epss\r\n0.5,cve-2024-12345,0.1\r\n",
		"#model_version:v1,score_date:2025-03-30\ncve,epss,percentile\nCVE-2021-44228,0.1,0.5\ncve-2021-44228,0.1,0.5\n",
		"#model_version:v1,score_date:2025-03-30\ncve,epss,percentile\n\"CVE-2021-44228\",\"0.1\",\"0.5\"\n",
		"cve,epss,percentile\nCVE-2021-44228,0.1,0.5\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := epss.Parse(bytes.NewReader(data))
		if err != nil {
			if code := tollgate.ErrorCode(err); code != tollgate.EInvalid {
				t.Fatalf("ErrorCode = %s, want %s: %v", code, tollgate.EInvalid, err)
			}
			if set != nil {
				t.Fatalf("a Set with error %v", err)
			}
			return
		}
		if set.ScoreDate.Year() < 2021 || set.ScoreDate.Location() != time.UTC {
			t.Errorf("ScoreDate = %v; want a time in UTC since EPSS exists", set.ScoreDate)
		}
		if len(set.Scores) == 0 {
			t.Error("accepted a set with no scores")
		}
		for key, sc := range set.Scores {
			if key != sc.CVE || !cveID.MatchString(key) {
				t.Errorf("key %q holds %+v", key, sc)
			}
			if !(sc.EPSS >= 0 && sc.EPSS <= 1) || !(sc.Percentile >= 0 && sc.Percentile <= 1) {
				t.Errorf("%s: epss %v, percentile %v out of [0,1]", key, sc.EPSS, sc.Percentile)
			}
			if got, ok := set.Lookup(strings.ToLower(key)); !ok || got != sc {
				t.Errorf("Lookup(%s) = %+v, %v; want %+v", strings.ToLower(key), got, ok, sc)
			}
		}
	})
}
