package rego

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/tollgate/tollgate"
)

// Notifications is global_policy.notifications: the sinks tollgate tells
// what happens, and which events each receives. Secrets are never in the
// bundle, which is data anyone who reads the policy reads: a webhook's
// HMAC secret and the Slack and Teams URLs (their path is the token) are
// named by an environment variable or a file, read by the server
// (adapters/notify) when the bundle loads and when it sends.
type Notifications struct {
	// ExceptionExpiringHours is how long before its expiry an approved
	// exception is noticed as exception.expiring; 24 when 0.
	ExceptionExpiringHours int    `json:"exception_expiring_hours"`
	Sinks                  []Sink `json:"sinks"`
}

// DefaultExceptionExpiringHours is ExceptionExpiringHours' default.
const DefaultExceptionExpiringHours = 24

// Sink types.
const (
	SinkWebhook = "webhook" // a JSON body signed with HMAC-SHA256
	SinkSlack   = "slack"   // a Slack incoming webhook
	SinkTeams   = "teams"   // a Microsoft Teams workflow webhook (an Adaptive Card)
)

// Sink is one receiver of notifications. Its URL is given by exactly one
// of URL (a webhook only), URLEnv or URLFile; a webhook's secret by
// exactly one of SecretEnv or SecretFile.
type Sink struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	URL        string   `json:"url"`
	URLEnv     string   `json:"url_env"`
	URLFile    string   `json:"url_file"`
	SecretEnv  string   `json:"secret_env"`
	SecretFile string   `json:"secret_file"`
	Events     []string `json:"events"`

	// Secret is refused: it is here so that a secret written into the
	// bundle is named for what it is, not as an unknown key.
	Secret json.RawMessage `json:"secret"`
}

// Receives reports whether s subscribes to event.
func (s Sink) Receives(event string) bool { return slices.Contains(s.Events, event) }

// Route returns the names of the sinks that receive event: what FanOut
// routes by.
func (n *Notifications) Route(event string) []string {
	if n == nil {
		return nil
	}
	var out []string
	for _, s := range n.Sinks {
		if s.Receives(event) {
			out = append(out, s.Name)
		}
	}
	return out
}

// Sink returns the sink named name.
func (n *Notifications) Sink(name string) (Sink, bool) {
	if n != nil {
		for _, s := range n.Sinks {
			if s.Name == name {
				return s, true
			}
		}
	}
	return Sink{}, false
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (n *Notifications) validate(bad badField) error {
	if n == nil {
		return nil
	}
	if n.ExceptionExpiringHours < 0 {
		return bad("notifications.exception_expiring_hours", "must be 0 (the default, %d) or more, got %d", DefaultExceptionExpiringHours, n.ExceptionExpiringHours)
	}
	names := map[string]bool{}
	for i, s := range n.Sinks {
		field := fmt.Sprintf("notifications.sinks[%d]", i)
		if err := tollgate.CheckIdentifier("the sink name", s.Name); err != nil {
			return bad(field+".name", "%v", err)
		}
		if names[s.Name] {
			return bad(field+".name", "duplicate sink name %q", s.Name)
		}
		if slices.Contains(tollgate.CallbackSinks, s.Name) {
			return bad(field+".name", "%q is the name of a built-in sink (a job's callback): name this one otherwise", s.Name)
		}
		names[s.Name] = true
		if err := s.validate(field, bad); err != nil {
			return err
		}
	}
	return nil
}

func (s Sink) validate(field string, bad badField) error {
	switch s.Type {
	case SinkWebhook, SinkSlack, SinkTeams:
	default:
		return bad(field+".type", "must be %q, %q or %q, got %q", SinkWebhook, SinkSlack, SinkTeams, s.Type)
	}
	if s.Secret != nil {
		return bad(field+".secret", "a secret never goes in the bundle: name an environment variable (secret_env) or a file (secret_file) that holds it")
	}
	given := func(values ...string) int {
		n := 0
		for _, v := range values {
			if v != "" {
				n++
			}
		}
		return n
	}
	if given(s.URL, s.URLEnv, s.URLFile) != 1 {
		return bad(field, "give exactly one of url, url_env or url_file")
	}
	if s.URL != "" {
		if s.Type != SinkWebhook {
			return bad(field+".url", "a %s webhook URL holds its token and never goes in the bundle: name an environment variable (url_env) or a file (url_file) that holds it", s.Type)
		}
		if err := CheckSinkURL(s.URL); err != nil {
			return bad(field+".url", "%v", err)
		}
	}
	switch {
	case s.Type == SinkWebhook && given(s.SecretEnv, s.SecretFile) != 1:
		return bad(field, "a webhook signs its body: give exactly one of secret_env or secret_file, naming where its HMAC secret is")
	case s.Type != SinkWebhook && given(s.SecretEnv, s.SecretFile) != 0:
		return bad(field, "a %s webhook is not signed: remove secret_env and secret_file", s.Type)
	}
	for _, env := range []struct{ key, value string }{{"url_env", s.URLEnv}, {"secret_env", s.SecretEnv}} {
		if env.value != "" && !envName.MatchString(env.value) {
			return bad(field+"."+env.key, "%q is not an environment variable name", env.value)
		}
	}
	for _, file := range []struct{ key, value string }{{"url_file", s.URLFile}, {"secret_file", s.SecretFile}} {
		if file.value != "" && !filepath.IsAbs(file.value) {
			return bad(field+"."+file.key, "%q must be an absolute path", file.value)
		}
	}
	if len(s.Events) == 0 {
		return bad(field+".events", "required: list the events the sink receives, such as [%q]", tollgate.EventDecisionRefused)
	}
	for j, e := range s.Events {
		if !slices.Contains(tollgate.NotificationEvents, e) {
			return bad(fmt.Sprintf("%s.events[%d]", field, j), "unknown event %q: events are %v", e, tollgate.NotificationEvents)
		}
		if slices.Index(s.Events, e) != j {
			return bad(fmt.Sprintf("%s.events[%d]", field, j), "duplicate event %q", e)
		}
	}
	return nil
}

// CheckSinkURL checks the URL of a sink: absolute, http or https, with a
// host. Its error does not repeat the URL, which may hold a token.
func CheckSinkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("not an absolute http or https URL") // the value is not repeated: it may hold a token
	}
	return nil
}
