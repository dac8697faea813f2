// Package tollgate holds the domain of the deployment gate: the request CI
// sends, the decision tollgate answers, reason codes, configuration and the
// interfaces the adapters implement. It imports no other package of this
// module and does no I/O.
package tollgate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// Status is the outcome of a decision.
type Status string

// The two outcomes. There is no third: anything that cannot be decided is
// refused with CodePolicyError.
const (
	Accepted Status = "accepted"
	Refused  Status = "refused"
)

// Reason codes are the stable API of a decision; messages are for humans.
const (
	CodeLicenceInvalid      = "licence_invalid"
	CodeLicenceExpired      = "licence_expired"
	CodeProjectNotManaged   = "project_not_managed"
	CodeFreezeActive        = "freeze_active"
	CodeTimeWindowViolation = "time_window_violation"
	CodeWeekendViolation    = "weekend_violation"
	CodeBranchNotAllowed    = "branch_not_allowed"
	CodePipelineNotAllowed  = "pipeline_not_allowed"
	CodeCooldown            = "cooldown"
	CodePolicyError         = "policy_error"
)

// Request is the payload CI sends: may this pipeline run now?
type Request struct {
	Repository string   `json:"repository"`
	Branch     string   `json:"branch"`
	Pipeline   string   `json:"pipeline"`
	Metadata   Metadata `json:"metadata"`
}

// Metadata describes the run asking for the decision.
type Metadata struct {
	Initiator   string `json:"initiator,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	Environment string `json:"environment"`
}

// Validate reports the first missing required field, or the first field
// that is not a well-formed identifier (CheckIdentifier, CheckBranch), as an
// invalid-input error.
func (r Request) Validate() error {
	for _, f := range []struct{ name, value string }{
		{"repository", r.Repository},
		{"branch", r.Branch},
		{"pipeline", r.Pipeline},
		{"metadata.environment", r.Metadata.Environment},
	} {
		if strings.TrimSpace(f.value) == "" {
			return Errorf(EInvalid, "%s is required and must be a non-empty string", f.name)
		}
	}
	return r.CheckIdentifiers()
}

// CheckIdentifiers checks the fields that are present, for a request whose
// fields are optional (the one that goes with a stored scan).
func (r Request) CheckIdentifiers() error {
	for _, f := range []struct{ name, value string }{
		{"repository", r.Repository},
		{"pipeline", r.Pipeline},
		{"metadata.initiator", r.Metadata.Initiator},
		{"metadata.run_id", r.Metadata.RunID},
		{"metadata.environment", r.Metadata.Environment},
	} {
		if err := CheckIdentifier(f.name, f.value); err != nil {
			return err
		}
	}
	if r.Branch == "" {
		return nil
	}
	return CheckBranch("branch", r.Branch)
}

// DecodeRequest parses and validates a request. Unknown fields and wrong
// types are errors: a typo in a gate request must not silently change its
// meaning.
func DecodeRequest(data []byte) (Request, error) {
	var r Request
	if err := DecodeStrict(data, &r); err != nil {
		return Request{}, err
	}
	return r, r.Validate()
}

// DecodeStrict decodes one JSON value into v, rejecting unknown fields,
// wrong types, trailing data, duplicate keys, keys in another case than the
// field's, invalid UTF-8 and lone surrogates with an EInvalid error that
// names the field. Every JSON body tollgate accepts goes through it.
func DecodeStrict(data []byte, v any) error {
	if err := checkJSON(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(EInvalid, "%s", describeJSONError(data, v, err))
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 { // dec.More is false before a stray } or ]
		return Errorf(EInvalid, "invalid JSON: unexpected data after the top-level value")
	}
	return nil
}

// describeJSONError is encoding/json's error decoding data into v, in the
// client's terms.
func describeJSONError(data []byte, v any, err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field != "" {
			// Field leaves out map keys and array indices (which project,
			// which finding), so the path is found from where the value is.
			if at := pathAt(data, v, typeErr.Offset); at != "" && at != "the body" {
				field = at
			} else {
				field = jsonPath(reflect.TypeOf(v), field)
			}
		}
		if field == "" {
			return fmt.Sprintf("invalid JSON: expected %s, got %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("%s must be %s, got %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.EOF):
		return "empty body: expected a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "invalid JSON: " + err.Error()
	}
}

// jsonPath is the JSON path of a type error's field. encoding/json names
// an embedded struct on the way by its Go type ("Request.repository" for
// the repository of an evaluation body that embeds Request), which means
// nothing to a client: those steps are left out.
func jsonPath(t reflect.Type, field string) string {
	if field == "" {
		return ""
	}
	var path []string
	for _, name := range strings.Split(field, ".") {
		// Array indices and map keys are not in the path encoding/json gives.
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t != nil && t.Kind() == reflect.Struct {
			if f, ok := t.FieldByName(name); ok && f.Anonymous && f.Tag.Get("json") == "" {
				t = f.Type // an embedded struct: its fields are the outer object's
				continue
			}
			t = jsonFieldType(t, name)
		} else {
			t = nil
		}
		path = append(path, name)
	}
	return strings.Join(path, ".")
}

// jsonFieldType is the type of the field of struct t that encoding/json
// fills from the key name, nil if none.
func jsonFieldType(t reflect.Type, name string) reflect.Type {
	for _, f := range reflect.VisibleFields(t) {
		tagName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tagName == name || tagName == "" && f.Name == name {
			return f.Type
		}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint", "uint64", "float64", "float32":
		return "a number"
	default:
		return goKind
	}
}

// Reason explains why a decision refuses, or warns.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// ExceptionID is the exception that waived the reason, in
	// Decision.Waived; empty otherwise.
	ExceptionID string `json:"exception_id,omitempty"`
}

// Decision is tollgate's answer. Reasons is never nil so that it encodes as [].
type Decision struct {
	ID       string   `json:"decision_id,omitempty"`
	Status   Status   `json:"status"`
	Reasons  []Reason `json:"reasons"`
	Warnings []Reason `json:"warnings"`
	// Waived are the reasons approved exceptions waived: they would have
	// refused the request otherwise.
	Waived         []Reason  `json:"waived,omitempty"`
	Project        string    `json:"project"`
	Pipeline       string    `json:"pipeline"`
	Branch         string    `json:"branch"`
	Environment    string    `json:"environment"`
	BundleRevision string    `json:"bundle_revision"`
	EvaluatedAt    time.Time `json:"evaluated_at"`
	Simulated      bool      `json:"simulated,omitempty"`
	// IncidentID is the incident that was on when the decision was made.
	IncidentID string `json:"incident_id,omitempty"`
	// Suppressed are the findings of the release's scan that a VEX
	// statement took out of the security gates (not_affected, fixed).
	Suppressed []Suppression `json:"suppressed,omitempty"`
	// Findings is a simulation's per-finding breakdown of the scan, if any.
	Findings []FindingRisk `json:"findings,omitempty"`
	// Explain is how a simulation asked to explain itself got its answer:
	// the rules that fired and the expressions evaluated, in order.
	Explain []ExplainStep `json:"explain,omitempty"`
	// ClearsAt is, for each standing reason that time alone can clear
	// (freeze_active, time_window_violation, weekend_violation, cooldown,
	// incident_mode, or a project's own), the earliest instant it can
	// clear; a zero ClearTime when its end is unknown. Only in refusals.
	ClearsAt map[string]ClearTime `json:"clears_at,omitempty"`
	// NextCheckAt says whether waiting can get the request through, and
	// until when (see NextCheck). Zero (omitted) when it cannot.
	NextCheckAt NextCheck `json:"next_check_at,omitzero"`
	// Language is the language of the messages (the record's
	// Context.Language), for the Content-Language of an answer. Not
	// encoded: the decision document keeps its shape.
	Language string `json:"-"`
}

// ClearTime is when a reason can clear: an instant, or, when zero,
// unknown. It encodes as an RFC 3339 time in UTC, or null.
type ClearTime struct{ time.Time }

// NextCheck is a refusal's next_check_at. Waiting is true when every
// standing reason is one that time can clear: then At is the earliest
// instant at which the request may be accepted, all those reasons
// considered together (no evaluation before it can be, unless something
// other than the clock changes: a freeze lifted, an exception approved),
// or zero when no end is known: check again at a floor interval. It
// encodes as next_check_at, an RFC 3339 time in UTC or null, present only
// when Waiting.
type NextCheck struct {
	Waiting bool
	At      time.Time
}

// IsZero reports whether waiting cannot help, so that the field is
// omitted (omitzero).
func (n NextCheck) IsZero() bool { return !n.Waiting }

// MarshalJSON encodes an unknown time as null.
func (n NextCheck) MarshalJSON() ([]byte, error) { return ClearTime{n.At}.MarshalJSON() }

// UnmarshalJSON decodes a present next_check_at, null for an unknown time.
func (n *NextCheck) UnmarshalJSON(data []byte) error {
	var at ClearTime
	if err := at.UnmarshalJSON(data); err != nil {
		return err
	}
	*n = NextCheck{Waiting: true, At: at.Time}
	return nil
}

// MarshalJSON encodes an unknown time as null.
func (c ClearTime) MarshalJSON() ([]byte, error) {
	if c.IsZero() {
		return []byte("null"), nil
	}
	return c.UTC().MarshalJSON()
}

// UnmarshalJSON decodes null as an unknown time.
func (c *ClearTime) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*c = ClearTime{}
		return nil
	}
	return c.Time.UnmarshalJSON(data)
}

// FindingRisk is one finding of a scan with its score receipt and the
// composite risk the policy gave it (nil: no CVSS score, an unknown).
type FindingRisk struct {
	ScoredFinding
	Risk *float64 `json:"risk"`
}

// PolicyError is the fail-closed decision for a request that the policy could
// not decide: it is always refused.
func PolicyError(r Request, message string) Decision {
	return Decision{
		Status:      Refused,
		Reasons:     []Reason{{Code: CodePolicyError, Message: message}},
		Warnings:    []Reason{},
		Pipeline:    r.Pipeline,
		Branch:      r.Branch,
		Environment: r.Metadata.Environment,
	}
}

// ExplainStep is one step of a simulation's explanation: a rule that fired,
// with its value, or an expression the policy evaluated, with its result
// and the values it read (variables by name, input documents by path).
type ExplainStep struct {
	Location   string         `json:"location"`       // file:line in the bundle
	Rule       string         `json:"rule,omitempty"` // for a rule that fired: its path
	Expression string         `json:"expression"`     // the source text
	Result     any            `json:"result"`         // true/false for an expression; a rule's value
	Values     map[string]any `json:"values,omitempty"`
}
