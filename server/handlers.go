package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/scans"
	"github.com/tollgate/tollgate/rego"
)

// evaluate decides, records, then answers: the answer exists only once the
// decision is in the history. A store failure is a 503, never an accepted.
func (s *Server) evaluate(c echo.Context) error {
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	req, scan, err := decodeEvaluation(body)
	if err != nil {
		return err
	}
	ctx, err := withLanguages(c)
	if err != nil {
		return err
	}
	release, err := s.limits.evaluation(ctx)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	rec, err := s.cfg.Gate.Evaluate(ctx, req, scan)
	s.cfg.Metrics.observeStore("decide", time.Since(start), err)
	if err != nil {
		return unavailableUnlessInvalid(err, "the decision could not be recorded, so it is not given")
	}
	s.cfg.Metrics.observeDecision("evaluate", rec.Decision, time.Since(start))
	contentLanguage(c, rec.Decision)
	if s.cfg.Attestor != nil {
		return s.attested(c, rec)
	}
	return c.JSON(http.StatusOK, rec.Decision)
}

// scanBody is the optional "scan" of an evaluation: the scanner's report,
// as it wrote it, and its format.
type scanBody struct {
	Format string          `json:"format"`
	Report json.RawMessage `json:"report"`
}

// evaluationBody is the body of POST /v1/evaluate: the CI payload, its
// optional scan (or a stored scan's ID) and VEX document.
type evaluationBody struct {
	tollgate.Request
	Scan   *scanBody `json:"scan,omitempty"`
	ScanID string    `json:"scan_id,omitempty"`
	VEX    *scanBody `json:"vex,omitempty"`
}

// decodeEvaluation decodes the CI payload and its optional scan strictly.
func decodeEvaluation(body []byte) (tollgate.Request, rego.ScanSource, error) {
	var e evaluationBody
	if err := tollgate.DecodeStrict(body, &e); err != nil {
		return tollgate.Request{}, rego.ScanSource{}, err
	}
	if err := e.Request.Validate(); err != nil {
		return tollgate.Request{}, rego.ScanSource{}, err
	}
	src, err := scanSource(e.Scan, e.ScanID, e.VEX)
	return e.Request, src, err
}

// scanSource is the scan a request names: a report or a stored scan's ID,
// with the VEX document sent beside it, if any.
func scanSource(b *scanBody, id string, vex *scanBody) (rego.ScanSource, error) {
	if b != nil && id != "" {
		return rego.ScanSource{}, tollgate.Errorf(tollgate.EInvalid, "send either scan or scan_id, not both")
	}
	if err := tollgate.CheckIdentifier("scan_id", id); err != nil {
		return rego.ScanSource{}, err
	}
	scan, err := parseScan(b)
	if err != nil {
		return rego.ScanSource{}, err
	}
	statements, err := parseVEX(vex)
	if err != nil {
		return rego.ScanSource{}, err
	}
	if statements != nil && b == nil && id == "" {
		return rego.ScanSource{}, tollgate.Errorf(tollgate.EInvalid, "vex applies to a scan: send it with scan or scan_id")
	}
	return rego.ScanSource{Report: scan, ID: id, VEX: statements}, nil
}

// parseVEX reads the optional "vex" of an evaluation: {"format":
// "cyclonedx", "report": <the VEX document>}.
func parseVEX(b *scanBody) ([]tollgate.VEXStatement, error) {
	if b == nil {
		return nil, nil
	}
	if len(b.Report) == 0 || string(b.Report) == "null" {
		return nil, tollgate.Errorf(tollgate.EInvalid, `vex.report is required: {"format": "cyclonedx", "report": <the CycloneDX VEX document>}`)
	}
	statements, err := scans.ParseVEX(b.Format, b.Report)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "vex: %v", err)
	}
	return statements, nil
}

func parseScan(b *scanBody) (*tollgate.Scan, error) {
	if b == nil {
		return nil, nil
	}
	if len(b.Report) == 0 || string(b.Report) == "null" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "scan.report is required: the scanner's JSON report")
	}
	scan, err := scans.Parse(b.Format, b.Report)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "scan: %v", err)
	}
	return &scan, nil
}

// simulateBody is design §4's simulate request.
type simulateBody struct {
	Input   json.RawMessage `json:"input"`
	Scan    *scanBody       `json:"scan"`
	ScanID  string          `json:"scan_id"`
	VEX     *scanBody       `json:"vex"`
	At      string          `json:"at"`
	Context *struct {
		Cooldown *struct {
			LastAcceptedAt string `json:"last_accepted_at"`
		} `json:"cooldown"`
	} `json:"context"`
	Config  *configBody `json:"config"`
	Explain bool        `json:"explain"`
}

// configBody replaces parts of the active bundle's configuration, for a
// simulation or an impact analysis.
type configBody struct {
	GlobalPolicy any `json:"global_policy"`
	Projects     any `json:"projects"`
}

func (s *Server) simulate(c echo.Context) error {
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var sb simulateBody
	if err := tollgate.DecodeStrict(body, &sb); err != nil {
		return err
	}
	if len(sb.Input) == 0 || string(sb.Input) == "null" {
		return tollgate.Errorf(tollgate.EInvalid, "input is required: the request to simulate")
	}
	req, err := tollgate.DecodeRequest(sb.Input)
	if err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "input: %v", err)
	}
	scan, err := scanSource(sb.Scan, sb.ScanID, sb.VEX)
	if err != nil {
		return err
	}
	sim := rego.Simulation{Request: req, Scan: scan, Explain: sb.Explain}
	if sb.At != "" {
		at, err := parseEvaluableTime("at", sb.At)
		if err != nil {
			return err
		}
		sim.At = &at
	}
	if sb.Context != nil && sb.Context.Cooldown != nil {
		sim.Cooldown = &tollgate.Cooldown{}
		if v := sb.Context.Cooldown.LastAcceptedAt; v != "" {
			if sim.Cooldown.LastAcceptedAt, err = parseEvaluableTime("context.cooldown.last_accepted_at", v); err != nil {
				return err
			}
		}
	}
	if sb.Config != nil {
		sim.GlobalPolicy, sim.Projects = sb.Config.GlobalPolicy, sb.Config.Projects
	}
	ctx, err := withLanguages(c)
	if err != nil {
		return err
	}
	release, err := s.limits.evaluation(ctx)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	d, err := s.cfg.Gate.Simulate(ctx, sim)
	if err != nil {
		return err
	}
	s.cfg.Metrics.observeDecision("simulate", d, time.Since(start))
	contentLanguage(c, d)
	return c.JSON(http.StatusOK, d)
}

// withLanguages is the request's context, asking for the decision's
// messages in the languages of its Accept-Language header, most preferred
// first (q-values honoured); a language the bundle does not speak falls
// back to the project's or the policy's default. A malformed header is a
// 400: tollgate does not guess what a client meant.
func withLanguages(c echo.Context) (context.Context, error) {
	ctx := c.Request().Context()
	header := strings.Join(c.Request().Header.Values("Accept-Language"), ",")
	if strings.TrimSpace(header) == "" {
		return ctx, nil
	}
	langs, err := rego.ParseAcceptLanguage(header)
	if err != nil {
		return nil, err
	}
	return rego.WithLanguages(ctx, langs), nil
}

// contentLanguage says in which language d's messages are.
func contentLanguage(c echo.Context, d tollgate.Decision) {
	if d.Language != "" {
		c.Response().Header().Set("Content-Language", d.Language)
	}
}

// historyItem is a record as the history API shows it: the decision, with
// the request and context it was made in, and who asked.
type historyItem struct {
	tollgate.Decision
	Request  tollgate.Request `json:"request"`
	Context  tollgate.Context `json:"context"`
	Identity string           `json:"identity"`
	// The cooldown the decision was made under, which the ledger hashes
	// with the rest of the record.
	CooldownKey *tollgate.CooldownKey `json:"cooldown_key,omitempty"`
}

func newHistoryItem(r tollgate.Record) historyItem {
	return historyItem{Decision: r.Decision, Request: r.Request, Context: r.Context, Identity: r.Identity, CooldownKey: r.CooldownKey}
}

func (s *Server) listDecisions(c echo.Context) error {
	f, err := decisionFilter(c)
	if err != nil {
		return err
	}
	start := time.Now()
	page, err := s.cfg.Store.Decisions(c.Request().Context(), f)
	s.cfg.Metrics.observeStore("list", time.Since(start), err)
	if err != nil {
		return err
	}
	items := make([]historyItem, len(page.Records))
	for i, r := range page.Records {
		items[i] = newHistoryItem(r)
	}
	return c.JSON(http.StatusOK, map[string]any{"decisions": items, "next_cursor": page.NextCursor})
}

func decisionFilter(c echo.Context) (tollgate.DecisionFilter, error) {
	q := c.QueryParams()
	for name := range q {
		switch name {
		case "project", "pipeline", "branch", "status", "since", "until", "limit", "cursor":
		default:
			return tollgate.DecisionFilter{}, tollgate.Errorf(tollgate.EInvalid,
				"unknown query parameter %q: filters are project, pipeline, branch, status, since, until, limit, cursor", name)
		}
	}
	f := tollgate.DecisionFilter{
		Project: q.Get("project"), Pipeline: q.Get("pipeline"), Branch: q.Get("branch"),
		Status: tollgate.Status(q.Get("status")), Cursor: q.Get("cursor"),
	}
	if f.Status != "" && f.Status != tollgate.Accepted && f.Status != tollgate.Refused {
		return f, tollgate.Errorf(tollgate.EInvalid, "status must be accepted or refused, got %q", f.Status)
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			parsed, err := parseTime(t.name, v)
			if err != nil {
				return f, err
			}
			*t.dst = parsed
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := parseLimit(v)
		if err != nil {
			return f, err
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Server) getDecision(c echo.Context) error {
	start := time.Now()
	rec, err := s.cfg.Store.Decision(c.Request().Context(), c.Param("id"))
	s.cfg.Metrics.observeStore("get", time.Since(start), err)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newHistoryItem(rec))
}

func (s *Server) bundles(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.Engine.Status())
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the store check of /readyz: a frozen database must
// make the replica not ready, not hang the probe.
const readyTimeout = 2 * time.Second

// readyz is 200 only when a bundle is active and the store answers: a load
// balancer must not send requests that would be refused with 503.
func (s *Server) readyz(c echo.Context) error {
	if s.cfg.Engine.Policy() == nil {
		return newError(http.StatusServiceUnavailable, tollgate.EUnavailable, "no bundle is active")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		return newError(http.StatusServiceUnavailable, tollgate.EUnavailable, "the store is unreachable: "+err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "revision": s.cfg.Engine.Status().Revision})
}

func parseTime(name, value string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return t, tollgate.Errorf(tollgate.EInvalid, "%s must be an RFC 3339 time such as 2026-11-23T10:00:00Z, got %q", name, value)
	}
	return t, nil
}

// parseEvaluableTime is parseTime for a time the policy evaluates.
func parseEvaluableTime(name, value string) (time.Time, error) {
	t, err := parseTime(name, value)
	if err != nil {
		return t, err
	}
	return t, tollgate.CheckEvaluableTime(name, t)
}

// parseLimit reads a page size query parameter.
func parseLimit(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > tollgate.MaxPageSize {
		return 0, tollgate.Errorf(tollgate.EInvalid, "limit must be a number from 1 to %d, got %q", tollgate.MaxPageSize, v)
	}
	return n, nil
}
