package notify

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// shape is the set of JSON paths of v with the kind of value at each
// ("blocks[].text.type string"): what a receiver parses, without values.
func shape(v any, path string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		out[path+" object"] = true
		for k, e := range x {
			shape(e, path+"."+k, out)
		}
	case []any:
		out[path+" array"] = true
		for _, e := range x {
			shape(e, path+"[]", out)
		}
	case string:
		out[path+" string"] = true
	case nil:
		out[path+" null"] = true
	default:
		out[path+" other"] = true
	}
}

func shapeOf(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	out := map[string]bool{}
	shape(v, "", out)
	return out
}

func example(t *testing.T, name string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return shapeOf(t, data)
}

// deliveries of every kind of subject, as the store gives them.
func subjects(t *testing.T) []tollgate.Delivery {
	t.Helper()
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	mk := func(event string, subject any) tollgate.Delivery {
		data, err := json.Marshal(subject)
		if err != nil {
			t.Fatal(err)
		}
		return tollgate.Delivery{ID: "d-1", EventID: event + ":x", Event: event, Sink: "s", OccurredAt: at, Subject: data}
	}
	return []tollgate.Delivery{
		mk(tollgate.EventDecisionRefused, map[string]any{
			"decision": tollgate.Decision{ID: "dec-1", Status: tollgate.Refused, Project: "service-api", Pipeline: "deploy-prod",
				Branch: "main", Environment: "production", EvaluatedAt: at,
				Reasons: []tollgate.Reason{{Code: "freeze_active", Message: "frozen <!channel> & more"}}},
			"request": tollgate.Request{Repository: "org/service-api", Metadata: tollgate.Metadata{Initiator: "ci", RunID: "42"}}}),
		mk(tollgate.EventJobWaiting, map[string]any{"job": tollgate.Job{ID: "job-1", State: tollgate.JobWaiting,
			Repository: "org/service-api", Pipeline: "deploy-prod", Branch: "main", Environment: "production", WaitUntil: at,
			WaitingOn: []tollgate.Reason{{Code: "time_window_violation", Message: "outside 08:00-18:00"}}}}),
		mk(tollgate.EventExceptionRequested, map[string]any{"control": tollgate.Control{ID: "ex-1", Kind: tollgate.KindException,
			State: tollgate.StateRequested, Reason: "not reachable", CreatedBy: "jane", ExpiresAt: at, ApprovalsRequired: 2,
			Project: "service-api", Code: "risk_threshold_exceeded"}}),
		mk(tollgate.EventFreezeStarted, map[string]any{"control": tollgate.Control{ID: "fr-1", Kind: tollgate.KindFreeze,
			State: tollgate.StateActive, Reason: "outage", CreatedBy: "ops", ExpiresAt: at, Environments: []string{"production"}}}),
	}
}

// Slack bodies have the shape of Slack's published incoming webhook
// example: a text fallback and section blocks of mrkdwn text and fields,
// user text escaped.
func TestSlackBodyHasThePublishedShape(t *testing.T) {
	published := example(t, "slack-incoming-webhook.json")
	for _, d := range subjects(t) {
		body, err := Body(rego.SinkSlack, d)
		if err != nil {
			t.Fatalf("%s: %v", d.Event, err)
		}
		for path := range shapeOf(t, body) {
			if !published[path] {
				t.Errorf("%s: %s is not in Slack's example", d.Event, path)
			}
		}
		var msg struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type string `json:"type"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(body, &msg); err != nil || msg.Text == "" || len(msg.Blocks) < 2 || msg.Blocks[0].Type != "section" {
			t.Errorf("%s: %s", d.Event, body)
		}
		text := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(body))
		if d.Event == tollgate.EventDecisionRefused && (strings.Contains(text, "<!channel>") || strings.Count(text, "&lt;!channel&gt; &amp; more") != 2) {
			t.Errorf("a reason's markup reached Slack unescaped: %s", body)
		}
	}
}

// Teams bodies are the message Microsoft documents for incoming webhooks
// (and Workflows take): type message, one Adaptive Card attachment with
// the published envelope; the card uses TextBlock and FactSet only.
func TestTeamsBodyHasThePublishedShape(t *testing.T) {
	published := example(t, "teams-adaptive-card.json")
	envelope := []string{" object", ".type string", ".attachments array", ".attachments[] object",
		".attachments[].contentType string", ".attachments[].contentUrl null", ".attachments[].content object",
		".attachments[].content.$schema string", ".attachments[].content.type string", ".attachments[].content.version string",
		".attachments[].content.body array", ".attachments[].content.body[] object", ".attachments[].content.body[].type string",
		".attachments[].content.body[].text string"}
	for _, p := range envelope {
		if !published[p] {
			t.Fatalf("the published example has no %s: the test is out of date", p)
		}
	}
	var ex map[string]any
	data, _ := os.ReadFile("testdata/teams-adaptive-card.json")
	json.Unmarshal(data, &ex)
	exAttachment := ex["attachments"].([]any)[0].(map[string]any)
	for _, d := range subjects(t) {
		body, err := Body(rego.SinkTeams, d)
		if err != nil {
			t.Fatalf("%s: %v", d.Event, err)
		}
		got := shapeOf(t, body)
		for _, p := range envelope {
			if !got[p] {
				t.Errorf("%s: no %s", d.Event, p)
			}
		}
		var msg map[string]any
		json.Unmarshal(body, &msg)
		attachment := msg["attachments"].([]any)[0].(map[string]any)
		card := attachment["content"].(map[string]any)
		exCard := exAttachment["content"].(map[string]any)
		if msg["type"] != ex["type"] || attachment["contentType"] != exAttachment["contentType"] ||
			card["type"] != exCard["type"] || card["$schema"] != exCard["$schema"] {
			t.Errorf("%s: envelope differs from the published one: %s", d.Event, body)
		}
		for _, el := range card["body"].([]any) {
			if typ := el.(map[string]any)["type"]; !slices.Contains([]any{"TextBlock", "FactSet"}, typ) {
				t.Errorf("%s: card element %v", d.Event, typ)
			}
		}
	}
}

// The webhook body is the subject's fields with the event, its ID and
// time; a requested exception says who may approve it.
func TestWebhookBody(t *testing.T) {
	for _, d := range subjects(t) {
		body, err := Body(rego.SinkWebhook, d)
		if err != nil {
			t.Fatal(err)
		}
		var payload map[string]json.RawMessage
		json.Unmarshal(body, &payload)
		if string(payload["event"]) != `"`+d.Event+`"` || string(payload["id"]) != `"`+d.EventID+`"` || string(payload["occurred_at"]) != `"2026-03-02T09:30:00Z"` {
			t.Errorf("%s: %s", d.Event, body)
		}
		_, hasApprovers := payload["approvers"]
		if hasApprovers != (d.Event == tollgate.EventExceptionRequested) {
			t.Errorf("%s: approvers %v", d.Event, hasApprovers)
		}
		if hasApprovers && string(payload["approvers"]) != `{"scope":"approve","approvals_required":2,"not":"jane","approve":"POST /v1/exceptions/ex-1/approve"}` {
			t.Errorf("approvers %s", payload["approvers"])
		}
		again, _ := Body(rego.SinkWebhook, d)
		if string(again) != string(body) {
			t.Errorf("%s: two bodies of one delivery differ: the signature would too", d.Event)
		}
	}
	for _, bad := range []string{`[]`, `{}`, `{"other": 1}`, `not json`} {
		if _, err := Body(rego.SinkWebhook, tollgate.Delivery{EventID: "e", Subject: json.RawMessage(bad)}); err == nil {
			t.Errorf("Body of subject %s: no error", bad)
		}
	}
}

// The README's signature example is what Sign computes: a receiver that
// follows it accepts tollgate's bodies.
func TestSignMatchesTheReadme(t *testing.T) {
	body := `{"event":"job.accepted","id":"job.accepted:0192f0c1-5f1e-7c3a-9b51-1c2d3e4f5a6b"}`
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := Sign([]byte("change-me"), []byte(body))
	if !strings.Contains(string(readme), "body='"+body+"'") || !strings.Contains(string(readme), "#   "+want+"\n") {
		t.Fatalf("README.md does not show the body %s signed as %s", body, want)
	}
}
