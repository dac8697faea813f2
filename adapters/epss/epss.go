// Package epss reads the daily Exploit Prediction Scoring System scores that
// FIRST publishes as epss_scores-YYYY-MM-DD.csv.gz.
//
// The file is one metadata line, a header and one row per CVE:
//
//	#model_version:v2025.03.14,score_date:2025-03-30T12:55:00Z
//	cve,epss,percentile
//	CVE-1999-0001,0.01269,0.78654
//
// Parse insists on the metadata line because a gate must know how old the
// scores it judges by are: a file without its score_date is refused, not
// imported as if it were today's. The whole file is validated before a Set is
// returned, so an import either replaces the scores with a complete new day or
// changes nothing.
package epss

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

// MaxSize bounds the decompressed size Parse reads. FIRST's file is about
// 10 MiB for 300,000 CVEs; the bound leaves room for years of growth while a
// wrong file, an unbounded upload or a gzip bomb cannot exhaust memory.
const MaxSize = 64 << 20

// Score is the EPSS of one CVE on the set's score date.
type Score struct {
	CVE        string  // upper case: CVE-2021-44228
	EPSS       float64 // probability of exploitation activity in the next 30 days, in [0,1]
	Percentile float64 // share of scored CVEs with an EPSS no higher than this one, in [0,1]
}

// Set is one day's scores, as one FIRST file carries them.
//
// Scores is a map rather than the file's list because the gate looks a CVE up
// for every finding of every evaluation; the file's row order carries no
// meaning.
type Set struct {
	ModelVersion string           // v2025.03.14; empty when the file does not say
	ScoreDate    time.Time        // when FIRST computed the scores, in UTC
	Scores       map[string]Score // by upper-case CVE id
}

// EPSSSet is s as the EPSS store takes it.
func (s *Set) EPSSSet() tollgate.EPSSSet {
	set := tollgate.EPSSSet{ModelVersion: s.ModelVersion, ScoreDate: s.ScoreDate,
		Scores: make([]tollgate.EPSSScore, 0, len(s.Scores))}
	for _, sc := range s.Scores {
		set.Scores = append(set.Scores, tollgate.EPSSScore{CVE: sc.CVE, EPSS: sc.EPSS, Percentile: sc.Percentile})
	}
	return set
}

// Lookup returns the score of cve, in any letter case, in constant time. A nil
// Set, meaning that no scores were imported, has none.
func (s *Set) Lookup(cve string) (Score, bool) {
	if s == nil {
		return Score{}, false
	}
	sc, ok := s.Scores[strings.ToUpper(cve)] // ToUpper does not allocate for an upper-case id
	return sc, ok
}

// ParseFile reads a FIRST EPSS file, gzipped (as FIRST ships it) or not.
func ParseFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, tollgate.Errorf(tollgate.ENotFound,
			"EPSS file %s does not exist; download the day's epss_scores-YYYY-MM-DD.csv.gz from FIRST", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open EPSS file: %w", err)
	}
	defer f.Close()
	set, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

// Parse reads a FIRST EPSS CSV from r, gzipped or not: gzip is recognised by
// its magic bytes, so an upload need not say which it is. It streams: memory
// grows with the number of scores, not with the size of the input.
//
// Every problem with the content is a tollgate.EInvalid error naming the line;
// an error reading r is returned wrapped, with its own code.
func Parse(r io.Reader) (*Set, error) { return parseLimit(r, MaxSize) }

// parseLimit is Parse reading at most limit bytes, decompressed: tests use a
// small one rather than building a 64 MiB file.
func parseLimit(r io.Reader, limit int64) (*Set, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			if src.err != nil {
				return nil, fmt.Errorf("read EPSS scores: %w", err)
			}
			return nil, tollgate.Errorf(tollgate.EInvalid, "EPSS file: bad gzip header: %v", err)
		}
		defer zr.Close()
		return parse(&limitReader{r: zr, n: limit}, src, true)
	}
	return parse(&limitReader{r: br, n: limit}, src, false)
}

// sourceReader remembers the last error of the caller's reader, so that a
// failure to read (a dropped connection) is told apart from a corrupt gzip
// stream, which gzip reports the same way: as an error from Read.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// errTooLarge is what limitReader returns past MaxSize.
var errTooLarge = errors.New("too large")

// limitReader is io.LimitReader with an error instead of a silent EOF, so that
// a file cut at MaxSize is refused rather than imported as a shorter one.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// A file of exactly the limit is fine: only more is refused.
		var probe [1]byte
		n, err := l.r.Read(probe[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// Column names of the header, in FIRST's order.
const (
	colCVE = iota
	colEPSS
	colPercentile
	numCols
)

var colNames = [numCols]string{"cve", "epss", "percentile"}

// tailReader remembers the last byte read, to tell a file that ends with
// its last line's newline from one cut in the middle of a line.
type tailReader struct {
	r    io.Reader
	last byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.last = p[n-1]
	}
	return n, err
}

func parse(r io.Reader, src *sourceReader, gzipped bool) (*Set, error) {
	tail := &tailReader{r: r}
	cr := csv.NewReader(tail)
	cr.FieldsPerRecord = -1 // the metadata line has its own field count; rows are checked below
	cr.ReuseRecord = true

	line := 0
	// next reads one record, turning every failure into an error for the user.
	next := func() ([]string, error) {
		rec, err := cr.Read()
		if err == nil {
			line, _ = cr.FieldPos(0)
			return rec, nil
		}
		switch pe, isCSV := errors.AsType[*csv.ParseError](err); {
		case err == io.EOF:
			return nil, err
		case src.err != nil:
			return nil, fmt.Errorf("read EPSS scores after line %d: %w", line, err)
		case isCSV:
			return nil, tollgate.Errorf(tollgate.EInvalid, "EPSS file line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
		case errors.Is(err, errTooLarge):
			return nil, tollgate.Errorf(tollgate.EInvalid,
				"EPSS file is larger than %d MiB uncompressed; a FIRST file is about 10 MiB: is it the right file?", MaxSize>>20)
		case gzipped:
			// The stream is corrupt or cut short (io.ErrUnexpectedEOF):
			// most likely a download that did not finish.
			return nil, invalid(line+1, "gzip: %v; download the file again", err)
		default:
			return nil, fmt.Errorf("read EPSS scores after line %d: %w", line, err)
		}
	}

	rec, err := next()
	if err == io.EOF {
		return nil, tollgate.Errorf(tollgate.EInvalid,
			"EPSS file is empty; want FIRST's CSV, starting with #model_version:…,score_date:…")
	}
	if err != nil {
		return nil, err
	}
	rec[0] = strings.TrimPrefix(rec[0], "\ufeff") // a byte-order mark, if an editor added one
	set := new(Set)
	if err := parseMeta(set, rec, line); err != nil {
		return nil, err
	}

	rec, err = next()
	if err == io.EOF {
		return nil, invalid(line, "no header after the metadata line; want cve,epss,percentile")
	}
	if err != nil {
		return nil, err
	}
	cols, err := parseHeader(rec, line)
	if err != nil {
		return nil, err
	}

	// The rows are gathered first and the map is built at its final size:
	// growing it row by row rehashes it again and again, which took about a
	// third of the time to parse a 300,000-row file.
	var rows []Score
	var lines []int32 // of rows, for naming a duplicate's line
	for {
		rec, err = next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		sc, err := parseRow(rec, &cols, line)
		if err != nil {
			return nil, err
		}
		rows = append(rows, sc)
		lines = append(lines, int32(line))
	}
	if len(rows) == 0 {
		return nil, invalid(line, "no scores after the header; importing this file would leave no CVE scored: check the download")
	}
	if tail.last != '\n' {
		// FIRST ends every row, the last one included, with a newline. A
		// plain CSV has no length or checksum of its own: without its final
		// newline the file was cut in the middle of a line, and the last
		// value read may be a truncated one ("0.97" of "0.97565") that still
		// parses.
		return nil, invalid(line, "the file ends in the middle of a line (no newline after the last row): "+
			"it was cut short; download it again")
	}
	set.Scores = make(map[string]Score, len(rows))
	for i, sc := range rows {
		n := len(set.Scores)
		set.Scores[sc.CVE] = sc // one map operation per row, not a lookup and then a store
		if len(set.Scores) == n {
			return nil, invalid(int(lines[i]), "second row for %s; a FIRST file has one per CVE", sc.CVE)
		}
	}
	return set, nil
}

// firstScores is the date of FIRST's first published EPSS scores: an earlier
// score_date is a mistake (a zero date, a typo), not old scores.
var firstScores = time.Date(2021, 4, 14, 0, 0, 0, 0, time.UTC)

// scoreDateLayouts are the forms score_date has taken in FIRST's files:
// 2025-03-30T12:55:00Z lately, 2024-06-01T00:00:00+0000 before.
var scoreDateLayouts = []string{time.RFC3339, "2006-01-02T15:04:05Z0700", time.DateOnly}

// parseMeta reads the line #model_version:v2025.03.14,score_date:2025-03-30T12:55:00Z,
// which csv has split at its commas. Keys may come in any order and unknown
// ones are ignored, so that FIRST can add some without breaking imports.
func parseMeta(set *Set, rec []string, line int) error {
	if !strings.HasPrefix(rec[0], "#") {
		if len(rec) == numCols && strings.EqualFold(rec[0], "cve") {
			return invalid(line, "the metadata line #model_version:…,score_date:… is missing before the header; "+
				"tollgate needs the score date to know how fresh the scores are: import the file as FIRST publishes it")
		}
		return invalid(line, "want the metadata line #model_version:…,score_date:…, got %s", quote(strings.Join(rec, ",")))
	}
	rec[0] = rec[0][1:]
	var haveModel, haveDate bool
	for _, field := range rec {
		key, val, ok := strings.Cut(field, ":")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return invalid(line, "metadata %s is not key:value", quote(field))
		}
		switch key {
		case "model_version":
			if haveModel {
				return invalid(line, "model_version given twice")
			}
			haveModel, set.ModelVersion = true, val
		case "score_date":
			if haveDate {
				return invalid(line, "score_date given twice")
			}
			t, err := parseDate(val)
			if err != nil {
				return invalid(line, "score_date %s is not a date; want e.g. 2025-03-30T12:55:00Z", quote(val))
			}
			if t.Before(firstScores) {
				return invalid(line, "score_date %s is before FIRST published any EPSS scores (%s)", quote(val), firstScores.Format(time.DateOnly))
			}
			haveDate, set.ScoreDate = true, t
		}
	}
	if !haveDate {
		return invalid(line, "the metadata line has no score_date; tollgate needs it to know how fresh the scores are")
	}
	return nil
}

func parseDate(s string) (time.Time, error) {
	var err error
	for _, layout := range scoreDateLayouts {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

// parseHeader returns, for each of cve, epss and percentile, the index of its
// column. The names must be exact; their order is free.
func parseHeader(rec []string, line int) ([numCols]int, error) {
	cols := [numCols]int{-1, -1, -1}
	for i, name := range rec {
		c := indexOf(colNames[:], name)
		if c < 0 {
			return cols, invalid(line, "header has column %s; want exactly cve,epss,percentile", quote(name))
		}
		if cols[c] >= 0 {
			return cols, invalid(line, "header has column %s twice", quote(name))
		}
		cols[c] = i
	}
	for c, i := range cols {
		if i < 0 {
			return cols, invalid(line, "header has no %s column; want cve,epss,percentile", colNames[c])
		}
	}
	return cols, nil
}

func indexOf(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}

func parseRow(rec []string, cols *[numCols]int, line int) (Score, error) {
	if len(rec) != numCols {
		return Score{}, invalid(line, "%d fields; want 3 (cve,epss,percentile)", len(rec))
	}
	cve := rec[cols[colCVE]]
	if !validCVE(cve) {
		return Score{}, invalid(line, "%s is not a CVE id; want CVE-YYYY-NNNN", quote(cve))
	}
	cve = strings.ToUpper(cve)
	epss, ok := probability(rec[cols[colEPSS]])
	if !ok {
		return Score{}, invalid(line, "epss %s of %s is not a number in [0,1]", quote(rec[cols[colEPSS]]), cve)
	}
	pct, ok := probability(rec[cols[colPercentile]])
	if !ok {
		return Score{}, invalid(line, "percentile %s of %s is not a number in [0,1]", quote(rec[cols[colPercentile]]), cve)
	}
	return Score{CVE: cve, EPSS: epss, Percentile: pct}, nil
}

// validCVE reports whether s is CVE-YYYY-NNNN…, in any letter case: four
// digits of year, four or more of sequence. It is written out rather than a
// regexp because it runs on every one of ~300,000 rows.
func validCVE(s string) bool {
	const prefix = len("CVE-YYYY-")
	if len(s) < prefix+4 || !strings.EqualFold(s[:4], "CVE-") || s[8] != '-' {
		return false
	}
	return digits(s[4:8]) && digits(s[prefix:])
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// probability reads a number in [0,1] as FIRST writes it: digits, a point,
// perhaps an exponent (4.3e-05). strconv.ParseFloat alone would also read
// "0x1p-1" (0.5), "0_5" and "-0", which no EPSS file holds.
func probability(s string) (float64, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' || strings.ContainsAny(s, "xX_pP") {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && v >= 0 && v <= 1 // false for NaN too
}

func invalid(line int, format string, args ...any) *tollgate.Error {
	return tollgate.Errorf(tollgate.EInvalid, "EPSS file line %d: %s", line, fmt.Sprintf(format, args...))
}

// quote quotes s for an error message, shortened: a wrong file can put a very
// long line where a CVE id belongs.
func quote(s string) string {
	const limit = 60
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}
