package ui

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
)

// DefaultMaxScan bounds the decisions one page of the table reads to find
// those with a reason code: the store filters on every other field, the
// reason code is looked for here, in the records. A page that reaches the
// bound shows what it found and links to the next one, which carries on.
const DefaultMaxScan = 5000

// ChartDays and DefaultChartLimit bound the chart: the last ChartDays days
// (UTC), and in them at most the DefaultChartLimit newest decisions.
const (
	ChartDays         = 30
	DefaultChartLimit = 10000
)

// filters is the query of the table, as the user typed it.
type filters struct {
	Project, Status, Reason, Since, Until string
}

var reasonCode = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// parseFilters reads the table's query. Empty fields, as a form sends
// them, do not filter; anything else must be valid.
func parseFilters(q url.Values) (filters, tollgate.DecisionFilter, error) {
	for name := range q {
		switch name {
		case "project", "status", "reason", "since", "until", "limit", "cursor":
		default:
			return filters{}, tollgate.DecisionFilter{}, tollgate.Errorf(tollgate.EInvalid,
				"unknown query parameter %q: the filters are project, status, reason, since, until, limit, cursor", name)
		}
	}
	in := filters{Project: q.Get("project"), Status: q.Get("status"), Reason: q.Get("reason"), Since: q.Get("since"), Until: q.Get("until")}
	f := tollgate.DecisionFilter{Project: in.Project, Status: tollgate.Status(in.Status), Cursor: q.Get("cursor")}
	if f.Status != "" && f.Status != tollgate.Accepted && f.Status != tollgate.Refused {
		return in, f, tollgate.Errorf(tollgate.EInvalid, "status must be accepted or refused, got %q", in.Status)
	}
	if in.Reason != "" && !reasonCode.MatchString(in.Reason) {
		return in, f, tollgate.Errorf(tollgate.EInvalid, "reason must be a reason code such as freeze_active, got %q", in.Reason)
	}
	var err error
	if f.Since, err = parseTime("since", in.Since); err != nil {
		return in, f, err
	}
	if f.Until, err = parseTime("until", in.Until); err != nil {
		return in, f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return in, f, tollgate.Errorf(tollgate.EInvalid, "since (%s) must be before until (%s)", in.Since, in.Until)
	}
	f.Limit = tollgate.DefaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > tollgate.MaxPageSize {
			return in, f, tollgate.Errorf(tollgate.EInvalid, "limit must be a number from 1 to %d, got %q", tollgate.MaxPageSize, v)
		}
		f.Limit = n
	}
	return in, f, nil
}

// timeLayouts are what the time fields accept: what a browser's
// datetime-local input sends (read as UTC), a date, or RFC 3339.
var timeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02", time.RFC3339Nano}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, tollgate.Errorf(tollgate.EInvalid,
		"%s must be a UTC time such as 2026-11-23T10:00, a date such as 2026-11-23, or RFC 3339, got %q", name, v)
}

// Decisions is the table, its filters and the chart.
func (u *UI) Decisions(c echo.Context) error {
	ctx := c.Request().Context()
	in, f, err := parseFilters(c.QueryParams())
	if err != nil {
		return err
	}
	first := f.Cursor == ""
	records, next, partial, err := u.find(ctx, f, in.Reason)
	if err != nil {
		return err
	}
	st, err := u.stats(ctx, in.Project)
	if err != nil {
		return err
	}
	body := map[string]any{
		"Filters": in, "Records": records, "Partial": partial, "MaxScan": u.cfg.MaxScan,
		"First": first, "FirstURL": tableURL(in, f.Limit, ""), "Stats": st,
	}
	if next != "" {
		body["NextURL"] = tableURL(in, f.Limit, next)
	}
	return u.render(c, http.StatusOK, "decisions", "Decisions", body)
}

// tableURL is the link to a page of the table with the same filters.
func tableURL(in filters, limit int, cursor string) string {
	q := url.Values{}
	for _, p := range [][2]string{{"project", in.Project}, {"status", in.Status}, {"reason", in.Reason},
		{"since", in.Since}, {"until", in.Until}, {"cursor", cursor}} {
		if p[1] != "" {
			q.Set(p[0], p[1])
		}
	}
	if limit != tollgate.DefaultPageSize {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) == 0 {
		return Prefix
	}
	return Prefix + "?" + q.Encode()
}

// find is one page of the table. Without a reason code it is the store's
// page. With one, it reads the store's pages until it has f.Limit records
// with the code (or Config.MaxScan read: partial), and its cursor continues right
// after the last record it shows.
func (u *UI) find(ctx context.Context, f tollgate.DecisionFilter, reason string) (records []tollgate.Record, next string, partial bool, err error) {
	if reason == "" {
		page, err := u.cfg.Store.Decisions(ctx, f)
		return page.Records, page.NextCursor, false, err
	}
	want := f.Limit
	f.Limit = min(tollgate.MaxPageSize, u.cfg.MaxScan)
	for scanned := 0; ; {
		from := f.Cursor
		page, err := u.cfg.Store.Decisions(ctx, f)
		if err != nil {
			return nil, "", false, err
		}
		for i, r := range page.Records {
			if !hasCode(r.Decision, reason) {
				continue
			}
			records = append(records, r)
			if len(records) < want {
				continue
			}
			if i == len(page.Records)-1 {
				return records, page.NextCursor, false, nil
			}
			// The page ends inside the store's page: the store's cursor
			// after record i is that of the same page cut after it.
			cut := f
			cut.Cursor, cut.Limit = from, i+1
			upTo, err := u.cfg.Store.Decisions(ctx, cut)
			return records, upTo.NextCursor, false, err
		}
		scanned += len(page.Records)
		if page.NextCursor == "" {
			return records, "", false, nil
		}
		f.Cursor = page.NextCursor
		if scanned >= u.cfg.MaxScan {
			return records, f.Cursor, true, nil
		}
	}
}

// hasCode reports whether a decision names code among its reasons, waived
// reasons or warnings.
func hasCode(d tollgate.Decision, code string) bool {
	for _, list := range [][]tollgate.Reason{d.Reasons, d.Waived, d.Warnings} {
		for _, r := range list {
			if r.Code == code {
				return true
			}
		}
	}
	return false
}

// Decision is one decision's page.
func (u *UI) Decision(c echo.Context) error {
	rec, err := u.cfg.Store.Decision(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return u.render(c, http.StatusOK, "decision", "Decision "+rec.Decision.ID, rec)
}

// stats is the chart: decisions per day and the top refusal reasons.
type stats struct {
	From, To          time.Time // [From, To): the window, whole UTC days
	Project           string
	Accepted, Refused int
	Truncated         bool // the window holds more than Config.ChartLimit decisions: the newest were counted
	Days              []day
	Max               int // the most decisions on one day
	Top               []reasonCount
	Codes             []string // every code seen, for the filter's suggestions
}

type day struct {
	Date              time.Time
	Accepted, Refused int
}

type reasonCount struct {
	Code  string
	Count int
}

// topReasons is how many refusal reasons the chart lists.
const topReasons = 10

// stats counts the last ChartDays days of decisions (of one project if
// given), reading at most Config.ChartLimit of them.
func (u *UI) stats(ctx context.Context, project string) (stats, error) {
	to := u.cfg.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	st := stats{From: to.AddDate(0, 0, -ChartDays), To: to, Project: project, Days: make([]day, ChartDays)}
	for i := range st.Days {
		st.Days[i].Date = st.From.AddDate(0, 0, i)
	}
	refusals := map[string]int{}
	seen := map[string]bool{}
	f := tollgate.DecisionFilter{Project: project, Since: st.From, Until: st.To, Limit: tollgate.MaxPageSize}
	for counted := 0; ; {
		page, err := u.cfg.Store.Decisions(ctx, f)
		if err != nil {
			return st, err
		}
		for n, r := range page.Records {
			d := r.Decision
			i := int(d.EvaluatedAt.Sub(st.From) / (24 * time.Hour))
			if i < 0 || i >= ChartDays {
				continue // the store's range is [since, until): cannot happen
			}
			if d.Status == tollgate.Accepted {
				st.Days[i].Accepted++
				st.Accepted++
			} else {
				st.Days[i].Refused++
				st.Refused++
			}
			counted++
			codes := map[string]bool{}
			for _, list := range [][]tollgate.Reason{d.Reasons, d.Waived, d.Warnings} {
				for _, reason := range list {
					seen[reason.Code] = true
				}
			}
			if d.Status == tollgate.Refused {
				for _, reason := range d.Reasons {
					if !codes[reason.Code] {
						codes[reason.Code] = true
						refusals[reason.Code]++
					}
				}
			}
			if counted == u.cfg.ChartLimit {
				st.Truncated = n < len(page.Records)-1 || page.NextCursor != ""
				return st.finish(refusals, seen), nil
			}
		}
		if page.NextCursor == "" {
			return st.finish(refusals, seen), nil
		}
		f.Cursor = page.NextCursor
	}
}

func (st stats) finish(refusals map[string]int, seen map[string]bool) stats {
	for _, d := range st.Days {
		st.Max = max(st.Max, d.Accepted+d.Refused)
	}
	for code, n := range refusals {
		st.Top = append(st.Top, reasonCount{code, n})
	}
	slices.SortFunc(st.Top, func(a, b reasonCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.Code < b.Code {
			return -1
		}
		return 1
	})
	st.Top = st.Top[:min(len(st.Top), topReasons)]
	for _, code := range []string{tollgate.CodeLicenceInvalid, tollgate.CodeLicenceExpired, tollgate.CodeProjectNotManaged,
		tollgate.CodeFreezeActive, tollgate.CodeTimeWindowViolation, tollgate.CodeWeekendViolation, tollgate.CodeBranchNotAllowed,
		tollgate.CodePipelineNotAllowed, tollgate.CodeCooldown, tollgate.CodePolicyError} {
		seen[code] = true
	}
	for code := range seen {
		st.Codes = append(st.Codes, code)
	}
	slices.Sort(st.Codes)
	return st
}

// Chart geometry, in SVG user units.
const (
	chartLeft   = 40
	chartTop    = 10
	chartHeight = 120
	barStep     = 20
	barWidth    = 16
	topBarWidth = 240
)

// bar is one day of the chart, drawn: refused at the bottom, accepted on top.
type bar struct {
	day
	Label                     string // the date under every 7th bar
	X, LabelX                 int
	RefusedY, RefusedHeight   float64
	AcceptedY, AcceptedHeight float64
}

// Bars draws the days.
func (st stats) Bars() []bar {
	bars := make([]bar, len(st.Days))
	scale := 0.0
	if st.Max > 0 {
		scale = float64(chartHeight) / float64(st.Max)
	}
	base := float64(chartTop + chartHeight)
	for i, d := range st.Days {
		b := bar{day: d, X: chartLeft + i*barStep + (barStep-barWidth)/2, LabelX: chartLeft + i*barStep + barStep/2}
		b.RefusedHeight = float64(d.Refused) * scale
		b.RefusedY = base - b.RefusedHeight
		b.AcceptedHeight = float64(d.Accepted) * scale
		b.AcceptedY = b.RefusedY - b.AcceptedHeight
		if (len(st.Days)-1-i)%7 == 0 {
			b.Label = d.Date.Format("01-02")
		}
		bars[i] = b
	}
	return bars
}

// TopWidth is the length of a top reason's bar.
func (st stats) TopWidth(n int) int {
	if len(st.Top) == 0 || st.Top[0].Count == 0 {
		return 0
	}
	return max(1, n*topBarWidth/st.Top[0].Count)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	// clears says when a reason of a closed gate clears.
	"clears": func(at tollgate.ClearTime) string {
		if at.IsZero() {
			return "at no known time"
		}
		return "at " + at.UTC().Format("2006-01-02 15:04:05Z")
	},
	// json shows a value as the API sends it; the template escapes it.
	"json": func(v any) (string, error) {
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		err := enc.Encode(v)
		return buf.String(), err
	},
	"codes": func(list []tollgate.Reason) []string {
		codes := make([]string, len(list))
		for i, r := range list {
			codes[i] = r.Code
		}
		return codes
	},
	"chart": func() map[string]int {
		return map[string]int{
			"Width": chartLeft + ChartDays*barStep + 10, "Height": chartTop + chartHeight + 22,
			"Left": chartLeft, "Top": chartTop, "Base": chartTop + chartHeight, "LabelY": chartTop + chartHeight + 16,
			"Right": chartLeft + ChartDays*barStep, "TopBar": topBarWidth, "BarWidth": barWidth,
		}
	},
}
