package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// subject is what an event tells of, decoded: one of its fields is set.
type subject struct {
	Decision *tollgate.Decision `json:"decision"`
	Request  *tollgate.Request  `json:"request"`
	Job      *tollgate.Job      `json:"job"`
	Control  *tollgate.Control  `json:"control"`
}

// Approvers says who may approve a requested exception: the holders of
// an API token with the approve scope, but its requester, as many of them
// as it needs (rego.Controls.Approve).
type Approvers struct {
	Scope             tollgate.Scope `json:"scope"`
	ApprovalsRequired int            `json:"approvals_required"`
	Not               string         `json:"not"`
	Approve           string         `json:"approve"` // the call that approves
}

// Body is what sink type kind is sent for delivery d: the webhook's JSON
// (the event, its ID, when it happened, the subject's fields), or a Slack
// or Teams message. It is the same for every attempt. An event whose
// subject cannot be read is an error: the delivery fails, it is never
// sent half-empty.
func Body(kind string, d tollgate.Delivery) ([]byte, error) {
	var fields map[string]json.RawMessage
	var s subject
	if err := json.Unmarshal(d.Subject, &fields); err != nil || len(fields) == 0 {
		return nil, fmt.Errorf("event %s: its subject is not a JSON object (%v)", d.EventID, err)
	}
	if err := json.Unmarshal(d.Subject, &s); err != nil || (s.Decision == nil && s.Job == nil && s.Control == nil) {
		return nil, fmt.Errorf("event %s: its subject is no decision, job or control (%v)", d.EventID, err)
	}
	switch kind {
	case rego.SinkWebhook:
		for key, value := range map[string]any{"event": d.Event, "id": d.EventID, "occurred_at": d.OccurredAt.UTC()} {
			raw, _ := json.Marshal(value)
			fields[key] = raw
		}
		if a := approvers(d.Event, s); a != nil {
			raw, _ := json.Marshal(a)
			fields["approvers"] = raw
		}
		return json.Marshal(fields)
	case rego.SinkSlack:
		return json.Marshal(slackMessage(summarize(d, s)))
	case rego.SinkTeams:
		return json.Marshal(teamsMessage(summarize(d, s)))
	}
	return nil, fmt.Errorf("unknown sink type %q", kind)
}

func approvers(event string, s subject) *Approvers {
	if event != tollgate.EventExceptionRequested || s.Control == nil {
		return nil
	}
	return &Approvers{Scope: tollgate.ScopeApprove, ApprovalsRequired: max(s.Control.ApprovalsRequired, 1),
		Not: s.Control.CreatedBy, Approve: "POST /v1/exceptions/" + s.Control.ID + "/approve"}
}

// summary is an event told to people: a title, a sentence, and facts.
type summary struct {
	title, text string
	facts       [][2]string
	footer      string
}

// titles are the events' titles, for people.
var titles = map[string]string{
	tollgate.EventDecisionRefused:    "Deployment refused",
	tollgate.EventJobWaiting:         "Job waiting at the gate",
	tollgate.EventJobAccepted:        "Job accepted",
	tollgate.EventJobRefused:         "Job refused",
	tollgate.EventJobExpired:         "Job expired",
	tollgate.EventExceptionRequested: "Exception requested",
	tollgate.EventExceptionApproved:  "Exception approved",
	tollgate.EventExceptionExpiring:  "Exception expiring",
	tollgate.EventFreezeStarted:      "Emergency freeze started",
	tollgate.EventFreezeEnded:        "Emergency freeze ended",
	tollgate.EventIncidentStarted:    "Incident mode started",
	tollgate.EventIncidentEnded:      "Incident mode ended",
}

func summarize(d tollgate.Delivery, s subject) summary {
	title := titles[d.Event]
	if title == "" {
		title = d.Event
	}
	out := summary{title: title, footer: fmt.Sprintf("tollgate %s %s, %s", d.Event, d.EventID, d.OccurredAt.UTC().Format(time.RFC3339))}
	fact := func(name, value string) {
		if value != "" {
			out.facts = append(out.facts, [2]string{name, value})
		}
	}
	switch {
	case s.Decision != nil:
		dec := s.Decision
		repo := ""
		if s.Request != nil {
			repo = s.Request.Repository
		}
		out.text = fmt.Sprintf("%s %s on %s (%s): %s", orDash(repo), dec.Pipeline, dec.Branch, dec.Environment, reasons(dec.Reasons))
		fact("Decision", dec.ID)
		fact("Project", dec.Project)
		if s.Request != nil {
			fact("Initiator", s.Request.Metadata.Initiator)
			fact("Run", s.Request.Metadata.RunID)
		}
	case s.Job != nil:
		j := s.Job
		out.text = fmt.Sprintf("%s %s on %s (%s) is %s", j.Repository, j.Pipeline, j.Branch, j.Environment, j.State)
		switch {
		case len(j.WaitingOn) > 0:
			out.text += ", waiting on: " + reasons(j.WaitingOn)
		case len(j.Reasons) > 0:
			out.text += ": " + reasons(j.Reasons)
		}
		fact("Job", j.ID)
		fact("Wait until", j.WaitUntil.UTC().Format(time.RFC3339))
	case s.Control != nil:
		c := s.Control
		out.text = fmt.Sprintf("%s %s is %s: %s", c.Kind, c.ID, c.State, c.Reason)
		fact("By", c.CreatedBy)
		fact("Expires", c.ExpiresAt.UTC().Format(time.RFC3339))
		fact("Project", c.Project)
		fact("Code", c.Code)
		fact("Environment", c.Environment)
		fact("Environments", strings.Join(c.Environments, ", "))
		if a := approvers(d.Event, s); a != nil {
			fact("Approvers", fmt.Sprintf("%d, with a token of scope %s, not %s: %s", a.ApprovalsRequired, a.Scope, a.Not, a.Approve))
		}
	}
	return out
}

func reasons(rs []tollgate.Reason) string {
	if len(rs) == 0 {
		return "no reason given"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Code + " (" + r.Message + ")"
	}
	return strings.Join(parts, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// slackMessage is a Slack incoming webhook message: text (the
// notification's fallback) and Block Kit sections. Text from users goes
// into mrkdwn escaped, as Slack asks: &, < and > are its markup (a
// reason cannot ping <!channel>).
func slackMessage(s summary) map[string]any {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
	blocks := []map[string]any{
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*" + esc(s.title) + "*\n" + esc(s.text)}},
	}
	if len(s.facts) > 0 {
		fields := make([]map[string]any, 0, len(s.facts))
		for _, f := range s.facts[:min(len(s.facts), 10)] { // Slack takes at most 10 fields
			fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + esc(f[0]) + "*\n" + esc(f[1])})
		}
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": esc(s.footer)}})
	return map[string]any{"text": esc(s.title + ": " + s.text), "blocks": blocks}
}

// teamsMessage is a Teams message carrying one Adaptive Card, as Teams
// Workflows webhooks take it.
func teamsMessage(s summary) map[string]any {
	body := []map[string]any{
		{"type": "TextBlock", "text": s.title, "weight": "Bolder", "size": "Medium", "wrap": true},
		{"type": "TextBlock", "text": s.text, "wrap": true},
	}
	if len(s.facts) > 0 {
		facts := make([]map[string]string, len(s.facts))
		for i, f := range s.facts {
			facts[i] = map[string]string{"title": f[0], "value": f[1]}
		}
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	body = append(body, map[string]any{"type": "TextBlock", "text": s.footer, "isSubtle": true, "size": "Small", "wrap": true})
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"body":    body,
			},
		}},
	}
}
