package tollgate

import "time"

// LicenceState is what the licence adapter found when it checked the licence
// at the evaluation time.
type LicenceState string

// Licence states. Only LicenceValid lets evaluation go past step 1.
const (
	LicenceValid   LicenceState = "valid"
	LicenceInvalid LicenceState = "invalid" // missing, malformed, bad signature, wrong edition
	LicenceExpired LicenceState = "expired" // good signature, outside [nbf/iat, exp)
)

// Licence is the licence adapter's report.
type Licence struct {
	Status    LicenceState `json:"status"`
	Subject   string       `json:"subject,omitempty"`
	Edition   string       `json:"edition,omitempty"`
	ExpiresAt time.Time    `json:"expires_at,omitzero"` // zero when unknown
	Detail    string       `json:"detail,omitempty"`    // why it is not valid, for the reason message
}

// Cooldown is the cooldown adapter's report for one project + pipeline +
// branch: when a decision for it was last accepted, if ever.
type Cooldown struct {
	LastAcceptedAt time.Time `json:"last_accepted_at,omitzero"` // zero: no accepted decision on record
}

// CooldownKey identifies the subject of a cooldown.
type CooldownKey struct {
	Project  string `json:"project"`
	Pipeline string `json:"pipeline"`
	Branch   string `json:"branch"`
}

// Context is everything Go injects into an evaluation: the clock, the licence
// and the cooldown state. It reaches Rego as input.context (see the README)
// and is recorded with each decision, so that it can be replayed.
type Context struct {
	Now      time.Time `json:"now"`
	Licence  Licence   `json:"licence"`
	Cooldown Cooldown  `json:"cooldown"`
	Scan     *Release  `json:"scan,omitempty"`     // the release's scan, scored; nil without one
	Baseline *Baseline `json:"baseline,omitempty"` // the last accepted release's, when the release has a scan
	// The controls in force when the decision was made: the approved
	// exceptions of the request's project, the emergency freezes and the
	// incident, if any (without their histories).
	Exceptions []Control `json:"exceptions,omitempty"`
	Freezes    []Control `json:"freezes,omitempty"`
	Incident   *Control  `json:"incident,omitempty"`
	// Language is the language the decision's messages were rendered in
	// (input.context.language): recorded, so that a replay says the same.
	// Empty in records made before messages had languages, and for a
	// bundle without a catalogue: the policy's default.
	Language string `json:"language,omitempty"`
}

// Release is the scan of the release being gated, with the scores Go
// computed for it: what the security gates (risk.rego) read as input.scan.
type Release struct {
	ScannedAt    time.Time       `json:"scanned_at"`
	ScanID       string          `json:"scan_id,omitempty"`  // a stored scan's (POST /v1/scans)
	Artifact     string          `json:"artifact,omitempty"` // a stored scan's artifact digest
	Format       string          `json:"format"`
	Unidentified int             `json:"unidentified"`
	Findings     []ScoredFinding `json:"findings"`
	// The EPSS set the findings' scores come from, for replay and audit.
	EPSSModel string    `json:"epss_model,omitempty"`
	EPSSDate  time.Time `json:"epss_date,omitzero"`
}

// ScoredFinding is a finding with the CVSS score chosen for it, if any, and
// the EPSS of its CVE, if one was imported.
type ScoredFinding struct {
	Finding
	Score *ScoreReceipt `json:"score,omitempty"`
	EPSS  *EPSSScore    `json:"epss,omitempty"`
}
