// Package github is tollgate's side of GitHub's custom deployment
// protection rules: it verifies and reads the deployment_protection_rule
// webhook, maps it to a gate request, and answers GitHub as a GitHub App
// (an RS256 app JWT exchanged for an installation token) with the review
// of the deployment: approved, or rejected with every reason.
package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate"
)

// The headers and names of a webhook delivery.
const (
	SignatureHeader = "X-Hub-Signature-256"
	EventHeader     = "X-GitHub-Event"
	DeliveryHeader  = "X-GitHub-Delivery"
	// EventName is the one event tollgate acts on; ActionRequested its one
	// action.
	EventName       = "deployment_protection_rule"
	ActionRequested = "requested"
	// Initiator is the initiator of the requests the webhook makes.
	Initiator = "github-actions"
)

// VerifySignature checks header, an X-Hub-Signature-256 value
// ("sha256=" and 64 hex digits), against the HMAC-SHA256 of body under
// secret, in constant time. An empty secret verifies nothing.
func VerifySignature(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return errors.New("no webhook secret is configured")
	}
	digest, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(digest) != 2*sha256.Size {
		return fmt.Errorf("%s is missing or is not sha256= and 64 hex digits", SignatureHeader)
	}
	got, err := hex.DecodeString(digest)
	if err != nil {
		return fmt.Errorf("%s is not sha256= and 64 hex digits", SignatureHeader)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%s does not match the body: wrong webhook secret, or the body was changed", SignatureHeader)
	}
	return nil
}

// Event is what tollgate reads of a deployment_protection_rule delivery;
// the rest of the payload is ignored.
type Event struct {
	Action       string        `json:"action"`
	Environment  string        `json:"environment"`
	Event        string        `json:"event"`
	CallbackURL  string        `json:"deployment_callback_url"`
	Ref          string        `json:"ref"` // deliveries for workflow runs carry the run's ref and sha
	SHA          string        `json:"sha"`
	Deployment   *Deployment   `json:"deployment"`
	Repository   *Repository   `json:"repository"`
	Installation *Installation `json:"installation"`
	WorkflowRun  *WorkflowRun  `json:"workflow_run"`
	Sender       *Sender       `json:"sender"`
}

// Deployment is the event's deployment.
type Deployment struct {
	ID  int64  `json:"id"`
	Ref string `json:"ref"`
	SHA string `json:"sha"`
}

// Repository is the event's repository.
type Repository struct {
	FullName string `json:"full_name"`
}

// Installation is the installation of the app the event is for.
type Installation struct {
	ID int64 `json:"id"`
}

// WorkflowRun is the run waiting for the review, when the event names it.
type WorkflowRun struct {
	ID int64 `json:"id"`
}

// Sender is who triggered the deployment.
type Sender struct {
	Login string `json:"login"`
}

// ParseEvent reads a delivery's body: exact JSON (no duplicate or
// case-variant keys of the fields tollgate reads, valid UTF-8), with an
// action.
func ParseEvent(body []byte) (Event, error) {
	var e Event
	if err := tollgate.CheckJSON(body, &e); err != nil {
		return Event{}, err
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, tollgate.Errorf(tollgate.EInvalid, "the %s event is not the JSON GitHub sends: %v", EventName, err)
	}
	if e.Action == "" {
		return Event{}, tollgate.Errorf(tollgate.EInvalid, "the %s event has no action", EventName)
	}
	return e, nil
}

// Callback is what answering GitHub about a deployment takes: where, as
// which installation, for which environment; and the delivery that asked.
type Callback struct {
	URL            string `json:"url"`
	InstallationID int64  `json:"installation_id"`
	Environment    string `json:"environment"`
	Delivery       string `json:"delivery"`
}

// Callback is the event's callback; an error if the event lacks what
// answering GitHub takes (then nobody can be told, and the deployment
// waits until GitHub's own timeout).
func (e Event) Callback(delivery string) (Callback, error) {
	switch {
	case e.CallbackURL == "":
		return Callback{}, tollgate.Errorf(tollgate.EInvalid, "the event has no deployment_callback_url")
	case e.Installation == nil || e.Installation.ID <= 0:
		return Callback{}, tollgate.Errorf(tollgate.EInvalid, "the event has no installation: is it delivered to a GitHub App's webhook?")
	case e.Environment == "":
		return Callback{}, tollgate.Errorf(tollgate.EInvalid, "the event has no environment")
	}
	if err := tollgate.CheckIdentifier("environment", e.Environment); err != nil {
		return Callback{}, err
	}
	return Callback{URL: e.CallbackURL, InstallationID: e.Installation.ID, Environment: e.Environment, Delivery: delivery}, nil
}

// UnmappableError says why an event maps to no gate request, and what to
// configure so that it does: the comment of the rejection GitHub shows.
type UnmappableError struct{ Problem string }

func (e *UnmappableError) Error() string { return e.Problem }

func unmappable(format string, args ...any) error {
	return &UnmappableError{Problem: fmt.Sprintf(format, args...)}
}

// PipelineFunc finds the tollgate pipeline that gates deployments of a
// repository to a GitHub environment (rego.Config.GitHubPipeline); its
// error says what to configure.
type PipelineFunc func(repository, environment string) (string, error)

var (
	commitSHA = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	runPath   = regexp.MustCompile(`/actions/runs/([0-9]+)/`)
)

// Request maps the event to the gate request it asks: the repository's
// full name, the branch deployed (ref, else deployment.ref, refs/heads/
// stripped), the GitHub environment as the tollgate environment, the
// pipeline pipelines names, initiator github-actions and the workflow
// run's ID. An event that maps to no valid request is an
// *UnmappableError.
func (e Event) Request(pipelines PipelineFunc) (tollgate.Request, error) {
	if e.Repository == nil || e.Repository.FullName == "" {
		return tollgate.Request{}, unmappable("the event names no repository.full_name")
	}
	ref := e.Ref
	if ref == "" && e.Deployment != nil {
		ref = e.Deployment.Ref
	}
	branch, err := Branch(ref)
	if err != nil {
		return tollgate.Request{}, err
	}
	pipeline, err := pipelines(e.Repository.FullName, e.Environment)
	if err != nil {
		return tollgate.Request{}, unmappable("%v", err)
	}
	r := tollgate.Request{
		Repository: e.Repository.FullName, Branch: branch, Pipeline: pipeline,
		Metadata: tollgate.Metadata{Initiator: Initiator, RunID: e.RunID(), Environment: e.Environment},
	}
	if err := r.Validate(); err != nil {
		return tollgate.Request{}, unmappable("the deployment maps to a request tollgate refuses to record: %v", err)
	}
	return r, nil
}

// Branch is the branch of a deployment's ref: refs/heads/NAME or a bare
// NAME. A tag (refs/tags/…), any other refs/… and a commit SHA are no
// branch: tollgate gates branches, so they are *UnmappableError. A bare
// name is read as a branch even if it names a tag (GitHub sends a bare
// name for both): the branch rules then judge it.
func Branch(ref string) (string, error) {
	const fix = "tollgate gates deployments by branch: deploy from a branch, or limit the environment's deployment branches in GitHub (Settings > Environments) to branches"
	switch {
	case ref == "":
		return "", unmappable("the event names no ref (neither ref nor deployment.ref): %s", fix)
	case strings.HasPrefix(ref, "refs/heads/"):
		return strings.TrimPrefix(ref, "refs/heads/"), nil
	case strings.HasPrefix(ref, "refs/tags/"):
		return "", unmappable("the deployment is of the tag %s, not a branch; %s", strings.TrimPrefix(ref, "refs/tags/"), fix)
	case strings.HasPrefix(ref, "refs/"):
		return "", unmappable("the deployment is of %s, not a branch; %s", ref, fix)
	case commitSHA.MatchString(ref):
		return "", unmappable("the deployment is of the commit %s, not a branch; %s", ref, fix)
	}
	return ref, nil
}

// RunID is the workflow run's ID: workflow_run.id, else the run of the
// callback URL (…/actions/runs/{id}/deployment_protection_rule); "" if
// neither names it.
func (e Event) RunID() string {
	if e.WorkflowRun != nil && e.WorkflowRun.ID > 0 {
		return strconv.FormatInt(e.WorkflowRun.ID, 10)
	}
	if m := runPath.FindStringSubmatch(e.CallbackURL); m != nil {
		return m[1]
	}
	return ""
}
