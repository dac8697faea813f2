// Package ui is tollgate's history page: the decision history for
// auditors, and the Gate view (gate.go) of what stands at the gate now,
// rendered on the server with html/template, its stylesheet embedded in the
// binary. It shows what GET /v1/decisions, the controls and the jobs
// serve, for people with a browser rather than a Bearer header; its one
// change is approving or rejecting an exception from the Gate view.
//
// Browsers cannot send a Bearer header when they navigate, so the page takes
// an API token once, in a login form, and keeps it in a cookie: HttpOnly (no
// script reads it), SameSite=Strict (no other site's page or link sends it),
// Secure over HTTPS, valid for the /ui/ pages only. The server checks the
// cookie's token on every request exactly as it checks a Bearer header, with
// the route's scope, so an expired or revoked token stops working at once.
//
// The cookie authorizes exactly this (Token): the GET pages of /ui/ (scope
// read), and the Gate view's forms POST /ui/exceptions/{id}/approve and
// /reject (scope approve), which change an exception as the API does. It
// never authorizes an API call. Because those forms change something, a
// cookie alone does not pass them: each must carry the login's CSRF token
// (a hidden field only the Gate page shows, an HMAC keyed with the
// login's token) and come from this server's own page (Sec-Fetch-Site,
// or Origin); anything else is refused with 403 before any change. A
// script that sends an Authorization header is authenticated by it, which
// no other site can make a browser send, and needs neither.
//
// The pages run no script, and send a Content-Security-Policy that allows
// none, nor anything not served by tollgate itself.
package ui

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
)

// Routes, as the server registers them.
const (
	Prefix = "/ui/"
	// CookieName is the cookie that carries the API token of a logged-in
	// browser.
	CookieName = "tollgate_token"
)

// ContentSecurityPolicy allows the pages nothing but tollgate's own
// stylesheet and forms: no script, no frame, no outside resource.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Config is what the pages need.
type Config struct {
	Store  tollgate.DecisionStore
	Now    func() time.Time // the clock of the chart's window; time.Now when nil
	Logger *slog.Logger
	// Dev is a server without authentication: no login is needed.
	Dev bool
	// Verify checks the token of the login form: nil if it may read the
	// history; a tollgate error with code EUnauthorized or EForbidden
	// (shown on the form) if not; any other error if it cannot tell.
	Verify func(ctx context.Context, token string) error
	// Gate, if set, serves the Gate view and its forms.
	Gate *GateConfig
	// MaxScan and ChartLimit bound the work of a page: DefaultMaxScan and
	// DefaultChartLimit when 0.
	MaxScan, ChartLimit int
}

// UI serves the history pages.
type UI struct {
	cfg   Config
	pages map[string]*template.Template
}

// New parses the embedded templates.
func New(cfg Config) *UI {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxScan <= 0 {
		cfg.MaxScan = DefaultMaxScan
	}
	if cfg.ChartLimit <= 0 {
		cfg.ChartLimit = DefaultChartLimit
	}
	u := &UI{cfg: cfg, pages: map[string]*template.Template{}}
	for _, page := range []string{"decisions", "decision", "login", "error", "gate", "exception"} {
		u.pages[page] = template.Must(template.New(page).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/"+page+".html"))
	}
	return u
}

// Token returns the API token of the login cookie on the GET pages of /ui/
// and on the Gate view's approve and reject forms (which also need a CSRF
// token, checkCSRF), "" elsewhere: the cookie authorizes nothing else.
func Token(r *http.Request) string {
	if (r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, Prefix)) && !isAction(r) {
		return ""
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// IsPage reports whether a request is for the pages, so that its errors
// are answered with a page rather than JSON.
func IsPage(r *http.Request) bool {
	return r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, Prefix)
}

// Headers is the middleware of every page: the security policy, and no
// caching of pages that show the history.
func Headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setHeaders(c.Response().Header())
		return next(c)
	}
}

func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" with the login form, which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// Root sends /ui to /ui/.
func (u *UI) Root(c echo.Context) error {
	return c.Redirect(http.StatusMovedPermanently, Prefix)
}

// Assets serves the embedded stylesheet under /ui/assets/.
func (u *UI) Assets() echo.HandlerFunc {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the embedded directory exists
	}
	files := http.StripPrefix(Prefix+"assets/", http.FileServer(http.FS(sub)))
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

// page is what the layout shows around every page.
type page struct {
	Title    string
	Dev      bool
	LoggedIn bool
	Body     any
}

func (u *UI) render(c echo.Context, status int, name, title string, body any) error {
	var buf bytes.Buffer
	p := page{Title: title, Dev: u.cfg.Dev, LoggedIn: !u.cfg.Dev && Token(c.Request()) != "", Body: body}
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		return err
	}
	setHeaders(c.Response().Header())
	return c.HTMLBlob(status, buf.Bytes())
}

// Error answers an error of a page with a page: the login form for a 401
// (dropping a cookie that no longer works), a page with the message
// otherwise.
func (u *UI) Error(c echo.Context, status int, message string) {
	var err error
	if status == http.StatusUnauthorized {
		if Token(c.Request()) != "" {
			u.clearCookie(c)
			message = "Your session ended: " + message + ". Log in again."
		} else {
			message = ""
		}
		err = u.loginForm(c, status, message, nextPage(c.Request().URL.RequestURI()))
	} else {
		err = u.render(c, status, "error", http.StatusText(status), map[string]any{
			"Status": status, "StatusText": http.StatusText(status), "Message": message,
		})
	}
	if err != nil && u.cfg.Logger != nil {
		u.cfg.Logger.Warn("write error page", "error", err)
	}
}

// LoginForm shows the login form.
func (u *UI) LoginForm(c echo.Context) error {
	return u.loginForm(c, http.StatusOK, "", nextPage(c.QueryParam("next")))
}

func (u *UI) loginForm(c echo.Context, status int, message, next string) error {
	return u.render(c, status, "login", "Log in", map[string]any{"Message": message, "Next": next})
}

// Login checks the token of the form and, if it may read the history, sets
// the cookie and goes to the page the user asked for.
func (u *UI) Login(c echo.Context) error {
	req := c.Request()
	if !sameOrigin(req) {
		return tollgate.Errorf(tollgate.EForbidden, "the login form must be sent from this server's own page")
	}
	next := nextPage(c.FormValue("next"))
	if u.cfg.Dev {
		return c.Redirect(http.StatusSeeOther, next)
	}
	token := strings.TrimSpace(c.FormValue("token"))
	if token == "" {
		return u.loginForm(c, http.StatusBadRequest, "Paste an API token with the read scope.", next)
	}
	if err := u.cfg.Verify(req.Context(), token); err != nil {
		switch tollgate.ErrorCode(err) {
		case tollgate.EUnauthorized:
			return u.loginForm(c, http.StatusUnauthorized, err.Error(), next)
		case tollgate.EForbidden:
			return u.loginForm(c, http.StatusForbidden, err.Error(), next)
		}
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: CookieName, Value: token, Path: Prefix,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
	return c.Redirect(http.StatusSeeOther, next)
}

// Logout drops the cookie.
func (u *UI) Logout(c echo.Context) error {
	if !sameOrigin(c.Request()) {
		return tollgate.Errorf(tollgate.EForbidden, "the logout form must be sent from this server's own page")
	}
	u.clearCookie(c)
	return c.Redirect(http.StatusSeeOther, Prefix+"login")
}

func (u *UI) clearCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{
		Name: CookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
}

// sameOrigin rejects a form posted from another site (login CSRF). Browsers
// say where a request comes from in Sec-Fetch-Site, older ones in Origin;
// a client that sends neither is no browser.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err := url.Parse(origin)
	return err == nil && o.Host == r.Host
}

// nextPage is where to go after logging in: a page of the history, never
// another site.
func nextPage(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, Prefix+"login") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}
