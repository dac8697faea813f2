package tollgate

import (
	"context"
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
