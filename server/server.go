// Package server is tollgate's HTTP API (design §4) on echo: it decodes
// requests, calls the gate and encodes the answers, with errors in one shape,
// {"error": {"code", "message"}}, and Prometheus metrics. It holds no
// decision logic of its own.
package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/attest"
	"github.com/tollgate/tollgate/rego"
	"github.com/tollgate/tollgate/server/ui"
)

// DefaultBodyLimit is the largest request body accepted.
const DefaultBodyLimit = 1 << 20

// Header limits. Go's http.Server answers headers over its MaxHeaderBytes
// itself, in plain text; so the http.Server reads up to MaxHeaderRead (Go's
// own default) and the API refuses more than HeaderLimit with the JSON
// error shape. Only past MaxHeaderRead does Go's plain-text 431 remain.
const (
	HeaderLimit   = 64 << 10 // request line and headers tollgate accepts
	MaxHeaderRead = 1 << 20  // for http.Server.MaxHeaderBytes
)

// Engine is the active bundle: the policy to use now and its status.
type Engine interface {
	Policy() *rego.Policy
	Status() rego.BundleStatus
}

// Config is what the server needs. Gate, Engine, Store, Tokens, Metrics,
// Registry and Logger are required; zero limits take their defaults.
type Config struct {
	Gate     *rego.Gate
	Engine   Engine
	Store    tollgate.DecisionStore
	Tokens   tollgate.TokenStore // verifies bearer tokens; the /v1/tokens endpoints manage them
	Metrics  *Metrics
	Registry *prometheus.Registry
	Logger   *slog.Logger

	// Dev turns authentication off: every request acts as
	// tollgate.DevIdentity with every scope. For development only.
	Dev bool
	// TokenCacheTTL is how long a verified token is trusted before the
	// store is read again; DefaultTokenCacheTTL when 0.
	TokenCacheTTL time.Duration

	BodyLimit      int64         // bytes; DefaultBodyLimit when 0
	MaxEvaluations int           // evaluations in progress at once; DefaultMaxEvaluations when 0
	EvaluationWait time.Duration // wait for an evaluation slot before 503; DefaultEvaluationWait when 0
	RateLimit      rate.Limit    // requests per second per token; 0: no limit
	RateBurst      int           // requests a token may make at once; the rate rounded up when 0

	Now func() time.Time // the clock of token expiry and rate limits; time.Now when nil

	// Controls, if set, serves exceptions, emergency freezes and incidents.
	Controls *rego.Controls

	// LedgerSigner, if set, signs the end of ledger exports
	// (GET /v1/decisions/export); without it they are unsigned. Store must
	// be a tollgate.LedgerStore for exports.
	LedgerSigner ed25519.PrivateKey
	// Bundles, if set, holds the bundle revisions decisions are replayed
	// with (GET /v1/decisions/{id}/replay).
	Bundles tollgate.BundleStore
	// Attestor, if set, signs every decision POST /v1/evaluate records:
	// the reply carries it as "attestation". Without it, none.
	Attestor *attest.Signer
	// GitHub, if set (with Jobs), serves GitHub's deployment protection
	// rule webhook (/v1/integrations/github/webhook).
	GitHub *GitHub
	// Jobs, if set, serves gate jobs (/v1/jobs), checked by RunJobs.
	Jobs *Jobs
	// Notifications, if set, lists the outbox's deliveries (GET
	// /v1/notifications); adapters/notify delivers them.
	Notifications tollgate.Outbox
}

// Server serves the API. Use Handler in an http.Server.
type Server struct {
	cfg    Config
	echo   *echo.Echo
	auth   *authenticator
	limits *limits
	ui     *ui.UI
	wake   chan struct{} // RunJobs: look for due jobs now
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.TokenCacheTTL <= 0 {
		cfg.TokenCacheTTL = DefaultTokenCacheTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tokens == nil {
		panic("server: Config.Tokens is required")
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	if cfg.Jobs != nil {
		cfg.Jobs.defaults()
	}
	if cfg.GitHub != nil {
		cfg.GitHub.defaults()
	}
	s := &Server{cfg: cfg, echo: e, auth: newAuthenticator(cfg.Tokens, cfg.Now, cfg.TokenCacheTTL), limits: newLimits(cfg),
		wake: make(chan struct{}, 1)}
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe, limitHeaders, s.authorize, checkURL)

	e.POST("/v1/evaluate", s.evaluate)
	e.POST("/v1/jobs", s.submitJob)
	e.GET("/v1/jobs", s.listJobs)
	e.GET("/v1/jobs/:id", s.getJob)
	e.DELETE("/v1/jobs/:id", s.cancelJob)
	e.POST("/v1/integrations/github/webhook", s.githubWebhook)
	e.POST("/v1/simulate", s.simulate)
	e.GET("/v1/decisions", s.listDecisions)
	e.GET("/v1/decisions/:id", s.getDecision)
	e.GET("/v1/decisions/export", s.exportDecisions)
	e.GET("/v1/decisions/:id/replay", s.replayDecision)
	e.POST("/v1/impact", s.impact)
	e.POST("/v1/scans", s.postScan)
	e.GET("/v1/scans/:id", s.getScan)
	e.POST("/v1/epss", s.importEPSS)
	e.GET("/v1/epss", s.getEPSS)
	e.POST("/v1/exceptions", s.requestException)
	e.POST("/v1/exceptions/break-glass", s.breakGlass)
	e.GET("/v1/exceptions", s.listControls(tollgate.KindException, "exceptions", "state", "project", "code"))
	e.GET("/v1/exceptions/:id", s.getControl(tollgate.KindException))
	e.POST("/v1/exceptions/:id/approve", s.transition((*rego.Controls).Approve))
	e.POST("/v1/exceptions/:id/reject", s.transition((*rego.Controls).Reject))
	e.POST("/v1/exceptions/:id/revoke", s.transition((*rego.Controls).Revoke))
	e.POST("/v1/freezes", s.createFreeze)
	e.GET("/v1/freezes", s.listControls(tollgate.KindFreeze, "freezes", "state"))
	e.GET("/v1/freezes/:id", s.getControl(tollgate.KindFreeze))
	e.DELETE("/v1/freezes/:id", s.lift(tollgate.KindFreeze))
	e.POST("/v1/incidents", s.startIncident)
	e.GET("/v1/incidents", s.listControls(tollgate.KindIncident, "incidents", "state"))
	e.GET("/v1/incidents/:id", s.getControl(tollgate.KindIncident))
	e.DELETE("/v1/incidents/:id", s.lift(tollgate.KindIncident))
	e.GET("/v1/notifications", s.listNotifications)
	e.GET("/v1/bundles", s.bundles)
	e.GET("/v1/openapi.json", s.openapi)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	uiConfig := ui.Config{Store: cfg.Store, Now: cfg.Now, Logger: cfg.Logger, Dev: cfg.Dev, Verify: s.verifyReader}
	if cfg.Controls != nil && cfg.Gate != nil {
		uiConfig.Gate = &ui.GateConfig{Gates: cfg.Gate.Gates, Controls: cfg.Controls, CanApprove: s.canApprove, Decide: s.decideException}
		if cfg.Jobs != nil {
			uiConfig.Gate.Jobs = cfg.Jobs.Store
		}
	}
	s.ui = ui.New(uiConfig)
	e.GET("/", s.ui.Root) // a browser pointed at the server finds the history page
	e.GET("/ui", s.ui.Root)
	e.GET("/ui/", s.ui.Decisions, ui.Headers)
	e.GET("/ui/decisions/:id", s.ui.Decision, ui.Headers)
	e.GET("/ui/gate", s.ui.Gate, ui.Headers)
	e.POST("/ui/exceptions/:id/approve", s.ui.Approve, ui.Headers)
	e.POST("/ui/exceptions/:id/reject", s.ui.Reject, ui.Headers)
	e.GET("/ui/login", s.ui.LoginForm, ui.Headers)
	e.POST("/ui/login", s.ui.Login, ui.Headers)
	e.POST("/ui/logout", s.ui.Logout, ui.Headers)
	e.GET("/ui/assets/*", s.ui.Assets())
	e.POST("/v1/tokens", s.createToken)
	e.GET("/v1/tokens", s.listTokens)
	e.DELETE("/v1/tokens/:name", s.revokeToken)
	checkRouteScopes(e)
	return s
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// errorBody is the one shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// apiError is an error with its HTTP status, and headers to answer with
// (WWW-Authenticate, Retry-After).
type apiError struct {
	status  int
	code    string
	msg     string
	headers map[string]string
}

func (e *apiError) Error() string { return e.msg }

func newError(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// handleError turns any error a handler returns into the error body.
// Domain errors map by code; anything unknown is a 500 whose details go to
// the log, not to the caller.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var (
		apiErr  *apiError
		domErr  *tollgate.Error
		echoErr *echo.HTTPError
	)
	e := &apiError{status: http.StatusInternalServerError, code: tollgate.EInternal, msg: "internal error"}
	switch {
	case errors.As(err, &apiErr):
		e = apiErr
	case errors.As(err, &domErr):
		e.code, e.msg = domErr.Code, domErr.Message
		switch domErr.Code {
		case tollgate.EInvalid:
			e.status = http.StatusBadRequest
		case tollgate.ENotFound:
			e.status = http.StatusNotFound
		case tollgate.EConflict:
			e.status = http.StatusConflict
		case tollgate.EForbidden:
			e.status = http.StatusForbidden
		case tollgate.EUnavailable:
			e.status = http.StatusServiceUnavailable
		}
	case errors.As(err, &echoErr):
		e.status = echoErr.Code
		e.code = map[int]string{
			http.StatusNotFound:         tollgate.ENotFound,
			http.StatusMethodNotAllowed: "method_not_allowed",
		}[echoErr.Code]
		if e.code == "" {
			e.code = tollgate.EInvalid
		}
		e.msg = http.StatusText(echoErr.Code)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, tollgate.EUnavailable, "the request was cancelled or timed out before a decision was recorded"
	}
	switch {
	case c.Request().Context().Err() != nil:
		// The client went away (or its deadline passed) mid-request: its
		// problem, not the server's, and nobody reads the answer.
		s.cfg.Logger.Info("request abandoned by the client", "method", c.Request().Method, "path", c.Path(), "status", e.status, "error", err)
	case e.status >= 500:
		s.cfg.Logger.Error("request failed", "method", c.Request().Method, "path", c.Path(), "status", e.status, "error", err)
	}
	for name, value := range e.headers {
		c.Response().Header().Set(name, value)
	}
	if ui.IsPage(c.Request()) {
		s.ui.Error(c, e.status, e.msg) // a person reads it: a page, not JSON
		return
	}
	var body errorBody
	body.Error.Code, body.Error.Message = e.code, e.msg
	if err := c.JSON(e.status, body); err != nil {
		s.cfg.Logger.Warn("write error response", "error", err)
	}
}

// observe counts requests by route and status.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err != nil {
			c.Error(err) // writes the answer, so the status is known
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.cfg.Metrics.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		return nil
	}
}

// limitHeaders refuses a request whose request line and headers are
// larger than HeaderLimit, counted as they are on the wire.
func limitHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len("  \r\n") + len("Host: \r\n") + len(r.Host)
		for name, values := range r.Header {
			for _, v := range values {
				n += len(name) + len(": \r\n") + len(v)
			}
		}
		if n > HeaderLimit {
			return newError(http.StatusRequestHeaderFieldsTooLarge, tollgate.EInvalid,
				"the request line and headers are larger than the limit of "+humanBytes(HeaderLimit))
		}
		return next(c)
	}
}

// checkURL holds the path parameters and the query to the identifier rules
// of the body (tollgate.CheckIdentifier): they are filters and IDs, shown
// back in the history page's filter box and heading and in error messages.
// Invalid UTF-8 or a NUL used to reach the store: PostgreSQL refused it
// with an error that named the database server and database to the client.
// A query parameter given twice is refused too: which one filters would be
// a guess, like a JSON key given twice.
func checkURL(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		for i, name := range c.ParamNames() {
			if i < len(c.ParamValues()) {
				if err := tollgate.CheckIdentifier("the path parameter "+name, c.ParamValues()[i]); err != nil {
					return err
				}
			}
		}
		for name, values := range c.QueryParams() {
			if err := tollgate.CheckIdentifier("a query parameter name", name); err != nil {
				return err
			}
			if len(values) > 1 {
				return tollgate.Errorf(tollgate.EInvalid, "the query parameter %q is given %d times: give it once", name, len(values))
			}
			if err := tollgate.CheckIdentifier("the query parameter "+strconv.Quote(name), values[0]); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// readJSON reads a JSON request body within the size limit. The decoding
// itself is the caller's, which knows the shape.
func (s *Server) readJSON(c echo.Context) ([]byte, error) {
	req := c.Request()
	mediaType, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mediaType != echo.MIMEApplicationJSON {
		return nil, newError(http.StatusUnsupportedMediaType, tollgate.EInvalid,
			"Content-Type must be application/json")
	}
	// JSON is UTF-8 (RFC 8259). A body said to be in another charset would
	// be read as UTF-8 all the same, and mean something else than its
	// sender meant: refused, not reinterpreted.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, newError(http.StatusUnsupportedMediaType, tollgate.EInvalid,
			fmt.Sprintf("Content-Type charset %q: JSON bodies are UTF-8; send charset=utf-8 or none", cs))
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, newError(http.StatusRequestEntityTooLarge, tollgate.EInvalid,
			"request body is larger than the limit of "+humanBytes(s.cfg.BodyLimit))
	case err != nil:
		return nil, newError(http.StatusBadRequest, tollgate.EInvalid, "could not read the request body: "+err.Error())
	}
	return body, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}
