package github

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate"
)

// MaxComment bounds a review's comment, in bytes. GitHub documents no
// limit for it; 65,536 characters is its limit on comment bodies (issues,
// pull requests, commits), and bytes are never fewer than characters.
const MaxComment = 65536

// Outcome is what a review says.
type Outcome struct {
	State   string // Approved or Rejected
	Summary string // one sentence: what tollgate decided, and why if not a decision
	// Reasons are the reasons of the decision (refusing ones when it
	// refused); Waived the reasons approved exceptions waived.
	Reasons, Waived []tollgate.Reason
	// DecisionID is the decision's, "" when there is none; PublicURL the
	// server's address as people reach it ("" to leave the link out).
	DecisionID, PublicURL string
	// Words are the comment's own words, in the decision's language;
	// English where empty.
	Words Words
}

// Words are what a comment says around the reasons. Cut says how many
// lines were cut: {count}.
type Words struct {
	Decision, Reasons, Waived, Cut string
}

// English is what a comment says without Words.
var English = Words{
	Decision: "Decision",
	Reasons:  "Reasons:",
	Waived:   "Waived by approved exceptions:",
	Cut:      "… {count} more lines cut to fit GitHub's comment limit: read them all on the decision's page.",
}

func (w Words) or(d Words) Words {
	return Words{Decision: cmp.Or(w.Decision, d.Decision), Reasons: cmp.Or(w.Reasons, d.Reasons),
		Waived: cmp.Or(w.Waived, d.Waived), Cut: cmp.Or(w.Cut, d.Cut)}
}

// Comment is the review's comment: the summary, the decision and its page
// on the history page, then every reason and every waived reason, one a
// line. Past MaxComment, whole reason lines are cut, and a last line says
// how many and where to read them all.
func Comment(o Outcome) string {
	w := o.Words.or(English)
	var head strings.Builder
	head.WriteString(o.Summary)
	if o.DecisionID != "" {
		fmt.Fprintf(&head, "\n\n%s %s", w.Decision, o.DecisionID)
		if o.PublicURL != "" {
			fmt.Fprintf(&head, ": %s/ui/decisions/%s", strings.TrimSuffix(o.PublicURL, "/"), o.DecisionID)
		}
	}
	var lines []string
	if len(o.Reasons) > 0 {
		lines = append(lines, "", w.Reasons)
		for _, r := range o.Reasons {
			lines = append(lines, fmt.Sprintf("- %s: %s", r.Code, r.Message))
		}
	}
	if len(o.Waived) > 0 {
		lines = append(lines, "", w.Waived)
		for _, r := range o.Waived {
			lines = append(lines, fmt.Sprintf("- %s: %s", r.Code, r.Message))
		}
	}
	out := head.String()
	for i, line := range lines {
		rest := len(lines) - i
		note := "\n" + strings.ReplaceAll(w.Cut, "{count}", strconv.Itoa(rest))
		if len(out)+1+len(line)+len(note) > MaxComment && len(out)+1+len(strings.Join(lines[i:], "\n")) > MaxComment {
			return truncate(out+note, MaxComment)
		}
		out += "\n" + line
	}
	return truncate(out, MaxComment)
}

// truncate cuts s to at most n bytes, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
