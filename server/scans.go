package server

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/epss"
)

// scanSummary is the answer to POST /v1/scans: the scan's ID and what was
// stored, without the findings (GET /v1/scans/{id} has them).
type scanSummary struct {
	ID           string    `json:"scan_id"`
	Project      string    `json:"project"`
	Artifact     string    `json:"artifact"`
	ScannedAt    time.Time `json:"scanned_at"`
	Format       string    `json:"format"`
	Scanner      string    `json:"scanner,omitempty"`
	Findings     int       `json:"findings"`
	Unidentified int       `json:"unidentified"`
}

// postScan stores a scan for later evaluations: the evaluate body (the CI
// payload is optional here, kept to say which pipeline posted the scan)
// plus project and artifact.
func (s *Server) postScan(c echo.Context) error {
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var b struct {
		tollgate.Request
		Project  string    `json:"project"`
		Artifact string    `json:"artifact"`
		Scan     *scanBody `json:"scan"`
	}
	if err := tollgate.DecodeStrict(body, &b); err != nil {
		return err
	}
	if err := firstError(tollgate.CheckIdentifier("project", b.Project), tollgate.CheckIdentifier("artifact", b.Artifact), b.Request.CheckIdentifiers()); err != nil {
		return err
	}
	if b.Scan == nil {
		return tollgate.Errorf(tollgate.EInvalid, `scan is required: {"format": "trivy"|"grype"|"sarif"|"cyclonedx", "report": <the scanner's JSON>}`)
	}
	scan, err := parseScan(b.Scan)
	if err != nil {
		return err
	}
	var req *tollgate.Request
	if b.Request != (tollgate.Request{}) {
		req = &b.Request
	}
	stored, err := s.cfg.Gate.StoreScan(c.Request().Context(), b.Project, b.Artifact, req, *scan)
	if err != nil {
		return unavailableUnlessInvalid(err, "the scan could not be stored")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/scans/"+stored.ID)
	return c.JSON(http.StatusCreated, scanSummary{
		ID: stored.ID, Project: stored.Project, Artifact: stored.Artifact, ScannedAt: stored.ScannedAt,
		Format: scan.Format, Scanner: scan.Scanner, Findings: len(scan.Findings), Unidentified: scan.Unidentified,
	})
}

func (s *Server) getScan(c echo.Context) error {
	if s.cfg.Gate.Scans == nil {
		return tollgate.Errorf(tollgate.ENotFound, "this server keeps no scans")
	}
	scan, err := s.cfg.Gate.Scans.Scan(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, scan)
}

// epssInfo is the answer of the EPSS endpoints: the set the gate uses.
type epssInfo struct {
	ModelVersion string    `json:"model_version"`
	ScoreDate    time.Time `json:"score_date,omitzero"`
	Count        int       `json:"count"`
}

// importEPSS replaces the EPSS scores with FIRST's daily file, the body:
// text/csv, or the .csv.gz as FIRST publishes it (application/gzip). A file
// older than the scores in use, or much shorter, is a 409 unless
// ?force=true (epss.CheckReplace).
func (s *Server) importEPSS(c echo.Context) error {
	if s.cfg.Gate.EPSS == nil {
		return tollgate.Errorf(tollgate.ENotFound, "this server keeps no EPSS scores")
	}
	force, err := forceParam(c)
	if err != nil {
		return err
	}
	req := c.Request()
	mediaType, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || (mediaType != "text/csv" && mediaType != "application/gzip" && mediaType != "application/x-gzip") {
		return newError(http.StatusUnsupportedMediaType, tollgate.EInvalid,
			"Content-Type must be text/csv or application/gzip: FIRST's epss_scores-YYYY-MM-DD.csv(.gz)")
	}
	parsed, err := epss.Parse(http.MaxBytesReader(c.Response(), req.Body, epss.MaxSize))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return newError(http.StatusRequestEntityTooLarge, tollgate.EInvalid,
			"the EPSS file is larger than the limit of "+humanBytes(epss.MaxSize))
	case err != nil:
		return err // EInvalid, naming the line
	}
	_, current, err := s.cfg.Gate.EPSS.EPSS(req.Context(), nil)
	if err != nil {
		return unavailableUnlessInvalid(err, "the EPSS scores in use could not be read")
	}
	if err := epss.CheckReplace(current, parsed, force, s.cfg.Now()); err != nil {
		return err
	}
	set := parsed.EPSSSet()
	start := time.Now()
	if err := s.cfg.Gate.EPSS.ImportEPSS(req.Context(), set); err != nil {
		return unavailableUnlessInvalid(err, "the EPSS scores could not be imported")
	}
	s.cfg.Logger.Info("EPSS scores imported", "count", len(set.Scores), "model", set.ModelVersion,
		"score_date", set.ScoreDate.Format(time.DateOnly), "forced", force,
		"previous_score_date", current.ScoreDate.Format(time.DateOnly), "previous_count", current.Count,
		"took", time.Since(start).Round(time.Millisecond))
	return c.JSON(http.StatusOK, epssInfo{ModelVersion: set.ModelVersion, ScoreDate: set.ScoreDate, Count: len(set.Scores)})
}

// forceParam reads POST /v1/epss's one query parameter, force=true|false.
func forceParam(c echo.Context) (bool, error) {
	q := c.QueryParams()
	for name := range q {
		if name != "force" {
			return false, tollgate.Errorf(tollgate.EInvalid, "unknown query parameter %q: the only one is force=true", name)
		}
	}
	switch values, ok := q["force"]; {
	case !ok:
		return false, nil
	case len(values) == 1 && (values[0] == "true" || values[0] == "false"):
		return values[0] == "true", nil
	default:
		return false, tollgate.Errorf(tollgate.EInvalid, "force must be true or false, once; got %q", strings.Join(values, ","))
	}
}

func (s *Server) getEPSS(c echo.Context) error {
	if s.cfg.Gate.EPSS == nil {
		return tollgate.Errorf(tollgate.ENotFound, "this server keeps no EPSS scores")
	}
	_, info, err := s.cfg.Gate.EPSS.EPSS(c.Request().Context(), nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, epssInfo{ModelVersion: info.ModelVersion, ScoreDate: info.ScoreDate, Count: info.Count})
}

// unavailableUnlessInvalid turns a store failure into a 503 saying what was
// not done; bad input stays a 4xx.
func unavailableUnlessInvalid(err error, what string) error {
	if tollgate.ErrorCode(err) == tollgate.EInternal {
		return tollgate.Errorf(tollgate.EUnavailable, "%s: %v", what, err)
	}
	return err
}
