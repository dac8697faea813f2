package tollgate

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Scan formats accepted in evaluate, simulate and POST /v1/scans.
const (
	FormatTrivy     = "trivy"
	FormatGrype     = "grype"
	FormatSARIF     = "sarif"
	FormatCycloneDX = "cyclonedx"
)

// Scan is a scanner report normalised to one shape, whatever its format.
type Scan struct {
	Format   string    `json:"format"`
	Scanner  string    `json:"scanner,omitempty"` // tool name and version, when the report says
	Findings []Finding `json:"findings"`
	// Unidentified counts components the scanner could not identify (no
	// package URL, no version): what it cannot see, it cannot clear.
	Unidentified int `json:"unidentified"`
}

// Finding is one vulnerability of one package, as a scanner reported it.
type Finding struct {
	ID           string       `json:"id"`                      // CVE-2024-1234, GHSA-…
	Aliases      []string     `json:"aliases,omitempty"`       // other IDs of the same vulnerability
	Package      string       `json:"package"`                 // name, or package URL when that is all there is
	Version      string       `json:"version,omitempty"`       // installed version
	FixedVersion string       `json:"fixed_version,omitempty"` // fixed version(s), as the scanner lists them
	Severity     Severity     `json:"severity"`                // the scanner's own rating
	CVSS         []CVSSVector `json:"cvss,omitempty"`          // every vector the report carries
	VEXStatus    VEXStatus    `json:"vex_status,omitempty"`    // from a VEX statement, if any
	// VEX is the CycloneDX statement that set VEXStatus, when one did
	// (the report's own analysis, or a VEX document sent beside it).
	VEX *VEXStatement `json:"vex,omitempty"`
	// Reported is the score the report itself gives, kept only when the
	// report carries no CVSS vector tollgate can score (SARIF's
	// security-severity, Grype's baseScore, a CycloneDX rating's score):
	// the gates use it after the vectors and before counting the finding
	// as unknown.
	Reported *ReportedScore `json:"reported_score,omitempty"`
}

// ReportedScore is a 0–10 score as a report states it, with where it is
// written, for the findings whose vectors cannot be scored.
type ReportedScore struct {
	Score  float64 `json:"score"`
	Source string  `json:"source"` // "sarif security-severity", "grype cvss 3.0 baseScore"…
}

// Severity is a scanner's rating, normalised to lower case.
type Severity string

// Severities, from worst to none. SeverityUnknown: the scanner gave none.
const (
	SeverityCritical   Severity = "critical"
	SeverityHigh       Severity = "high"
	SeverityMedium     Severity = "medium"
	SeverityLow        Severity = "low"
	SeverityNegligible Severity = "none"
	SeverityUnknown    Severity = "unknown"
)

// CVSSVector is a CVSS vector string as a report carries it, with where it
// came from (nvd, ghsa, the vendor…).
type CVSSVector struct {
	Vector string `json:"vector"` // CVSS:4.0/AV:N/… or CVSS:3.1/AV:N/…
	Source string `json:"source,omitempty"`
}

// VEXStatus is a CycloneDX/OpenVEX analysis state, normalised.
type VEXStatus string

// VEX statuses.
const (
	VEXAffected           VEXStatus = "affected"
	VEXNotAffected        VEXStatus = "not_affected"
	VEXFixed              VEXStatus = "fixed"
	VEXUnderInvestigation VEXStatus = "under_investigation"
)

// Suppressed reports whether a VEX statement takes f out of the security
// gates: the vendor declares it not_affected (CycloneDX not_affected or
// false_positive) or fixed (resolved).
func (f Finding) Suppressed() bool {
	return f.VEXStatus == VEXNotAffected || f.VEXStatus == VEXFixed
}

// VEXStatement is one CycloneDX VEX statement (a vulnerability's analysis)
// about one affected component: a package, or the whole product the VEX
// document describes (Package empty).
type VEXStatement struct {
	Document      string    `json:"document,omitempty"` // the VEX BOM's serialNumber/version, when it has one
	Ref           string    `json:"ref,omitempty"`      // the vulnerability's bom-ref in it
	ID            string    `json:"id"`                 // the vulnerability: CVE-…, GHSA-…
	Aliases       []string  `json:"aliases,omitempty"`  // its references[].id
	Affects       string    `json:"affects"`            // the affects[].ref, as written
	Package       string    `json:"package,omitempty"`  // empty: the whole product
	Version       string    `json:"version,omitempty"`  // empty: every version
	State         string    `json:"state"`              // analysis.state as written: not_affected, false_positive…
	Status        VEXStatus `json:"status,omitempty"`   // State, normalised
	Justification string    `json:"justification,omitempty"`
	Detail        string    `json:"detail,omitempty"`
	// Artifact is the digest (sha256:…) of the product the VEX document
	// describes, when its metadata.component gives one (an OCI package
	// URL, or a SHA-256 hash): a stored scan of another artifact refuses it.
	Artifact string `json:"artifact,omitempty"`
}

// WithVEX returns s with the statements applied: a finding that a
// statement names (same vulnerability ID or alias, and same package and
// version unless the statement is about the whole product, or gives no
// version) takes the statement's status. When several name it, one that
// keeps the finding in the gates (exploitable, in_triage) wins over one
// that takes it out, and so does the report's own analysis when it keeps
// the finding: a statement that clears one copy does not clear another.
// s itself is not modified.
func (s Scan) WithVEX(statements []VEXStatement) Scan {
	if len(statements) == 0 {
		return s
	}
	out := s
	out.Findings = slices.Clone(s.Findings)
	for i := range out.Findings {
		f := &out.Findings[i]
		var chosen *VEXStatement
		for j := range statements {
			st := &statements[j]
			if !st.names(*f) {
				continue
			}
			if chosen == nil || (chosen.suppresses() && !st.suppresses()) {
				chosen = st
			}
		}
		kept := f.VEXStatus == VEXAffected || f.VEXStatus == VEXUnderInvestigation
		if chosen != nil && !(kept && chosen.suppresses()) {
			c := *chosen
			f.VEXStatus, f.VEX = c.Status, &c
		}
	}
	return out
}

func (st VEXStatement) suppresses() bool { return st.Status == VEXNotAffected || st.Status == VEXFixed }

// names reports whether st is about f. Package names are compared as
// scanners write them: "group/name" (CycloneDX, package URLs),
// "group:name" (Trivy's Java packages) or the bare name (Grype).
func (st VEXStatement) names(f Finding) bool {
	ids := append([]string{st.ID}, st.Aliases...)
	match := false
	for _, id := range append([]string{f.ID}, f.Aliases...) {
		if slices.ContainsFunc(ids, func(s string) bool { return strings.EqualFold(s, id) }) {
			match = true
			break
		}
	}
	if !match || st.Package == "" {
		return match
	}
	if st.Version != "" && st.Version != f.Version {
		return false
	}
	names := []string{st.Package, strings.ReplaceAll(st.Package, "/", ":")}
	if i := strings.LastIndexByte(st.Package, '/'); i >= 0 {
		names = append(names, st.Package[i+1:])
	}
	return slices.Contains(names, f.Package)
}

// Suppression is a finding a VEX statement took out of the security gates,
// as a decision lists it in "suppressed".
type Suppression struct {
	ID        string        `json:"id"`
	Package   string        `json:"package"`
	Version   string        `json:"version,omitempty"`
	VEXStatus VEXStatus     `json:"vex_status"`
	Statement *VEXStatement `json:"statement,omitempty"` // nil when the scanner applied the VEX itself (Trivy, Grype)
}

// ScoreReceipt says how a CVSS base score was obtained, so that anyone can
// check it: the vector, its version, the computed score and its source.
type ScoreReceipt struct {
	Vector  string  `json:"vector"`
	Version string  `json:"version"` // "4.0", "3.1", "3.0"
	Score   float64 `json:"score"`
	Source  string  `json:"source,omitempty"`
}

// StoredScan is a scan posted ahead of the evaluation (POST /v1/scans), kept
// per project and artifact digest for evaluations to name by ID.
type StoredScan struct {
	ID        string    `json:"scan_id"`
	Project   string    `json:"project"`
	Artifact  string    `json:"artifact"`          // the scanned artifact's digest: sha256:…
	ScannedAt time.Time `json:"scanned_at"`        // when tollgate received it: the scan's age counts from here
	Request   *Request  `json:"request,omitempty"` // the pipeline that posted it, when it said
	Scan      Scan      `json:"scan"`
}

// Baseline is what the drift gate compares a release with: the scored scan
// of the last accepted decision of the same project and environment.
type Baseline struct {
	DecisionID string `json:"decision_id"`
	Release
}

// ScanStore keeps stored scans and the drift baseline of each project and
// environment. Decide keeps the baselines: every accepted decision whose
// context has a scan becomes its project and environment's baseline, in the
// same transaction as its record.
type ScanStore interface {
	// PutScan stores s, durably when it returns. Its ID must be new.
	PutScan(ctx context.Context, s StoredScan) error

	// Scan returns a stored scan by ID, or an ENotFound error.
	Scan(ctx context.Context, id string) (StoredScan, error)

	// Baseline returns the baseline of project and environment, or nil
	// when no decision of theirs with a scan was ever accepted.
	Baseline(ctx context.Context, project, environment string) (*Baseline, error)
}
