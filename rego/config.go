package rego

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/glob"

	"github.com/tollgate/tollgate"
)

// Config is the bundle's configuration: the two seed files, typed. The Rego
// reads the same documents; these types exist to validate them at load time,
// so that a typo fails the load instead of silently changing a decision.
//
// Of the projects registry, validated whole, Config keeps only what Go
// reads (repositories, pipelines and their cooldowns): the policy's data
// holds the registry, and a second typed copy would be most of a large
// registry's memory (10 MB of 60 at 10,000 projects).
type Config struct {
	GlobalPolicy GlobalPolicy

	byRepository map[string]string             // repository -> project name
	pipelines    map[string][]pipelineCooldown // project name -> its pipelines
	github       map[string]*GitHubMapping     // project name -> its github mapping
	languages    map[string]string             // project name -> its default language, if it names one
}

// pipelineCooldown is a pipeline of a project and its cooldown_minutes.
type pipelineCooldown struct {
	name    string
	minutes int
}

// GlobalPolicy is config/global_policy/data.json.
type GlobalPolicy struct {
	Timezone          string           `json:"timezone"`
	Language          string           `json:"language"` // of messages, by default; DefaultLanguage when ""
	UnmanagedProjects string           `json:"unmanaged_projects"`
	Freezes           []Freeze         `json:"freezes"`
	TimeWindows       []TimeWindow     `json:"time_windows"`
	Weekends          *Weekends        `json:"weekends"`
	Exceptions        *ExceptionPolicy `json:"exceptions"`
	Incident          *IncidentPolicy  `json:"incident"`
	Jobs              *JobPolicy       `json:"jobs"`
	Notifications     *Notifications   `json:"notifications"` // notifications.go
}

// JobPolicy bounds gate jobs (POST /v1/jobs). Zero fields take the
// server's defaults.
type JobPolicy struct {
	// MaxWaitHours is the latest wait_until a job may ask for, in hours
	// from its submission; DefaultJobMaxWaitHours when 0.
	MaxWaitHours int `json:"max_wait_hours"`
	// MaxOpen is the most jobs open at once, all repositories together;
	// MaxOpenPerRepository the most of one repository.
	MaxOpen              int `json:"max_open"`
	MaxOpenPerRepository int `json:"max_open_per_repository"`
}

// DefaultJobMaxWaitHours is how long a gate job may wait unless the global
// policy says otherwise.
const DefaultJobMaxWaitHours = 24

// ExceptionPolicy bounds exceptions: how long they may last and how many
// approvers they need.
type ExceptionPolicy struct {
	// MaxDays is the longest an exception may last; DefaultExceptionMaxDays
	// when 0.
	MaxDays int `json:"max_days"`
	// Approvals is the number of approvers an exception for an environment
	// needs, by environment; 1 for environments not listed. An exception for
	// every environment needs the largest.
	Approvals map[string]int `json:"approvals"`
	// BreakGlassMaxHours is the longest a break-glass may last;
	// DefaultBreakGlassMaxHours when 0.
	BreakGlassMaxHours int `json:"break_glass_max_hours"`
}

// IncidentPolicy says what incident mode allows.
type IncidentPolicy struct {
	PipelineTypes []string `json:"pipeline_types"` // the types that may run during an incident
	RelaxCooldown bool     `json:"relax_cooldown"` // cooldowns do not apply during an incident
	MaxHours      int      `json:"max_hours"`      // the longest an incident may last; DefaultIncidentMaxHours when 0
}

// Defaults of ExceptionPolicy and IncidentPolicy.
const (
	DefaultExceptionMaxDays   = 30
	DefaultBreakGlassMaxHours = 4
	DefaultIncidentMaxHours   = 24
)

// Freeze forbids deployments once, from Start (inclusive) to End
// (exclusive), or again and again on the local days of one schedule:
// Weekly, Monthly or Yearly.
type Freeze struct {
	ID           string         `json:"id"`
	Start        string         `json:"start"`
	End          string         `json:"end"`
	Weekly       *WeeklyFreeze  `json:"weekly"`
	Monthly      *MonthlyFreeze `json:"monthly"`
	Yearly       *YearlyFreeze  `json:"yearly"`
	Environments []string       `json:"environments"`
	Reason       string         `json:"reason"`
}

// LocalHours is the part of a day a recurring freeze covers: from Start
// (inclusive) to End (exclusive), local time, "HH:MM", End "24:00" for
// midnight.
type LocalHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// WeeklyFreeze recurs on weekdays.
type WeeklyFreeze struct {
	Days []string `json:"days"`
	LocalHours
}

// MonthlyFreeze recurs on days of the month (1-31; a day a month lacks
// never comes in that month).
type MonthlyFreeze struct {
	Days []int `json:"days"`
	LocalHours
}

// YearlyFreeze recurs on dates, "MM-DD".
type YearlyFreeze struct {
	Dates []string `json:"dates"`
	LocalHours
}

// TimeWindow allows deployments on Days from Start (inclusive) to End
// (exclusive), local time, "HH:MM".
type TimeWindow struct {
	Days         []string `json:"days"`
	Start        string   `json:"start"`
	End          string   `json:"end"`
	Environments []string `json:"environments"`
}

// Weekends refuses local Saturdays and Sundays unless Allowed.
type Weekends struct {
	Allowed      bool     `json:"allowed"`
	Environments []string `json:"environments"`
}

// Project is one entry of config/projects/data.json.
type Project struct {
	Repositories    []string               `json:"repositories"`
	AllowedBranches []string               `json:"allowed_branches"`
	Enforcement     string                 `json:"enforcement"`
	Language        string                 `json:"language"` // of its messages, unless the reader asks for another
	Pipelines       map[string]Pipeline    `json:"pipelines"`
	Environments    map[string]Environment `json:"environments"`
	Risk            *Risk                  `json:"risk"`
	GitHub          *GitHubMapping         `json:"github"`
}

// GitHubMapping says which pipeline gates a deployment that GitHub asks
// about through a deployment protection rule (POST
// /v1/integrations/github/webhook): by the workflow file of the run
// (".github/workflows/deploy.yml"), else by the name of the GitHub
// environment deployed to.
type GitHubMapping struct {
	Workflows    map[string]string `json:"workflows"`
	Environments map[string]string `json:"environments"`
	// WaitHours is how long a deployment to a GitHub environment waits at
	// the gate, by environment, in place of serve's --github-wait: 1 to
	// MaxGitHubWaitHours.
	WaitHours map[string]int `json:"wait_hours"`
}

// MaxGitHubWaitHours is GitHub's own limit: a job waiting on a custom
// deployment protection rule fails after 30 days.
const MaxGitHubWaitHours = 30 * 24

// Risk configures the security gates of a project (risk.rego). Nil fields
// leave their gate off.
type Risk struct {
	MaxCVSS          *float64 `json:"max_cvss"`
	MaxRisk          *float64 `json:"max_risk"`
	MaxUnknowns      *int     `json:"max_unknowns"`
	BlockNewFindings bool     `json:"block_new_findings"`
	RequireScan      bool     `json:"require_scan"`
	MaxScanAgeHours  *int     `json:"max_scan_age_hours"`
	EPSSWeight       *float64 `json:"epss_weight"`
}

func (r *Risk) validate() (field string, err error) {
	switch {
	case r == nil:
	case r.MaxCVSS != nil && (*r.MaxCVSS < 0 || *r.MaxCVSS > 10):
		return "max_cvss", fmt.Errorf("must be a CVSS score from 0 to 10, got %v", *r.MaxCVSS)
	case r.MaxRisk != nil && *r.MaxRisk < 0:
		return "max_risk", fmt.Errorf("must be 0 or more, got %v", *r.MaxRisk)
	case r.MaxUnknowns != nil && *r.MaxUnknowns < 0:
		return "max_unknowns", fmt.Errorf("must be 0 or more, got %d", *r.MaxUnknowns)
	case r.MaxScanAgeHours != nil && *r.MaxScanAgeHours <= 0:
		return "max_scan_age_hours", fmt.Errorf("must be 1 or more, got %d", *r.MaxScanAgeHours)
	case r.EPSSWeight != nil && (*r.EPSSWeight < 0 || *r.EPSSWeight > 1):
		return "epss_weight", fmt.Errorf("must be from 0 to 1, got %v", *r.EPSSWeight)
	}
	return "", nil
}

// Pipeline is one pipeline of a project.
type Pipeline struct {
	Type            string   `json:"type"`
	CooldownMinutes int      `json:"cooldown_minutes"`
	AllowedBranches []string `json:"allowed_branches"`
}

// Environment lists the pipeline types a project allows in one environment,
// and may replace the project's risk settings there.
type Environment struct {
	PipelineTypes []string `json:"pipeline_types"`
	Risk          *Risk    `json:"risk"`
}

// Data paths of the configuration, relative to the bundle root, and the files
// they come from (OPA's convention: directory = data path).
const (
	globalPolicyFile = "config/global_policy/data.json"
	projectsFile     = "config/projects/data.json"
)

// ConfigError names the file and the field at fault.
type ConfigError struct {
	File, Field, Problem string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Problem)
}

// ParseConfig validates the configuration documents as loaded from a bundle
// (data.config.global_policy and data.config.projects) and returns them typed.
// dir prefixes the file names in errors.
func ParseConfig(dir string, globalPolicy, projects any) (*Config, error) {
	gpFile, prFile := joinPath(dir, globalPolicyFile), joinPath(dir, projectsFile)
	var c Config
	var err error
	if globalPolicy == nil {
		return nil, &ConfigError{File: gpFile, Problem: "missing: the bundle must define the global policy"}
	}
	if err := decodeConfig(gpFile, globalPolicy, &c.GlobalPolicy); err != nil {
		return nil, err
	}
	if projects == nil {
		return nil, &ConfigError{File: prFile, Problem: "missing: the bundle must define the projects registry (it may be {})"}
	}
	var registry map[string]Project
	if err := decodeConfig(prFile, projects, &registry); err != nil {
		return nil, err
	}
	if err := c.GlobalPolicy.validate(gpFile); err != nil {
		return nil, err
	}
	if c.byRepository, err = validateProjects(prFile, registry); err != nil {
		return nil, err
	}
	c.pipelines = make(map[string][]pipelineCooldown, len(registry))
	for name, p := range registry {
		pipelines := make([]pipelineCooldown, 0, len(p.Pipelines))
		for pname, pl := range p.Pipelines {
			pipelines = append(pipelines, pipelineCooldown{name: pname, minutes: pl.CooldownMinutes})
		}
		c.pipelines[name] = pipelines
		if p.Language != "" {
			if c.languages == nil {
				c.languages = map[string]string{}
			}
			c.languages[name] = p.Language
		}
		if p.GitHub != nil {
			if c.github == nil {
				c.github = map[string]*GitHubMapping{}
			}
			c.github[name] = p.GitHub
		}
	}
	return &c, nil
}

func joinPath(dir, file string) string {
	if dir == "" {
		return file
	}
	return strings.TrimSuffix(dir, "/") + "/" + file
}

func decodeConfig(file string, doc any, v any) error {
	raw, err := json.Marshal(doc)
	if err != nil {
		return &ConfigError{File: file, Problem: err.Error()}
	}
	if err := tollgate.DecodeStrict(raw, v); err != nil {
		return &ConfigError{File: file, Problem: err.Error()}
	}
	return nil
}

var (
	weekdays  = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	clockTime = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$`)
)

func (g *GlobalPolicy) validate(file string) error {
	bad := badField(func(field, format string, args ...any) error {
		return &ConfigError{File: file, Field: field, Problem: fmt.Sprintf(format, args...)}
	})
	tz := g.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return bad("timezone", "unknown time zone %q: use an IANA name such as \"Europe/Paris\"", g.Timezone)
	}
	switch g.UnmanagedProjects {
	case "", "refuse", "accept":
	default:
		return bad("unmanaged_projects", "must be \"refuse\" or \"accept\", got %q", g.UnmanagedProjects)
	}
	ids := map[string]bool{}
	for i, f := range g.Freezes {
		field := fmt.Sprintf("freezes[%d]", i)
		if f.ID == "" {
			return bad(field+".id", "required: name the freeze so that refusals can say which one applies")
		}
		if ids[f.ID] {
			return bad(field+".id", "duplicate freeze id %q", f.ID)
		}
		ids[f.ID] = true
		if err := f.validate(field, bad); err != nil {
			return err
		}
		if err := validateEnvironments(f.Environments); err != nil {
			return bad(field+".environments", "%v", err)
		}
	}
	for i, w := range g.TimeWindows {
		field := fmt.Sprintf("time_windows[%d]", i)
		if len(w.Days) == 0 {
			return bad(field+".days", "required: list the weekdays of the window, such as [\"monday\"]")
		}
		for j, d := range w.Days {
			if !slices.Contains(weekdays, d) {
				return bad(fmt.Sprintf("%s.days[%d]", field, j), "%q is not a weekday: use lower-case English names, \"monday\" to \"sunday\"", d)
			}
		}
		if err := (LocalHours{w.Start, w.End}).validate(field, "a window", bad); err != nil {
			return err
		}
		if err := validateEnvironments(w.Environments); err != nil {
			return bad(field+".environments", "%v", err)
		}
	}
	if g.Weekends != nil {
		if err := validateEnvironments(g.Weekends.Environments); err != nil {
			return bad("weekends.environments", "%v", err)
		}
	}
	if e := g.Exceptions; e != nil {
		if e.MaxDays < 0 {
			return bad("exceptions.max_days", "must be 0 (the default, %d) or more, got %d", DefaultExceptionMaxDays, e.MaxDays)
		}
		if e.BreakGlassMaxHours < 0 {
			return bad("exceptions.break_glass_max_hours", "must be 0 (the default, %d) or more, got %d", DefaultBreakGlassMaxHours, e.BreakGlassMaxHours)
		}
		for env, n := range e.Approvals {
			if n < 1 || n > 10 {
				return bad("exceptions.approvals."+env, "must be from 1 to 10 approvers, got %d", n)
			}
		}
	}
	if err := g.Notifications.validate(bad); err != nil {
		return err
	}
	if i := g.Incident; i != nil {
		if i.MaxHours < 0 {
			return bad("incident.max_hours", "must be 0 (the default, %d) or more, got %d", DefaultIncidentMaxHours, i.MaxHours)
		}
		if i.PipelineTypes != nil && len(i.PipelineTypes) == 0 {
			return bad("incident.pipeline_types", "empty list: omit the key, which also lets no pipeline run during an incident, or list the types that may")
		}
	}
	if j := g.Jobs; j != nil {
		for _, f := range []struct {
			name string
			n    int
		}{{"max_wait_hours", j.MaxWaitHours}, {"max_open", j.MaxOpen}, {"max_open_per_repository", j.MaxOpenPerRepository}} {
			if f.n < 0 {
				return bad("jobs."+f.name, "must be 0 (the server's default) or more, got %d", f.n)
			}
		}
	}
	return nil
}

// badField makes the ConfigError of one field.
type badField func(field, format string, args ...any) error

func (f Freeze) validate(field string, bad badField) error {
	schedules := 0
	for _, set := range []bool{f.Start != "" || f.End != "", f.Weekly != nil, f.Monthly != nil, f.Yearly != nil} {
		if set {
			schedules++
		}
	}
	if schedules != 1 {
		return bad(field, "give exactly one of start+end (a one-off freeze), weekly, monthly or yearly; it has %d", schedules)
	}
	switch {
	case f.Weekly != nil:
		field += ".weekly"
		if len(f.Weekly.Days) == 0 {
			return bad(field+".days", "required: list the weekdays of the freeze, such as [\"friday\"]")
		}
		for j, d := range f.Weekly.Days {
			if !slices.Contains(weekdays, d) {
				return bad(fmt.Sprintf("%s.days[%d]", field, j), "%q is not a weekday: use lower-case English names, \"monday\" to \"sunday\"", d)
			}
		}
		return f.Weekly.LocalHours.validate(field, "a freeze", bad)
	case f.Monthly != nil:
		field += ".monthly"
		if len(f.Monthly.Days) == 0 {
			return bad(field+".days", "required: list the days of the month of the freeze, such as [1, 15]")
		}
		for j, d := range f.Monthly.Days {
			if d < 1 || d > 31 {
				return bad(fmt.Sprintf("%s.days[%d]", field, j), "%d is not a day of the month: use 1 to 31", d)
			}
		}
		return f.Monthly.LocalHours.validate(field, "a freeze", bad)
	case f.Yearly != nil:
		field += ".yearly"
		if len(f.Yearly.Dates) == 0 {
			return bad(field+".dates", "required: list the dates of the freeze, \"MM-DD\", such as [\"12-24\"]")
		}
		for j, d := range f.Yearly.Dates {
			// 2024 is a leap year: "02-29" is a date that some years have.
			if len(d) != 5 || !isDate("2024-"+d) {
				return bad(fmt.Sprintf("%s.dates[%d]", field, j), "%q is not a date \"MM-DD\" such as \"12-24\"", d)
			}
		}
		return f.Yearly.LocalHours.validate(field, "a freeze", bad)
	}
	start, err := time.Parse(time.RFC3339, f.Start)
	if err != nil {
		return bad(field+".start", "must be an RFC 3339 time with an offset, such as \"2026-11-27T00:00:00+01:00\", got %q", f.Start)
	}
	end, err := time.Parse(time.RFC3339, f.End)
	if err != nil {
		return bad(field+".end", "must be an RFC 3339 time with an offset, such as \"2026-11-30T00:00:00+01:00\", got %q", f.End)
	}
	if !start.Before(end) {
		return bad(field, "start %s must be before end %s", f.Start, f.End)
	}
	return nil
}

func isDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// validate checks the local hours of what (a window, a freeze) at field.
func (h LocalHours) validate(field, what string, bad badField) error {
	if !clockTime.MatchString(h.Start) || h.Start == "24:00" {
		return bad(field+".start", "must be a local time \"HH:MM\" from 00:00 to 23:59, got %q", h.Start)
	}
	if !clockTime.MatchString(h.End) {
		return bad(field+".end", "must be a local time \"HH:MM\" from 00:01 to 24:00, got %q", h.End)
	}
	if h.Start >= h.End {
		return bad(field, "start %s must be before end %s (%s cannot cross midnight: split it in two)", h.Start, h.End, what)
	}
	return nil
}

// validateProjects checks the registry and returns its repository index.
func validateProjects(file string, projects map[string]Project) (map[string]string, error) {
	bad := func(field, format string, args ...any) (map[string]string, error) {
		return nil, &ConfigError{File: file, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	owner := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(projects)) {
		p := projects[name]
		field := name
		if err := tollgate.CheckIdentifier("the project name", name); err != nil {
			return bad(field, "%v", err)
		}
		if len(p.Repositories) == 0 {
			return bad(field+".repositories", "required: list the repositories of the project, such as [\"org/%s\"]", name)
		}
		for _, repo := range p.Repositories {
			if err := tollgate.CheckIdentifier("repository", repo); err != nil {
				return bad(field+".repositories", "%v", err)
			}
			if other, ok := owner[repo]; ok {
				return bad(field+".repositories", "repository %q is already listed by project %q: a repository belongs to one project", repo, other)
			}
			owner[repo] = name
		}
		switch p.Enforcement {
		case "", "enforce", "warn":
		default:
			return bad(field+".enforcement", "must be \"enforce\" or \"warn\", got %q", p.Enforcement)
		}
		if err := validateBranches(p.AllowedBranches); err != nil {
			return bad(field+".allowed_branches", "%v", err)
		}
		if len(p.Pipelines) == 0 {
			return bad(field+".pipelines", "required: declare at least one pipeline")
		}
		for _, pname := range slices.Sorted(maps.Keys(p.Pipelines)) {
			pl := p.Pipelines[pname]
			pfield := field + ".pipelines." + pname
			if err := tollgate.CheckIdentifier("the pipeline name", pname); err != nil {
				return bad(pfield, "%v", err)
			}
			if pl.Type == "" {
				return bad(pfield+".type", "required: the pipeline type, such as \"deploy\"")
			}
			if pl.CooldownMinutes < 0 {
				return bad(pfield+".cooldown_minutes", "must be 0 (no cooldown) or more, got %d", pl.CooldownMinutes)
			}
			if err := validateBranches(pl.AllowedBranches); err != nil {
				return bad(pfield+".allowed_branches", "%v", err)
			}
		}
		if f, err := p.Risk.validate(); err != nil {
			return bad(field+".risk."+f, "%v", err)
		}
		if g := p.GitHub; g != nil {
			if len(g.Environments) == 0 && len(g.Workflows) == 0 {
				return bad(field+".github", "required: map GitHub environments or workflow files to the pipelines that gate them, such as {\"environments\": {\"production\": \"deploy-prod\"}}")
			}
			for _, m := range []struct {
				key, what string
				to        map[string]string
			}{{"environments", "the GitHub environment name", g.Environments}, {"workflows", "the workflow file", g.Workflows}} {
				if m.to != nil && len(m.to) == 0 {
					return bad(field+".github."+m.key, "empty: omit the key, or map at least one")
				}
				for _, from := range slices.Sorted(maps.Keys(m.to)) {
					if err := tollgate.CheckIdentifier(m.what, from); err != nil {
						return bad(field+".github."+m.key, "%v", err)
					}
					if _, ok := p.Pipelines[m.to[from]]; !ok {
						return bad(field+".github."+m.key+"."+from, "%q is not a pipeline of the project: name one of its pipelines", m.to[from])
					}
				}
			}
			for _, env := range slices.Sorted(maps.Keys(g.WaitHours)) {
				if err := tollgate.CheckIdentifier("the GitHub environment name", env); err != nil {
					return bad(field+".github.wait_hours", "%v", err)
				}
				if h := g.WaitHours[env]; h < 1 || h > MaxGitHubWaitHours {
					return bad(field+".github.wait_hours."+env, "must be from 1 to %d hours (GitHub fails a deployment waiting 30 days), got %d", MaxGitHubWaitHours, h)
				}
			}
		}
		for _, env := range slices.Sorted(maps.Keys(p.Environments)) {
			if err := tollgate.CheckIdentifier("the environment name", env); err != nil {
				return bad(field+".environments", "%v", err)
			}
			if p.Environments[env].PipelineTypes == nil {
				return bad(field+".environments."+env+".pipeline_types", "required: the pipeline types allowed in %s ([] allows none)", env)
			}
			if f, err := p.Environments[env].Risk.validate(); err != nil {
				return bad(field+".environments."+env+".risk."+f, "%v", err)
			}
		}
	}
	return owner, nil
}

// validateEnvironments rejects an empty list, which would read as "every
// environment" to some and "none" to others: the Rego applies a rule without
// the key to every environment.
func validateEnvironments(envs []string) error {
	if envs != nil && len(envs) == 0 {
		return fmt.Errorf("empty list: omit the key to apply to every environment")
	}
	return nil
}

// validateBranches checks glob patterns the way Rego's glob.match compiles
// them (gobwas/glob with "/" as separator).
func validateBranches(patterns []string) error {
	if patterns != nil && len(patterns) == 0 {
		return fmt.Errorf("empty list: omit the key to allow every branch")
	}
	for _, p := range patterns {
		if _, err := glob.Compile(p, '/'); err != nil || p == "" {
			return fmt.Errorf("invalid glob pattern %q", p)
		}
	}
	return nil
}

// probes returns at most limit requests, one per registered project and
// pipeline, in order of project and pipeline name: the project's first
// repository (in name order), branch main, environment production. A
// reload asks them of a candidate (checkProjects).
func (c *Config) probes(limit int) []tollgate.Request {
	repository := make(map[string]string, len(c.pipelines))
	for repo, name := range c.byRepository {
		if r, ok := repository[name]; !ok || repo < r {
			repository[name] = repo
		}
	}
	var out []tollgate.Request
	for _, name := range slices.Sorted(maps.Keys(c.pipelines)) {
		pipelines := make([]string, 0, len(c.pipelines[name]))
		for _, p := range c.pipelines[name] {
			pipelines = append(pipelines, p.name)
		}
		slices.Sort(pipelines)
		for _, pipeline := range pipelines {
			if len(out) == limit {
				return out
			}
			r := probeRequest
			r.Repository, r.Pipeline = repository[name], pipeline
			out = append(out, r)
		}
	}
	return out
}

// project resolves a repository to its project name.
func (c *Config) project(repository string) (string, bool) {
	name, ok := c.byRepository[repository]
	return name, ok
}

// hasProject reports whether the registry declares the project name.
func (c *Config) hasProject(name string) bool {
	_, ok := c.pipelines[name]
	return ok
}

// pipeline finds a pipeline of a project and its cooldown in minutes (0:
// none); ok is false when the project does not declare it.
func (c *Config) pipeline(project, pipeline string) (cooldownMinutes int, ok bool) {
	for _, p := range c.pipelines[project] {
		if p.name == pipeline {
			return p.minutes, true
		}
	}
	return 0, false
}

// GitHubWorkflows reports whether the project of repository maps
// workflow files: then the pipeline of a deployment depends on its run's
// workflow file, which the caller must find out (the event does not say).
func (c *Config) GitHubWorkflows(repository string) bool {
	m := c.github[c.byRepository[repository]]
	return m != nil && len(m.Workflows) > 0
}

// GitHubWait is how long a deployment of repository to the GitHub
// environment waits at the gate, from its project's github.wait_hours; 0
// when the project does not say.
func (c *Config) GitHubWait(repository, environment string) time.Duration {
	if m := c.github[c.byRepository[repository]]; m != nil {
		return time.Duration(m.WaitHours[environment]) * time.Hour
	}
	return 0
}

// GitHubPipeline is the pipeline that gates deployments of repository to
// the GitHub environment by a run of the workflow file ("" if unknown),
// from its project's github mapping: the workflow's, else the
// environment's. The error says what to configure when there is none.
func (c *Config) GitHubPipeline(repository, environment, workflow string) (string, error) {
	project, ok := c.byRepository[repository]
	if !ok {
		return "", fmt.Errorf("the repository %s is in no project of %s: add it to a project's repositories, with \"github\": {\"environments\": {\"%s\": \"<pipeline>\"}}", repository, projectsFile, environment)
	}
	m := c.github[project]
	if m != nil {
		if pipeline, ok := m.Workflows[workflow]; ok && workflow != "" {
			return pipeline, nil
		}
		if pipeline, ok := m.Environments[environment]; ok {
			return pipeline, nil
		}
	}
	hint := ""
	if workflow != "" {
		hint = fmt.Sprintf(", or the run's workflow file %q to its \"workflows\"", workflow)
	}
	return "", fmt.Errorf("the project %s maps no pipeline to the GitHub environment %s: add \"%s\": \"<pipeline>\" to its \"github\": {\"environments\": {…}} in %s%s", project, environment, environment, projectsFile, hint)
}
