package epss_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/epss"
)

// The fixtures have FIRST's layout and both forms of score_date FIRST has
// used; their scores are plausible, not copied from those days' files.
const (
	fixture2025 = "testdata/epss_scores-2025-03-30.csv" // score_date:…T12:55:00Z, 12 rows
	fixture2024 = "testdata/epss_scores-2024-06-01.csv" // score_date:…T00:00:00+0000, 3 rows
)

func readFixture(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func gzipped(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func parseString(s string) (*epss.Set, error) { return epss.Parse(strings.NewReader(s)) }

func TestParseFixture(t *testing.T) {
	set, err := epss.ParseFile(fixture2025)
	if err != nil {
		t.Fatal(err)
	}
	if set.ModelVersion != "v2025.03.14" {
		t.Errorf("ModelVersion = %q, want v2025.03.14", set.ModelVersion)
	}
	if want := time.Date(2025, 3, 30, 12, 55, 0, 0, time.UTC); !set.ScoreDate.Equal(want) || set.ScoreDate.Location() != time.UTC {
		t.Errorf("ScoreDate = %v, want %v in UTC", set.ScoreDate, want)
	}
	if len(set.Scores) != 12 {
		t.Errorf("%d scores, want 12", len(set.Scores))
	}
	for _, want := range []epss.Score{
		{CVE: "CVE-1999-0001", EPSS: 0.01269, Percentile: 0.78654},
		{CVE: "CVE-2021-44228", EPSS: 0.94358, Percentile: 0.99957},
		{CVE: "CVE-2025-21298", EPSS: 0.01587, Percentile: 0.80655},
	} {
		got, ok := set.Lookup(want.CVE)
		if !ok || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v, true", want.CVE, got, ok, want)
		}
	}
}

func TestParseOlderDateForm(t *testing.T) {
	set, err := epss.ParseFile(fixture2024)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC); set.ModelVersion != "v2023.03.01" || !set.ScoreDate.Equal(want) {
		t.Errorf("got %s %v; want v2023.03.01 %v", set.ModelVersion, set.ScoreDate, want)
	}
	if len(set.Scores) != 3 {
		t.Errorf("%d scores, want 3", len(set.Scores))
	}
}

// FIRST ships .csv.gz: Parse and ParseFile must read it as they read the CSV.
func TestParseGzip(t *testing.T) {
	plain := readFixture(t, fixture2025)
	want, err := epss.Parse(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	gz := gzipped(t, plain)

	got, err := epss.Parse(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("Parse(gzip): %v", err)
	}
	assertSameSet(t, got, want)

	path := filepath.Join(t.TempDir(), "epss_scores-2025-03-30.csv.gz")
	if err := os.WriteFile(path, gz, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = epss.ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", path, err)
	}
	assertSameSet(t, got, want)
}

func assertSameSet(t *testing.T, got, want *epss.Set) {
	t.Helper()
	if got.ModelVersion != want.ModelVersion || !got.ScoreDate.Equal(want.ScoreDate) || len(got.Scores) != len(want.Scores) {
		t.Fatalf("got %s %v %d scores; want %s %v %d", got.ModelVersion, got.ScoreDate, len(got.Scores),
			want.ModelVersion, want.ScoreDate, len(want.Scores))
	}
	for cve, w := range want.Scores {
		if g := got.Scores[cve]; g != w {
			t.Errorf("%s: got %+v, want %+v", cve, g, w)
		}
	}
}

// What Parse accepts beyond FIRST's exact bytes: the variations an honest
// file can show without being a different format.
func TestParseTolerates(t *testing.T) {
	const rows = "CVE-2021-44228,0.94358,0.99957\n"
	date := time.Date(2025, 3, 30, 12, 55, 0, 0, time.UTC)
	tests := []struct {
		name, in  string
		wantModel string
		wantDate  time.Time
	}{
		{"keys in either order", "#score_date:2025-03-30T12:55:00Z,model_version:v2025.03.14\ncve,epss,percentile\n" + rows, "v2025.03.14", date},
		{"unknown keys", "#model_version:v2025.03.14,publisher:FIRST,score_date:2025-03-30T12:55:00Z,rows:1\ncve,epss,percentile\n" + rows, "v2025.03.14", date},
		{"spaces around keys and values", "# model_version: v2025.03.14 , score_date : 2025-03-30T12:55:00Z\ncve,epss,percentile\n" + rows, "v2025.03.14", date},
		{"no model_version", "#score_date:2025-03-30T12:55:00Z\ncve,epss,percentile\n" + rows, "", date},
		{"offset without colon", "#model_version:v1,score_date:2025-03-30T14:55:00+0200\ncve,epss,percentile\n" + rows, "v1", date},
		{"offset with colon", "#model_version:v1,score_date:2025-03-30T07:55:00-05:00\ncve,epss,percentile\n" + rows, "v1", date},
		{"fractional seconds", "#model_version:v1,score_date:2025-03-30T12:55:00.000Z\ncve,epss,percentile\n" + rows, "v1", date},
		{"date only", "#model_version:v1,score_date:2025-03-30\ncve,epss,percentile\n" + rows, "v1", time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC)},
		{"CRLF line ends", "#model_version:v1,score_date:2025-03-30T12:55:00Z\r\ncve,epss,percentile\r\nCVE-2021-44228,0.94358,0.99957\r\n", "v1", date},
		{"byte-order mark", "\ufeff#model_version:v1,score_date:2025-03-30T12:55:00Z\ncve,epss,percentile\n" + rows, "v1", date},
		{"blank lines", "\n#model_version:v1,score_date:2025-03-30T12:55:00Z\n\ncve,epss,percentile\n\n" + rows + "\n", "v1", date},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := parseString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if set.ModelVersion != tt.wantModel || !set.ScoreDate.Equal(tt.wantDate) {
				t.Errorf("got %q %v; want %q %v", set.ModelVersion, set.ScoreDate, tt.wantModel, tt.wantDate)
			}
			want := epss.Score{CVE: "CVE-2021-44228", EPSS: 0.94358, Percentile: 0.99957}
			if got, ok := set.Lookup("CVE-2021-44228"); !ok || got != want || len(set.Scores) != 1 {
				t.Errorf("Lookup = %+v, %v (of %d); want %+v", got, ok, len(set.Scores), want)
			}
		})
	}
}

func TestParseColumnOrderAndCase(t *testing.T) {
	set, err := parseString("#model_version:v1,score_date:2025-03-30\n" +
		"percentile,cve,epss\n" +
		"0.99957,cve-2021-44228,0.94358\n" +
		"0,Cve-2025-0001,1\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []epss.Score{
		{CVE: "CVE-2021-44228", EPSS: 0.94358, Percentile: 0.99957},
		{CVE: "CVE-2025-0001", EPSS: 1, Percentile: 0},
	} {
		if got := set.Scores[want.CVE]; got != want {
			t.Errorf("Scores[%s] = %+v, want %+v", want.CVE, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	set, err := epss.ParseFile(fixture2025)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := set.Lookup("cve-2024-3094"); !ok || got.CVE != "CVE-2024-3094" {
		t.Errorf("Lookup(lower case) = %+v, %v; want CVE-2024-3094", got, ok)
	}
	if got, ok := set.Lookup("CVE-2099-0001"); ok {
		t.Errorf("Lookup(unscored) = %+v, true; want false", got)
	}
	if got, ok := set.Lookup("GHSA-jfh8-c2jp-5v3q"); ok {
		t.Errorf("Lookup(GHSA) = %+v, true; want false", got)
	}
	var none *epss.Set
	if got, ok := none.Lookup("CVE-2021-44228"); ok {
		t.Errorf("nil Set: Lookup = %+v, true; want false", got)
	}
}

func TestParseErrors(t *testing.T) {
	const (
		meta   = "#model_version:v2025.03.14,score_date:2025-03-30T12:55:00Z\n"
		header = "cve,epss,percentile\n"
		good   = "CVE-1999-0001,0.01269,0.78654\n" // line 3
	)
	tests := []struct {
		name, in string
		want     string // in the message, with the line
	}{
		{"empty", "", "EPSS file is empty"},
		{"only blank lines", "\n\n\r\n", "EPSS file is empty"},
		{"no metadata line", header + good, "line 1: the metadata line #model_version:…,score_date:… is missing"},
		{"something else first", "id,score\n", `line 1: want the metadata line #model_version:…,score_date:…, got "id,score"`},
		{"no score_date", "#model_version:v2025.03.14\n" + header + good, "line 1: the metadata line has no score_date"},
		{"score_date empty", "#model_version:v1,score_date:\n" + header + good, `line 1: score_date "" is not a date`},
		{"score_date not a date", "#model_version:v1,score_date:yesterday\n" + header + good, `line 1: score_date "yesterday" is not a date`},
		{"score_date impossible", "#model_version:v1,score_date:2025-02-30\n" + header + good, `line 1: score_date "2025-02-30" is not a date`},
		{"score_date zero", "#model_version:v1,score_date:0001-01-01T00:00:00Z\n" + header + good, `line 1: score_date "0001-01-01T00:00:00Z" is before FIRST published any EPSS scores (2021-04-14)`},
		{"score_date before EPSS", "#model_version:v1,score_date:2021-04-13\n" + header + good, `line 1: score_date "2021-04-13" is before FIRST published`},
		{"score_date twice", "#score_date:2025-03-30,model_version:v1,score_date:2025-03-31\n" + header + good, "line 1: score_date given twice"},
		{"model_version twice", "#model_version:v1,model_version:v2,score_date:2025-03-30\n" + header + good, "line 1: model_version given twice"},
		{"metadata not key:value", "#model_version:v1,generated today,score_date:2025-03-30\n" + header + good, `line 1: metadata "generated today" is not key:value`},
		{"metadata empty key", "#:v1,score_date:2025-03-30\n" + header + good, `line 1: metadata ":v1" is not key:value`},
		{"metadata trailing comma", "#model_version:v1,score_date:2025-03-30,\n" + header + good, `line 1: metadata "" is not key:value`},
		{"bare #", "#\n" + header + good, `line 1: metadata "" is not key:value`},
		{"metadata only", meta, "line 1: no header after the metadata line"},
		{"header renamed column", meta + "cve,score,percentile\n" + good, `line 2: header has column "score"; want exactly cve,epss,percentile`},
		{"header upper case", meta + "CVE,EPSS,PERCENTILE\n" + good, `line 2: header has column "CVE"`},
		{"header missing column", meta + "cve,epss\n" + good, "line 2: header has no percentile column"},
		{"header extra column", meta + "cve,epss,percentile,date\n" + good, `line 2: header has column "date"`},
		{"header column twice", meta + "cve,epss,epss\n" + good, `line 2: header has column "epss" twice`},
		{"no rows", meta + header, "line 2: no scores after the header"},
		{"row short", meta + header + "CVE-1999-0001,0.01269\n", "line 3: 2 fields; want 3"},
		{"row long", meta + header + "CVE-1999-0001,0.01269,0.78654,x\n", "line 3: 4 fields; want 3"},
		{"GHSA id", meta + header + "GHSA-jfh8-c2jp-5v3q,0.1,0.5\n", `line 3: "GHSA-jfh8-c2jp-5v3q" is not a CVE id`},
		{"two-digit year", meta + header + "CVE-99-0001,0.1,0.5\n", `line 3: "CVE-99-0001" is not a CVE id`},
		{"three-digit sequence", meta + header + "CVE-2024-123,0.1,0.5\n", `line 3: "CVE-2024-123" is not a CVE id`},
		{"letter in sequence", meta + header + "CVE-2024-12a4,0.1,0.5\n", `line 3: "CVE-2024-12a4" is not a CVE id`},
		{"space in id", meta + header + " CVE-2024-1234,0.1,0.5\n", `line 3: " CVE-2024-1234" is not a CVE id`},
		{"empty id", meta + header + ",0.1,0.5\n", `line 3: "" is not a CVE id`},
		{"epss not a number", meta + header + good + "CVE-2024-1234,high,0.5\n", `line 4: epss "high" of CVE-2024-1234 is not a number in [0,1]`},
		{"epss empty", meta + header + good + "CVE-2024-1234,,0.5\n", `line 4: epss "" of CVE-2024-1234`},
		{"epss above 1", meta + header + good + "CVE-2024-1234,1.00001,0.5\n", `line 4: epss "1.00001" of CVE-2024-1234`},
		{"epss negative", meta + header + good + "CVE-2024-1234,-0.1,0.5\n", `line 4: epss "-0.1" of CVE-2024-1234`},
		{"epss NaN", meta + header + good + "CVE-2024-1234,NaN,0.5\n", `line 4: epss "NaN" of CVE-2024-1234`},
		{"epss Inf", meta + header + good + "CVE-2024-1234,Inf,0.5\n", `line 4: epss "Inf" of CVE-2024-1234`},
		{"epss in hex", meta + header + good + "CVE-2024-1234,0x1p-1,0.5\n", `line 4: epss "0x1p-1" of CVE-2024-1234`},
		{"epss with an underscore", meta + header + good + "CVE-2024-1234,0_5,0.5\n", `line 4: epss "0_5" of CVE-2024-1234`},
		{"epss minus zero", meta + header + good + "CVE-2024-1234,-0,0.5\n", `line 4: epss "-0" of CVE-2024-1234`},
		{"epss as percent", meta + header + good + "CVE-2024-1234,42%,0.5\n", `line 4: epss "42%" of CVE-2024-1234`},
		{"percentile above 1", meta + header + good + "CVE-2024-1234,0.1,99.5\n", `line 4: percentile "99.5" of CVE-2024-1234 is not a number in [0,1]`},
		{"percentile negative", meta + header + good + "CVE-2024-1234,0.1,-1e-9\n", `line 4: percentile "-1e-9" of CVE-2024-1234`},
		{"duplicate CVE", meta + header + good + "CVE-2024-1234,0.1,0.5\n" + good, "line 5: second row for CVE-1999-0001"},
		{"duplicate CVE in other case", meta + header + good + "cve-1999-0001,0.1,0.5\n", "line 4: second row for CVE-1999-0001"},
		{"bare quote", meta + header + good + "CVE-2024-1234,0\"1,0.5\n", `line 4, column 16: bare " in non-quoted-field`},
		{"unterminated quote", meta + header + good + "\"CVE-2024-1234,0.1,0.5\n", `line 4, column 24: extraneous or missing " in quoted-field`},
		{"second metadata line", meta + header + good + meta, `line 4: 2 fields; want 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, form := range []struct {
				name string
				in   []byte
			}{
				{"csv", []byte(tt.in)},
				{"gzip", gzipped(t, []byte(tt.in))},
			} {
				set, err := epss.Parse(bytes.NewReader(form.in))
				if err == nil {
					t.Fatalf("%s: Parse = %d scores, nil error; want an error containing %q", form.name, len(set.Scores), tt.want)
				}
				if code := tollgate.ErrorCode(err); code != tollgate.EInvalid {
					t.Errorf("%s: ErrorCode = %s, want %s (%v)", form.name, code, tollgate.EInvalid, err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: error %q\ndoes not contain %q", form.name, err, tt.want)
				}
			}
		})
	}
}

func TestParseBadGzip(t *testing.T) {
	gz := gzipped(t, readFixture(t, fixture2025))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"magic only", gz[:2], "bad gzip header"},
		{"header cut", gz[:5], "bad gzip header"},
		{"cut short", gz[:len(gz)/2], "gzip: unexpected EOF; download the file again"},
		{"trailer missing", gz[:len(gz)-8], "gzip: unexpected EOF"},
		{"checksum wrong", flipByte(gz, len(gz)-6), "gzip: gzip: invalid checksum"},
		{"body corrupt", flipByte(gz, 20), "gzip:"},
		{"trailing garbage", append(bytes.Clone(gz), "this is not a gzip member"...), "line 15: gzip: gzip: invalid header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := epss.Parse(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse = %d scores, nil error; want an error", len(set.Scores))
			}
			if code := tollgate.ErrorCode(err); code != tollgate.EInvalid {
				t.Errorf("ErrorCode = %s, want %s (%v)", code, tollgate.EInvalid, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func flipByte(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0xff
	return b
}

// An error reading the input is not the file's fault: it keeps its identity
// and is not reported as invalid input.
func TestParseReadError(t *testing.T) {
	errDropped := errors.New("connection reset")
	head := readFixture(t, fixture2025)[:150]
	for _, form := range []struct {
		name string
		in   []byte
	}{
		{"csv", head},
		{"gzip", gzipped(t, head)[:60]},
	} {
		t.Run(form.name, func(t *testing.T) {
			_, err := epss.Parse(io.MultiReader(bytes.NewReader(form.in), iotest.ErrReader(errDropped)))
			if !errors.Is(err, errDropped) {
				t.Fatalf("Parse = %v; want it to wrap %v", err, errDropped)
			}
			if code := tollgate.ErrorCode(err); code == tollgate.EInvalid {
				t.Errorf("ErrorCode = %s; a read error is not invalid input", code)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	_, err := epss.ParseFile(filepath.Join(t.TempDir(), "epss_scores-2025-03-30.csv.gz"))
	if code := tollgate.ErrorCode(err); code != tollgate.ENotFound || !strings.Contains(fmt.Sprint(err), "download") {
		t.Errorf("missing file: %v (%s); want %s saying to download it", err, code, tollgate.ENotFound)
	}

	path := filepath.Join(t.TempDir(), "scores.csv")
	if err := os.WriteFile(path, []byte("cve,epss,percentile\nCVE-1999-0001,0.1,0.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = epss.ParseFile(path)
	if code := tollgate.ErrorCode(err); code != tollgate.EInvalid || !strings.HasPrefix(fmt.Sprint(err), path+": EPSS file line 1:") {
		t.Errorf("invalid file: %v (%s); want %s prefixed with the path and line", err, code, tollgate.EInvalid)
	}
}
