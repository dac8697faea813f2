// Package scans reads the reports vulnerability scanners write — Trivy JSON,
// Grype JSON, SARIF 2.1.0 and CycloneDX with vulnerabilities (VEX) — into
// one shape, tollgate.Scan, for the risk gates.
//
// Reports are untrusted input. Parse never panics (each parser is fuzzed),
// keeps no state, and refuses what it cannot read faithfully with a
// tollgate.EInvalid error that names the problem and where it is, such as
// "trivy report: Results[2].Vulnerabilities[0]: VulnerabilityID is missing".
// A report that is well-formed JSON of another format than announced is
// refused too, saying which format it looks like. Size limits are the
// caller's. Fields a format has and tollgate does not use are ignored, so
// that newer scanner versions keep working.
//
// Rules shared by every format:
//
//   - Severity is the scanner's own rating, lower case, with Trivy's UNKNOWN
//     as "unknown" and Grype's Negligible (CycloneDX's info) as "none". A
//     rating tollgate does not know is an error, not a guess.
//   - CVSS: every v3.0, v3.1 and v4.0 vector the report carries is kept
//     with its source ("nvd", "ghsa", "redhat"…, lower case). CVSS v2
//     vectors are dropped: the gates score v3/v4 only. adapters/cvss
//     computes the scores from the vectors, so that each score has a
//     receipt anyone can check; the report's own v3/v4 score (SARIF's
//     security-severity, Grype's baseScore, a CycloneDX rating's score,
//     Trivy's V3Score) is kept as Finding.Reported only when no vector can
//     be scored (none, or none that parses), so that the same scan scores the same in every format and a
//     vulnerability never vanishes: without either it is an unknown.
//   - VEX: a CycloneDX analysis is kept as the finding's statement
//     (Finding.VEX); ParseVEX reads a VEX document sent beside a scan.
//   - The same vulnerability of the same package and version reported twice
//     (a library found at two paths) is one finding. If one copy is
//     discounted by VEX (not_affected, fixed) and the other is not, the one
//     that is not wins: a statement about one copy does not clear the other.
//     Otherwise the copy rated worse (severity, then reported score) wins.
//   - Unidentified counts the distinct packages a scanner saw but could not
//     identify well enough to match: per format, see the parser's comment.
//   - Findings keep the report's order.
package scans

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/cvss"
)

// Parse reads a scanner report of the given format (tollgate.FormatTrivy,
// FormatGrype, FormatSARIF or FormatCycloneDX).
func Parse(format string, report []byte) (tollgate.Scan, error) {
	switch format {
	case tollgate.FormatTrivy:
		return parseTrivy(report)
	case tollgate.FormatGrype:
		return parseGrype(report)
	case tollgate.FormatSARIF:
		return parseSARIF(report)
	case tollgate.FormatCycloneDX:
		return parseCycloneDX(report)
	}
	return tollgate.Scan{}, tollgate.Errorf(tollgate.EInvalid,
		"scan format %q is not one tollgate reads: want %s, %s, %s or %s",
		format, tollgate.FormatTrivy, tollgate.FormatGrype, tollgate.FormatSARIF, tollgate.FormatCycloneDX)
}

// invalid is the error for a report that cannot be read, prefixed with the
// format and, when given, the place in the report.
func invalid(format, where, problem string, args ...any) error {
	msg := fmt.Sprintf(problem, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	return tollgate.Errorf(tollgate.EInvalid, "%s report: %s", format, msg)
}

// notFormat is the error for a JSON document that is not of the announced
// format; it says which format the document looks like, if any.
func notFormat(format string, report []byte, problem string, args ...any) error {
	msg := fmt.Sprintf(problem, args...) + ": this is not " + formatNames[format]
	if looks, name := sniff(report); looks != "" && name != format {
		msg += "; it looks like " + looks
		if name != "" {
			msg += fmt.Sprintf(`: send it as format "%s"`, name)
		} else {
			msg += ", which tollgate does not read"
		}
	}
	return invalid(format, "", "%s", msg)
}

var formatNames = map[string]string{
	tollgate.FormatTrivy:     "a Trivy JSON report (trivy --format json)",
	tollgate.FormatGrype:     "a Grype JSON report (grype -o json)",
	tollgate.FormatSARIF:     "a SARIF 2.1.0 log",
	tollgate.FormatCycloneDX: "a CycloneDX JSON BOM",
}

// sniff guesses which kind of document report is, from its top-level keys,
// for error messages only: each parser decides by its own format's rules.
func sniff(report []byte) (looks, format string) {
	var top map[string]json.RawMessage
	if json.Unmarshal(trimBOM(report), &top) != nil {
		return "", ""
	}
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := top[k]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("SchemaVersion", "ArtifactName") || has("SchemaVersion", "Results"):
		return "a Trivy JSON report", tollgate.FormatTrivy
	case has("matches", "descriptor") || has("matches", "source"):
		return "a Grype JSON report", tollgate.FormatGrype
	case has("runs", "version") || has("runs", "$schema"):
		return "a SARIF log", tollgate.FormatSARIF
	case has("bomFormat"):
		return "a CycloneDX BOM", tollgate.FormatCycloneDX
	case has("spdxVersion"):
		return "an SPDX document", ""
	case has("@context", "statements"):
		return "an OpenVEX document", ""
	}
	return "", ""
}

func trimBOM(report []byte) []byte {
	return bytes.TrimPrefix(report, []byte("\xef\xbb\xbf"))
}

// decode unmarshals a report into v, with errors a user can act on.
func decode(format string, report []byte, v any) error {
	report = trimBOM(report)
	trimmed := bytes.TrimSpace(report)
	if len(trimmed) == 0 {
		return invalid(format, "", "the report is empty: want %s", formatNames[format])
	}
	if trimmed[0] != '{' {
		return invalid(format, "", "the report is not a JSON object: want %s", formatNames[format])
	}
	// Two keys that encoding/json would read into one field ("Vulnerabilities"
	// and "vulnerabilities", or a key twice) let the last one win: a report
	// could list its findings and then an empty list that hides them.
	if err := tollgate.CheckJSON(report, v); err != nil {
		return invalid(format, "", "%s", err)
	}
	err := json.Unmarshal(report, v)
	if err == nil {
		return nil
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var msg string
	switch {
	case errors.As(err, &syntaxErr):
		line, col := position(report, syntaxErr.Offset)
		msg = fmt.Sprintf("not valid JSON at line %d, column %d: %v", line, col, syntaxErr)
	case errors.As(err, &typeErr):
		line, col := position(report, typeErr.Offset)
		field := typeErr.Field
		if field == "" {
			field = "the document"
		}
		msg = fmt.Sprintf("%s is %s, want %s (line %d, column %d)", field, article(typeErr.Value), kindOf(typeErr.Type), line, col)
	default:
		msg = err.Error()
	}
	if looks, name := sniff(report); looks != "" && name != format {
		return notFormat(format, report, "%s", msg)
	}
	return invalid(format, "", "%s", msg)
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	if offset < 0 {
		offset = 0
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

func article(jsonValue string) string {
	switch jsonValue {
	case "array", "object":
		return "an " + jsonValue
	case "":
		return "a value"
	}
	if strings.HasPrefix(jsonValue, "number") {
		return "a number"
	}
	return "a " + jsonValue
}

func kindOf(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return kindOf(t.Elem())
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// severity normalises a scanner's rating; ok is false for a word that is not
// a severity in any of the formats tollgate reads.
func severity(s string) (sev tollgate.Severity, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return tollgate.SeverityCritical, true
	case "high", "important": // Red Hat says important
		return tollgate.SeverityHigh, true
	case "medium", "moderate": // GitHub advisories say moderate
		return tollgate.SeverityMedium, true
	case "low":
		return tollgate.SeverityLow, true
	case "negligible", "none", "info", "informational":
		return tollgate.SeverityNegligible, true
	case "unknown", "":
		return tollgate.SeverityUnknown, true
	}
	return "", false
}

// band is the CVSS qualitative rating of a score, for reports that give a
// score and no rating (SARIF's security-severity, CycloneDX ratings).
func band(score float64) tollgate.Severity {
	switch {
	case score >= 9.0:
		return tollgate.SeverityCritical
	case score >= 7.0:
		return tollgate.SeverityHigh
	case score >= 4.0:
		return tollgate.SeverityMedium
	case score >= 0.1:
		return tollgate.SeverityLow
	}
	return tollgate.SeverityNegligible
}

var severityRank = map[tollgate.Severity]int{
	tollgate.SeverityUnknown:    0,
	tollgate.SeverityNegligible: 1,
	tollgate.SeverityLow:        2,
	tollgate.SeverityMedium:     3,
	tollgate.SeverityHigh:       4,
	tollgate.SeverityCritical:   5,
}

// validScore reports whether a CVSS-like score is a number from 0 to 10.
func validScore(f float64) bool { return !math.IsNaN(f) && f >= 0 && f <= 10 }

// cvssVector returns a CVSS v3.0, v3.1 or v4.0 vector in its canonical
// "CVSS:x.y/…" form, and false for v2 vectors and anything else. version
// ("3.0", "3.1", "4.0" or "") is what the report says the vector is, for
// the reports that write vectors without their prefix.
func cvssVector(vector, version string) (string, bool) {
	v := strings.TrimSpace(vector)
	v = strings.TrimSuffix(strings.TrimPrefix(v, "("), ")")
	for _, prefix := range []string{"CVSS:4.0/", "CVSS:3.1/", "CVSS:3.0/"} {
		if strings.HasPrefix(v, prefix) {
			return v, len(v) > len(prefix)
		}
	}
	if strings.HasPrefix(v, "CVSS:") || strings.Contains(v, "/Au:") { // v2, or a version we do not score
		return "", false
	}
	switch version {
	case "4.0", "3.1", "3.0":
		if strings.HasPrefix(v, "AV:") {
			return "CVSS:" + version + "/" + v, true
		}
	}
	return "", false
}

// scorable reports whether one of vectors can be scored. A report's own
// score is kept only when none can: a vector that does not parse ("…/A:X",
// a trailing "/") used to drop the score beside it, and a finding the
// report scores 9.8 became an unknown, which a lenient max_unknowns lets
// through where max_critical would not.
func scorable(vectors []tollgate.CVSSVector) bool {
	_, ok := cvss.Best(vectors)
	return ok
}

// source normalises where a CVSS vector comes from, so that adapters/cvss
// can prefer NVD's whatever the report calls it.
func source(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "nvd@nist.gov", "national vulnerability database":
		return "nvd"
	case "security-advisories@github.com", "github", "github advisories", "github security advisories":
		return "ghsa"
	}
	return s
}

// scannerName joins a tool's name and version, either of which may be empty.
func scannerName(name, version string) string {
	return strings.TrimSpace(strings.TrimSpace(name) + " " + strings.TrimSpace(version))
}

// builder collects a scan's findings, merging duplicates, and the keys of
// the packages that could not be identified.
type builder struct {
	err          error // the first finding that is not well-formed
	scan         tollgate.Scan
	index        map[findingKey]int
	unidentified map[string]bool
}

type findingKey struct{ id, pkg, version string }

func newBuilder(format, scanner string) *builder {
	return &builder{
		scan:         tollgate.Scan{Format: format, Scanner: scanner, Findings: []tollgate.Finding{}},
		index:        map[findingKey]int{},
		unidentified: map[string]bool{},
	}
}

func (b *builder) add(f tollgate.Finding) {
	f.Aliases = aliases(f.ID, f.Aliases)
	if b.err == nil {
		b.err = wellFormed(b.scan.Format, f)
	}
	key := findingKey{f.ID, f.Package, f.Version}
	i, seen := b.index[key]
	if !seen {
		b.index[key] = len(b.scan.Findings)
		b.scan.Findings = append(b.scan.Findings, f)
		return
	}
	old := b.scan.Findings[i]
	if discounted(old.VEXStatus) != discounted(f.VEXStatus) {
		if discounted(old.VEXStatus) {
			b.scan.Findings[i] = f
		}
		return
	}
	if worse(f, old) {
		b.scan.Findings[i] = f
	}
}

// worse reports whether copy a of a finding is rated worse than copy b:
// two results of one SARIF rule in one file, or a report that lists a
// vulnerability twice, must not be judged by the milder copy.
func worse(a, b tollgate.Finding) bool {
	if ra, rb := severityRank[a.Severity], severityRank[b.Severity]; ra != rb {
		return ra > rb
	}
	return len(a.CVSS) == 0 && len(b.CVSS) == 0 && a.Reported != nil && (b.Reported == nil || a.Reported.Score > b.Reported.Score)
}

func discounted(s tollgate.VEXStatus) bool {
	return s == tollgate.VEXNotAffected || s == tollgate.VEXFixed
}

// addUnidentified records a package that could not be identified; key
// tells packages apart, so that one seen twice counts once.
func (b *builder) addUnidentified(key string) { b.unidentified[key] = true }

func (b *builder) result() (tollgate.Scan, error) {
	if b.err != nil {
		return tollgate.Scan{}, b.err
	}
	if err := tollgate.CheckChars("the scanner's name", b.scan.Scanner); err != nil {
		return tollgate.Scan{}, invalid(b.scan.Format, "", "%v", err)
	}
	b.scan.Unidentified = len(b.unidentified)
	return b.scan, nil
}

// wellFormed refuses a finding whose names hold what no identifier may
// (tollgate.CheckChars): its id, package and versions are recorded with
// the decision and drawn in its reasons and on the history page, where a
// bidi override or a control character in a report would make one
// vulnerability or package read as another.
func wellFormed(format string, f tollgate.Finding) error {
	for _, field := range []struct{ name, value string }{
		{"id", f.ID}, {"package", f.Package}, {"version", f.Version}, {"fixed version", f.FixedVersion},
	} {
		if err := tollgate.CheckChars(field.name, field.value); err != nil {
			return invalid(format, "", "the finding %q: %v", f.ID, err)
		}
	}
	for _, a := range f.Aliases {
		if err := tollgate.CheckChars("alias", a); err != nil {
			return invalid(format, "", "the finding %q: %v", f.ID, err)
		}
	}
	if f.VEX != nil {
		return wellFormedStatement(format, *f.VEX)
	}
	return nil
}

// lineBreaks lets free text (a VEX detail) span lines and tabs.
var lineBreaks = strings.NewReplacer("\n", " ", "\r", " ", "\t", " ")

// wellFormedStatement is wellFormed for a VEX statement, which the decision
// lists in "suppressed" and the history page shows.
func wellFormedStatement(format string, st tollgate.VEXStatement) error {
	for _, field := range []struct{ name, value string }{
		{"affects ref", st.Affects}, {"analysis.justification", st.Justification},
		{"analysis.detail", lineBreaks.Replace(st.Detail)}, {"document", st.Document}, {"ref", st.Ref},
	} {
		if err := tollgate.CheckChars(field.name, field.value); err != nil {
			return invalid(format, "", "the VEX statement on %q: %v", st.ID, err)
		}
	}
	return nil
}

// aliases drops empty and repeated aliases and the finding's own id.
func aliases(id string, list []string) []string {
	var out []string
	seen := map[string]bool{id: true}
	for _, a := range list {
		a = strings.TrimSpace(a)
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

// vexStatus maps OpenVEX statuses (which Trivy and Grype use) to tollgate's.
var vexStatus = map[string]tollgate.VEXStatus{
	"not_affected":        tollgate.VEXNotAffected,
	"affected":            tollgate.VEXAffected,
	"fixed":               tollgate.VEXFixed,
	"under_investigation": tollgate.VEXUnderInvestigation,
}
