package rego

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// notificationsConfig is a global policy with the notifications given as
// JSON.
func notificationsConfig(t *testing.T, notifications string) map[string]any {
	t.Helper()
	var n any
	if err := json.Unmarshal([]byte(notifications), &n); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"timezone": "Europe/Paris", "notifications": n}
}

func TestNotificationsConfig(t *testing.T) {
	good := `{"exception_expiring_hours": 12, "sinks": [
		{"name": "audit", "type": "webhook", "url": "https://hooks.example.com/tollgate", "secret_env": "AUDIT_SECRET",
		 "events": ["decision.refused", "job.accepted"]},
		{"name": "releases", "type": "slack", "url_env": "SLACK_URL", "events": ["job.accepted", "freeze.started"]},
		{"name": "ops", "type": "teams", "url_file": "/run/secrets/teams-url", "events": ["incident.started"]}]}`
	c, err := ParseConfig("", notificationsConfig(t, good), map[string]any{})
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	n := c.GlobalPolicy.Notifications
	if got := n.Route("job.accepted"); !slices.Equal(got, []string{"audit", "releases"}) {
		t.Errorf("Route(job.accepted) = %v", got)
	}
	if got := n.Route("exception.expiring"); len(got) != 0 {
		t.Errorf("Route(exception.expiring) = %v, want none", got)
	}
	if s, ok := n.Sink("ops"); !ok || s.URLFile != "/run/secrets/teams-url" || n.ExceptionExpiringHours != 12 {
		t.Errorf("Sink(ops) = %+v, %v", s, ok)
	}
	var none *Notifications
	if none.Route("job.accepted") != nil {
		t.Error("no notifications route an event")
	}

	for _, tc := range []struct{ name, sink, field, want string }{
		{"literal secret", `{"name": "a", "type": "webhook", "url": "https://h.example/x", "secret": "hunter2", "events": ["job.accepted"]}`,
			"notifications.sinks[0].secret", "never goes in the bundle"},
		{"literal slack url", `{"name": "a", "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XXXX", "events": ["job.accepted"]}`,
			"notifications.sinks[0].url", "holds its token"},
		{"literal teams url", `{"name": "a", "type": "teams", "url": "https://example.webhook.office.com/x", "events": ["job.accepted"]}`,
			"notifications.sinks[0].url", "holds its token"},
		{"unknown type", `{"name": "a", "type": "email", "url_env": "U", "events": ["job.accepted"]}`,
			"notifications.sinks[0].type", `got "email"`},
		{"unknown event", `{"name": "a", "type": "slack", "url_env": "U", "events": ["job.acepted"]}`,
			"notifications.sinks[0].events[0]", `unknown event "job.acepted"`},
		{"no events", `{"name": "a", "type": "slack", "url_env": "U", "events": []}`,
			"notifications.sinks[0].events", "required"},
		{"webhook unsigned", `{"name": "a", "type": "webhook", "url": "https://h.example/x", "events": ["job.accepted"]}`,
			"notifications.sinks[0]", "secret_env or secret_file"},
		{"two urls", `{"name": "a", "type": "slack", "url_env": "U", "url_file": "/u", "events": ["job.accepted"]}`,
			"notifications.sinks[0]", "exactly one of url, url_env or url_file"},
		{"bad env name", `{"name": "a", "type": "slack", "url_env": "MY-URL", "events": ["job.accepted"]}`,
			"notifications.sinks[0].url_env", "not an environment variable name"},
		{"relative file", `{"name": "a", "type": "teams", "url_file": "teams-url", "events": ["job.accepted"]}`,
			"notifications.sinks[0].url_file", "absolute path"},
		{"not http", `{"name": "a", "type": "webhook", "url": "ftp://h.example/x", "secret_env": "S", "events": ["job.accepted"]}`,
			"notifications.sinks[0].url", "http or https"},
		{"unknown key", `{"name": "a", "type": "slack", "url_env": "U", "events": ["job.accepted"], "channel": "#ops"}`,
			"", "channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("", notificationsConfig(t, `{"sinks": [`+tc.sink+`]}`), map[string]any{})
			var ce *ConfigError
			if !errors.As(err, &ce) || (tc.field != "" && ce.Field != tc.field) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig = %v; want a ConfigError at %q saying %q", err, tc.field, tc.want)
			}
		})
	}
	_, err = ParseConfig("", notificationsConfig(t, `{"sinks": [
		{"name": "a", "type": "slack", "url_env": "U", "events": ["job.accepted"]},
		{"name": "a", "type": "teams", "url_env": "V", "events": ["job.accepted"]}]}`), map[string]any{})
	if err == nil || !strings.Contains(err.Error(), `duplicate sink name "a"`) {
		t.Fatalf("two sinks named a: %v", err)
	}
	_, err = ParseConfig("", notificationsConfig(t, `{"sinks": [
		{"name": "github", "type": "slack", "url_env": "U", "events": ["job.accepted"]}]}`), map[string]any{})
	if err == nil || !strings.Contains(err.Error(), `"github" is the name of a built-in sink`) {
		t.Fatalf("a sink named github: %v", err)
	}
}

// The engine's Check rejects the first bundle and a candidate as a bad
// configuration does: the active bundle keeps serving.
func TestEngineCheckRejects(t *testing.T) {
	dir := bundleCopy(t)
	removeTests(t, dir)
	refuse := false
	engine, err := NewEngine(context.Background(), dir, EngineOptions{Check: func(b *Bundle) error {
		if b.Config == nil {
			t.Error("Check got a bundle without its configuration")
		}
		if refuse {
			return errors.New("notifications.sinks[0]: environment variable SLACK_URL is not set")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := engine.Status().Revision
	refuse = true
	editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
	if err := engine.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "SLACK_URL") {
		t.Fatalf("Reload = %v, want Check's error", err)
	}
	if st := engine.Status(); st.Revision != before || !strings.Contains(st.LastError, "SLACK_URL") {
		t.Fatalf("status after a refused candidate: %+v", st)
	}
	if _, err := NewEngine(context.Background(), dir, EngineOptions{Check: func(*Bundle) error { return errors.New("no") },
		Now: func() time.Time { return time.Now() }}); err == nil {
		t.Fatal("NewEngine served a bundle Check refused")
	}
}

// The README's notifications example is a configuration that loads.
func TestReadmeNotificationsExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Notifications\n")
	_, block, ok := strings.Cut(section, "```json\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```json block under ## Notifications")
	}
	var gp map[string]any
	if err := json.Unmarshal([]byte(`{"timezone": "Europe/Paris", `+block+`}`), &gp); err != nil {
		t.Fatalf("README's example: %v", err)
	}
	c, err := ParseConfig("", gp, map[string]any{})
	if err != nil {
		t.Fatalf("README's example does not load: %v", err)
	}
	if n := c.GlobalPolicy.Notifications; n == nil || len(n.Sinks) != 3 {
		t.Fatalf("README's example: %+v", n)
	}
}
