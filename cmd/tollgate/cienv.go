package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/tollgate/tollgate"
)

// ciField is the value a CI system's own variables give one request
// field (keyed by the check flag it stands in for).
type ciField struct {
	value string
	from  string // the variable it was read from
}

// ciRequest reads the request fields of the CI system check runs in, from
// the variables the system sets in every job: GitHub Actions
// (GITHUB_ACTIONS=true) or GitLab CI (GITLAB_CI=true). It returns the
// system's name ("" outside both) and the fields it has, by flag name. On
// a tag, neither gives a branch: the tag is not one, --branch must say
// which branch the release comes from.
func ciRequest(lookup func(string) (string, bool)) (system string, fields map[string]ciField) {
	get := func(name string) string { v, _ := lookup(name); return v }
	fields = map[string]ciField{}
	set := func(flag string, names ...string) {
		for _, name := range names {
			if v := get(name); v != "" {
				fields[flag] = ciField{value: v, from: name}
				return
			}
		}
	}
	switch {
	case get("GITHUB_ACTIONS") == "true":
		system = "GitHub Actions"
		set("repository", "GITHUB_REPOSITORY")
		set("branch", "GITHUB_HEAD_REF") // a pull request's branch
		if _, ok := fields["branch"]; !ok && get("GITHUB_REF_TYPE") == "branch" {
			set("branch", "GITHUB_REF_NAME")
		}
		set("pipeline", "GITHUB_JOB")
		set("initiator", "GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR")
		set("run-id", "GITHUB_RUN_ID")
	case get("GITLAB_CI") == "true":
		system = "GitLab CI"
		set("repository", "CI_PROJECT_PATH")
		if get("CI_COMMIT_TAG") == "" {
			set("branch", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME")
		}
		set("pipeline", "CI_JOB_NAME")
		set("environment", "CI_ENVIRONMENT_NAME")
		set("initiator", "GITLAB_USER_LOGIN")
		set("run-id", "CI_PIPELINE_ID")
	}
	return system, fields
}

// fillFromCI sets each request flag left empty to the CI system's value,
// and says on w which it took from where.
func fillFromCI(w io.Writer, system string, fields map[string]ciField, flags map[string]*string) {
	var took []string
	for _, name := range []string{"repository", "branch", "pipeline", "environment", "initiator", "run-id"} {
		f, ok := fields[name]
		if !ok || *flags[name] != "" {
			continue
		}
		*flags[name] = f.value
		took = append(took, fmt.Sprintf("--%s %s (%s)", name, f.value, f.from))
	}
	if len(took) > 0 {
		fmt.Fprintf(w, "tollgate check: from %s: %s\n", system, strings.Join(took, ", "))
	}
}

// checkResult is what check reports to CI: a decision, or why there is
// none (Status "error").
type checkResult struct {
	Status     string // accepted, refused, expired, cancelled, error
	DecisionID string
	JobID      string
	Reasons    []tollgate.Reason
	Warnings   []tollgate.Reason
	Message    string // why there is no decision
}

// appendOutputs appends r to path ("": nowhere) as NAME=VALUE lines.
func appendOutputs(path string, r checkResult) error {
	if path == "" {
		return nil
	}
	for _, v := range []string{r.Status, r.DecisionID, r.JobID} {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("--outputs: the server's answer %q has a line break: not written", v)
		}
	}
	var b strings.Builder
	// Empty values are left out: a GitLab dotenv report refuses them.
	fmt.Fprintf(&b, "TOLLGATE_STATUS=%s\n", r.Status)
	if r.DecisionID != "" {
		fmt.Fprintf(&b, "TOLLGATE_DECISION_ID=%s\n", r.DecisionID)
	}
	if r.JobID != "" {
		fmt.Fprintf(&b, "TOLLGATE_JOB_ID=%s\n", r.JobID)
	}
	return appendFile("--outputs", path, b.String())
}

// appendSummary appends r to path ("": nowhere) as Markdown: a heading
// with the status, a table of the reasons and warnings, the decision's
// page on server.
func appendSummary(path, server string, r checkResult) error {
	if path == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### tollgate: %s\n\n", r.Status)
	if r.Message != "" {
		fmt.Fprintf(&b, "No decision: %s\n\n", markdownCell(r.Message))
	}
	if len(r.Reasons)+len(r.Warnings) > 0 {
		b.WriteString("| | Code | Message |\n|---|---|---|\n")
		for _, list := range []struct {
			kind    string
			reasons []tollgate.Reason
		}{{"reason", r.Reasons}, {"warning", r.Warnings}} {
			for _, x := range list.reasons {
				fmt.Fprintf(&b, "| %s | `%s` | %s |\n", list.kind, markdownCell(x.Code), markdownCell(x.Message))
			}
		}
		b.WriteString("\n")
	}
	if r.DecisionID != "" {
		fmt.Fprintf(&b, "Decision [`%s`](%s/ui/decisions/%s)", r.DecisionID, server, url.PathEscape(r.DecisionID))
		if r.JobID != "" {
			fmt.Fprintf(&b, ", job `%s`", r.JobID)
		}
		b.WriteString("\n\n")
	}
	return appendFile("--summary", path, b.String())
}

// markdownCell makes s safe in a Markdown table cell: one line, no cell
// break, no HTML.
func markdownCell(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ", "|", `\|`, "<", "&lt;", ">", "&gt;", "`", "'").Replace(s)
}

func appendFile(flag, path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", flag, err)
	}
	return f.Close()
}
