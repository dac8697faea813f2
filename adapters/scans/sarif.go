package scans

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate"
)

// SARIF 2.1.0 (OASIS), the parts tollgate reads. Rules live in the driver or,
// for CodeQL, in tool extensions (query packs) that results point to.
type sarifLog struct {
	Version *string     `json:"version"`
	Runs    *[]sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool struct {
		Driver     *sarifComponent  `json:"driver"`
		Extensions []sarifComponent `json:"extensions"`
	} `json:"tool"`
	// Results is a pointer: SARIF leaves it out (or null) when the tool
	// failed to start or to begin its analysis, which is no scan at all.
	Results     *[]sarifResult `json:"results"`
	Invocations []struct {
		ExecutionSuccessful *bool `json:"executionSuccessful"`
	} `json:"invocations"`
}

type sarifComponent struct {
	Name            string      `json:"name"`
	Version         string      `json:"version"`
	SemanticVersion string      `json:"semanticVersion"`
	Rules           []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Help       sarifMessage    `json:"help"`
	Properties sarifProperties `json:"properties"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

// sarifProperties: security-severity is GitHub code scanning's convention
// (a CVSS-like score, as a string), which Trivy, Grype and CodeQL follow;
// the cvss* keys are Trivy's (v0.58 and later).
type sarifProperties struct {
	SecuritySeverity json.RawMessage `json:"security-severity"`
	Tags             []string        `json:"tags"`
	CVSSv3Vector     string          `json:"cvssv3_vector"`
	CVSSv40Vector    string          `json:"cvssv40_vector"`
}

type sarifResult struct {
	RuleID    string `json:"ruleId"`
	RuleIndex *int   `json:"ruleIndex"`
	Rule      *struct {
		ID            string `json:"id"`
		Index         *int   `json:"index"`
		ToolComponent *struct {
			Index *int `json:"index"`
		} `json:"toolComponent"`
	} `json:"rule"`
	Kind          string       `json:"kind"`
	BaselineState string       `json:"baselineState"`
	Message       sarifMessage `json:"message"`
	Locations     []struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	} `json:"locations"`
	Properties sarifProperties `json:"properties"`
}

// parseSARIF reads runs[].results[] of SARIF 2.1.0 logs, as Trivy, Grype,
// CodeQL and most code scanners write them. SARIF has no vulnerability or
// package fields, so:
//
//   - A result is a finding when it names a vulnerability — a CVE or GHSA
//     id in its rule id, rule name, tags, message or the rule's help, a
//     "vulnerability" tag, or any result of a vulnerability scanner's run
//     (Trivy, Grype, Anchore) — or when it is a security result: its rule
//     or itself has a security-severity or a "security" tag. Other results
//     are code-quality results (a CodeQL maintainability note): the
//     security gates judge vulnerabilities, and the tool itself does not
//     call these security issues, so they are not findings. Results tagged
//     "license" (Trivy tags its licence checks "security" too), results of
//     kind pass, notApplicable or informational and results whose
//     baselineState is "absent" (gone since the baseline) are skipped;
//     kinds open and review (the tool could not decide) are findings, and
//     a kind SARIF does not define is refused. A log of no analysis (no
//     runs, a run without results, executionSuccessful false) is refused. Suppressions are not honoured:
//     some scanners mark every result suppressed, and a gate must not fail
//     open on that.
//   - id: the vulnerability id of the "Vulnerability CVE-…" line Trivy and
//     Grype write in the message or the rule's help; else the one the rule
//     id starts with (Grype: "CVE-2021-44228-log4j-core"); else the first
//     CVE or GHSA id, in any case, of the rule id ("npm/cve-2024-1234"),
//     the rule name, tags, message or help; else the rule id
//     ("js/sql-injection"). The same rule in the same file is one finding,
//     however many lines it flags, rated as the worst of them.
//   - package, version, fixed version: the "Package:", "Installed Version:"
//     or "Version:", and "Fixed Version:" or "Fix Version:" lines Trivy and
//     Grype write in the message or the rule's help; else the package is the
//     file of the first location.
//   - severity: the scanner's own rating where it writes one — a severity
//     word among the tags (Trivy tags rules CRITICAL…UNKNOWN), else a
//     "Severity:" line (Grype) —, else the security-severity in CVSS bands
//     (9.0 critical, 7.0 high, 4.0 medium, 0.1 low, 0 none), else unknown.
//     So a Debian "negligible" that NVD scores 9.8 stays negligible, as in
//     the scanner's JSON report.
//   - CVSS: the vectors Trivy adds as rule properties, without a source
//     (SARIF does not say which).
//   - score, when there is no vector: the security-severity (the result's,
//     else its rule's), GitHub code scanning's 0–10 convention, as the
//     finding's reported score. Not when the scanner rates the finding
//     "unknown" and the security-severity is 0: Grype and Trivy write 0.0
//     when they know nothing, which is no score. A finding without either
//     is an unknown for the gates.
//
// Unidentified: packages named by a "Package:" line with no version.
func parseSARIF(report []byte) (tollgate.Scan, error) {
	const format = tollgate.FormatSARIF
	var doc sarifLog
	if err := decode(format, report, &doc); err != nil {
		return tollgate.Scan{}, err
	}
	if doc.Version == nil || doc.Runs == nil {
		missing := "version"
		if doc.Version != nil {
			missing = "runs"
		}
		return tollgate.Scan{}, notFormat(format, report, "%s is missing", missing)
	}
	if *doc.Version != "2.1.0" {
		return tollgate.Scan{}, invalid(format, "", "version is %q: tollgate reads SARIF 2.1.0", *doc.Version)
	}

	if len(*doc.Runs) == 0 {
		return tollgate.Scan{}, invalid(format, "", "runs is empty: the log records no analysis, which is not a clean scan")
	}
	var scanners []string
	b := newBuilder(format, "")
	for i, run := range *doc.Runs {
		where := fmt.Sprintf("runs[%d]", i)
		if run.Tool.Driver == nil || strings.TrimSpace(run.Tool.Driver.Name) == "" {
			return tollgate.Scan{}, invalid(format, where, "tool.driver.name is missing")
		}
		d := run.Tool.Driver
		version := d.Version
		if version == "" {
			version = d.SemanticVersion
		}
		if s := scannerName(d.Name, version); !slices.Contains(scanners, s) {
			scanners = append(scanners, s)
		}
		// SARIF 2.1.0 §3.14.23: results is absent only when the tool failed
		// to start or to begin its analysis; executionSuccessful false says
		// it failed. Either way the log is no evidence of a clean artefact.
		if run.Results == nil {
			return tollgate.Scan{}, invalid(format, where, "results is missing: %q did not complete an analysis (an empty list is a clean run)", d.Name)
		}
		for k, inv := range run.Invocations {
			if inv.ExecutionSuccessful != nil && !*inv.ExecutionSuccessful {
				return tollgate.Scan{}, invalid(format, fmt.Sprintf("%s.invocations[%d]", where, k), "executionSuccessful is false: %q failed, and its results may be incomplete", d.Name)
			}
		}
		for j, r := range *run.Results {
			where := fmt.Sprintf("runs[%d].results[%d]", i, j)
			f, ok, err := sarifFinding(&run, r, where, b)
			if err != nil {
				return tollgate.Scan{}, err
			}
			if ok {
				b.add(f)
			}
		}
	}
	b.scan.Scanner = strings.Join(scanners, ", ")
	return b.result()
}

var (
	// vulnIDLine is the "Vulnerability CVE-2021-44228" line of Trivy's and
	// Grype's messages and help texts.
	vulnIDLine = regexp.MustCompile(`^Vulnerability ([A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9:._-]*)$`)
	// vulnIDPrefix is a CVE or GHSA id at the start of a rule id.
	vulnIDPrefix = regexp.MustCompile(`^(CVE-[0-9]{4}-[0-9]{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3})`)
)

func sarifFinding(run *sarifRun, r sarifResult, where string, b *builder) (tollgate.Finding, bool, error) {
	const format = tollgate.FormatSARIF
	var f tollgate.Finding
	switch r.Kind {
	case "", "fail", "open", "review":
		// fail is a problem; open and review mean the tool could not decide
		// and a person must look: for a gate, that is a finding.
	case "pass", "notApplicable", "informational":
		return f, false, nil
	default:
		return f, false, invalid(format, where, "kind %q is not a SARIF result kind: want fail, open, review, pass, notApplicable or informational", r.Kind)
	}
	if r.BaselineState == "absent" {
		return f, false, nil
	}
	ruleID := strings.TrimSpace(r.RuleID)
	if ruleID == "" && r.Rule != nil {
		ruleID = strings.TrimSpace(r.Rule.ID)
	}
	rule := run.rule(r, ruleID)
	if ruleID == "" && rule != nil {
		ruleID = strings.TrimSpace(rule.ID)
	}
	if ruleID == "" {
		return f, false, invalid(format, where, "ruleId is missing")
	}
	var ruleProps sarifProperties
	var help, ruleName string
	if rule != nil {
		ruleProps, help, ruleName = rule.Properties, rule.Help.Text, rule.Name
	}

	tags := append(append([]string{}, r.Properties.Tags...), ruleProps.Tags...)
	score, hasScore, err := securitySeverity(r.Properties.SecuritySeverity)
	if err != nil {
		return f, false, invalid(format, where, "properties.security-severity %v", err)
	}
	if !hasScore {
		if score, hasScore, err = securitySeverity(ruleProps.SecuritySeverity); err != nil {
			return f, false, invalid(format, where, "the rule %s: properties.security-severity %v", ruleID, err)
		}
	}
	if hasTag(tags, "license") {
		return f, false, nil
	}
	fields := textFields(r.Message.Text)
	for k, v := range textFields(help) {
		if _, ok := fields[k]; !ok {
			fields[k] = v
		}
	}
	named := fields["id"]
	if named == "" {
		named = vulnIDPrefix.FindString(ruleID)
	}
	if named == "" {
		named = vulnIDIn(append([]string{ruleID, ruleName, r.Message.Text, help}, tags...)...)
	}
	vulnerability := named != "" || hasTag(tags, "vulnerability") || vulnScanner(run.Tool.Driver.Name)
	if !vulnerability && !hasScore && !hasTag(tags, "security") {
		return f, false, nil // a code-quality result
	}
	f.ID = named
	if f.ID == "" {
		f.ID = ruleID
	}
	f.Package, f.Version, f.FixedVersion = fields["package"], fields["version"], fields["fixed"]
	if f.Package != "" && f.Version == "" {
		b.addUnidentified(f.Package)
	}
	if f.Package == "" && len(r.Locations) > 0 {
		f.Package = strings.TrimSpace(r.Locations[0].PhysicalLocation.ArtifactLocation.URI)
	}

	f.Severity = tollgate.SeverityUnknown
	if sev, ok := severityTag(tags); ok {
		f.Severity = sev
	} else if sev, ok := severity(fields["severity"]); ok && fields["severity"] != "" {
		f.Severity = sev
	} else if hasScore {
		f.Severity = band(score)
	}

	for _, props := range []sarifProperties{r.Properties, ruleProps} {
		for _, vector := range []string{props.CVSSv40Vector, props.CVSSv3Vector} {
			if vec, ok := cvssVector(vector, ""); ok && !slices.Contains(f.CVSS, tollgate.CVSSVector{Vector: vec}) {
				f.CVSS = append(f.CVSS, tollgate.CVSSVector{Vector: vec})
			}
		}
	}
	if !scorable(f.CVSS) && hasScore && !(f.Severity == tollgate.SeverityUnknown && score == 0) {
		f.Reported = &tollgate.ReportedScore{Score: score, Source: "sarif security-severity"}
	}
	return f, true, nil
}

// vulnIDAnywhere finds a CVE or GHSA id in free text.
var vulnIDAnywhere = regexp.MustCompile(`(?i)\b(CVE-[0-9]{4}-[0-9]{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3})\b`)

// vulnIDIn is the first CVE or GHSA id in texts, CVE ids upper case.
func vulnIDIn(texts ...string) string {
	for _, t := range texts {
		if id := vulnIDAnywhere.FindString(t); id != "" {
			if strings.HasPrefix(strings.ToUpper(id), "CVE-") {
				return strings.ToUpper(id)
			}
			return "GHSA" + id[4:]
		}
	}
	return ""
}

// vulnScanner reports whether a SARIF driver is a vulnerability scanner,
// every result of which is about a vulnerability, even one that carries
// no id tollgate recognises.
func vulnScanner(driver string) bool {
	d := strings.ToLower(driver)
	for _, name := range []string{"trivy", "grype", "anchore"} {
		if strings.Contains(d, name) {
			return true
		}
	}
	return false
}

// rule finds a result's rule: by index (in the driver, or in the tool
// extension result.rule.toolComponent points to) when the index agrees with
// the id, else by id. An index that points nowhere is tolerated (some tools
// write ruleIndex 0 for every result): the id decides.
func (run *sarifRun) rule(r sarifResult, id string) *sarifRule {
	components := []*sarifComponent{run.Tool.Driver}
	index := r.RuleIndex
	if r.Rule != nil {
		if r.Rule.ToolComponent != nil && r.Rule.ToolComponent.Index != nil {
			if ti := *r.Rule.ToolComponent.Index; ti >= 0 && ti < len(run.Tool.Extensions) {
				components = []*sarifComponent{&run.Tool.Extensions[ti]}
			}
		}
		if r.Rule.Index != nil {
			index = r.Rule.Index
		}
	}
	if c := components[0]; index != nil && *index >= 0 && *index < len(c.Rules) {
		if rule := &c.Rules[*index]; id == "" || rule.ID == id {
			return rule
		}
	}
	if id == "" {
		return nil
	}
	for i := range run.Tool.Extensions {
		components = append(components, &run.Tool.Extensions[i])
	}
	components = append(components, run.Tool.Driver)
	for _, c := range components {
		for i := range c.Rules {
			if c.Rules[i].ID == id {
				return &c.Rules[i]
			}
		}
	}
	return nil
}

// decimal is a score as people write it: strconv.ParseFloat also reads
// "0x1p3" (8) and "1_0" (10), which no scanner means.
var decimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// securitySeverity reads a security-severity property: a number from 0 to
// 10, written as a string (GitHub's convention) or as a number.
func securitySeverity(raw json.RawMessage) (score float64, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var text string
	if json.Unmarshal(raw, &text) != nil {
		text = string(raw)
	}
	text = strings.TrimSpace(text)
	score, parseErr := strconv.ParseFloat(text, 64)
	if !decimal.MatchString(text) || parseErr != nil || !validScore(score) {
		return 0, false, fmt.Errorf("%s is not a score from 0 to 10", raw)
	}
	return score, true, nil
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if strings.EqualFold(strings.TrimSpace(t), tag) {
			return true
		}
	}
	return false
}

// severityTag finds a severity word among the tags: Trivy tags each rule
// with its own rating (CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN).
func severityTag(tags []string) (tollgate.Severity, bool) {
	for _, t := range tags {
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "critical", "high", "medium", "low", "unknown", "negligible":
			sev, _ := severity(t)
			return sev, true
		}
	}
	return "", false
}

// textFields reads the "Key: value" lines Trivy and Grype put in SARIF
// messages and help texts. Keys: id, package, version, fixed, severity.
func textFields(text string) map[string]string {
	fields := map[string]string{}
	set := func(key, value string) {
		if _, ok := fields[key]; !ok {
			fields[key] = strings.TrimSpace(value)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if m := vulnIDLine.FindStringSubmatch(line); m != nil {
			set("id", m[1])
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "Package":
			set("package", value)
		case "Installed Version", "Version":
			set("version", value)
		case "Fixed Version", "Fix Version":
			set("fixed", value)
		case "Severity":
			set("severity", value)
		}
	}
	return fields
}
