package rego

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

// ImpactOptions say which recorded decisions an impact analysis
// re-evaluates.
type ImpactOptions struct {
	// Filter selects the history (project, status, since, until…); its
	// Limit and Cursor are the analysis's own.
	Filter tollgate.DecisionFilter
	// Limit is how many decisions to re-evaluate at most, newest first;
	// 0 is every one that matches.
	Limit int
	// Examples is how many decision IDs each group shows; 0 is
	// DefaultImpactExamples.
	Examples int
	// Progress, if set, is called after each page of history.
	Progress func(evaluated, changed int)
	// Pace pauses after each step (a page read, an evaluation) as long as
	// the step took, so that the analysis takes about half a CPU: a
	// reload's replay runs beside the requests.
	Pace bool
	// SkipPolicyErrors leaves out the decisions recorded as policy_error:
	// they cannot become new ones, and re-evaluating a runaway rule costs
	// its whole time budget each time. A reload's replay skips them.
	SkipPolicyErrors bool
}

// MaxPolicyErrorIDs bounds Impact.PolicyErrorIDs.
const MaxPolicyErrorIDs = 1000

// DefaultImpactExamples is how many example decisions a group shows.
const DefaultImpactExamples = 3

// Impact is what a candidate policy would have answered differently from
// the recorded history.
type Impact struct {
	CandidateRevision string        `json:"candidate_revision"`
	Evaluated         int           `json:"evaluated"`
	Changed           int           `json:"changed"`
	Groups            []ImpactGroup `json:"groups"`
	// More is true when Limit stopped the analysis before the end of the
	// history that matches the filter.
	More bool `json:"more"`
	// NewPolicyErrors counts the decisions that were not policy_error and
	// that the candidate turns into policy_error: it could not decide
	// them. A reload refuses such a candidate.
	NewPolicyErrors int `json:"new_policy_errors"`
	// PolicyErrorIDs are those decisions, newest first (at most
	// MaxPolicyErrorIDs), and PolicyErrorMessage the candidate's
	// policy_error message for the newest.
	PolicyErrorIDs     []string `json:"new_policy_error_ids"`
	PolicyErrorMessage string   `json:"new_policy_error_message,omitempty"`
}

// ImpactGroup counts the decisions that change the same way: from one
// status to another, gaining and losing the same reason codes.
type ImpactGroup struct {
	From     tollgate.Status `json:"from"`
	To       tollgate.Status `json:"to"`
	Added    []string        `json:"added"`   // reason codes the candidate adds
	Removed  []string        `json:"removed"` // reason codes it no longer gives
	Count    int             `json:"count"`
	Examples []string        `json:"examples"` // decision IDs, newest first
}

// AnalyseImpact re-evaluates recorded decisions under candidate, each with
// its own recorded request and context (its time, licence, cooldown, scan
// and controls), and groups those whose status or reason codes change.
// Messages and warnings do not count as changes: codes are the API.
func AnalyseImpact(ctx context.Context, history tollgate.HistoryReader, candidate *Policy, opts ImpactOptions) (Impact, error) {
	if opts.Examples <= 0 {
		opts.Examples = DefaultImpactExamples
	}
	impact := Impact{CandidateRevision: candidate.Revision(), Groups: []ImpactGroup{}, PolicyErrorIDs: []string{}}
	step := func(do func()) { do() }
	if opts.Pace {
		step = func(do func()) {
			start := time.Now()
			do()
			pause(ctx, time.Since(start))
		}
	}
	groups := map[string]*ImpactGroup{}
	f := opts.Filter
	f.Cursor = ""
	for {
		f.Limit = tollgate.MaxPageSize
		if opts.Limit > 0 {
			f.Limit = min(f.Limit, opts.Limit-impact.Evaluated)
		}
		var page tollgate.DecisionPage
		var err error
		step(func() { page, err = history.Decisions(ctx, f) })
		if err != nil {
			return Impact{}, err
		}
		for _, rec := range page.Records {
			if err := ctx.Err(); err != nil {
				return Impact{}, err
			}
			if opts.SkipPolicyErrors && policyErrorAt(rec.Decision.Reasons) >= 0 {
				continue
			}
			var d tollgate.Decision
			step(func() { d = candidate.Evaluate(ctx, rec.Request, rec.Context) })
			impact.Evaluated++
			if i := policyErrorAt(d.Reasons); i >= 0 && policyErrorAt(rec.Decision.Reasons) < 0 {
				if impact.NewPolicyErrors == 0 {
					impact.PolicyErrorMessage = d.Reasons[i].Message
				}
				impact.NewPolicyErrors++
				if len(impact.PolicyErrorIDs) < MaxPolicyErrorIDs {
					impact.PolicyErrorIDs = append(impact.PolicyErrorIDs, rec.Decision.ID)
				}
			}
			added, removed := codeChanges(rec.Decision.Reasons, d.Reasons)
			if d.Status == rec.Decision.Status && len(added) == 0 && len(removed) == 0 {
				continue
			}
			impact.Changed++
			key := strings.Join([]string{string(rec.Decision.Status), string(d.Status), strings.Join(added, ","), strings.Join(removed, ",")}, "\x00")
			g := groups[key]
			if g == nil {
				g = &ImpactGroup{From: rec.Decision.Status, To: d.Status, Added: added, Removed: removed}
				groups[key] = g
			}
			g.Count++
			if len(g.Examples) < opts.Examples {
				g.Examples = append(g.Examples, rec.Decision.ID)
			}
		}
		if opts.Progress != nil {
			opts.Progress(impact.Evaluated, impact.Changed)
		}
		if page.NextCursor == "" {
			break
		}
		if opts.Limit > 0 && impact.Evaluated >= opts.Limit {
			impact.More = true
			break
		}
		f.Cursor = page.NextCursor
	}
	for _, g := range groups {
		impact.Groups = append(impact.Groups, *g)
	}
	slices.SortFunc(impact.Groups, func(a, b ImpactGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To),
			slices.Compare(a.Added, b.Added), slices.Compare(a.Removed, b.Removed))
	})
	return impact, nil
}

// codeChanges is the reason codes of after that before lacks, and those of
// before that after lacks, sorted, never nil.
func codeChanges(before, after []tollgate.Reason) (added, removed []string) {
	has := func(list []tollgate.Reason, code string) bool {
		return slices.ContainsFunc(list, func(r tollgate.Reason) bool { return r.Code == code })
	}
	added, removed = []string{}, []string{}
	for _, r := range after {
		if !has(before, r.Code) && !slices.Contains(added, r.Code) {
			added = append(added, r.Code)
		}
	}
	for _, r := range before {
		if !has(after, r.Code) && !slices.Contains(removed, r.Code) {
			removed = append(removed, r.Code)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}
