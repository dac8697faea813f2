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
	Status    LicenceState
	Subject   string
	Edition   string
	ExpiresAt time.Time // zero when unknown
	Detail    string    // why it is not valid, for the reason message
}

// Cooldown is the cooldown adapter's report for one project + pipeline +
// branch: when a decision for it was last accepted, if ever.
type Cooldown struct {
	LastAcceptedAt time.Time // zero: no accepted decision on record
}

// CooldownKey identifies the subject of a cooldown.
type CooldownKey struct {
	Project, Pipeline, Branch string
}

// Context is everything Go injects into an evaluation: the clock, the licence
// and the cooldown state. It reaches Rego as input.context (see the README).
type Context struct {
	Now      time.Time
	Licence  Licence
	Cooldown Cooldown
}
