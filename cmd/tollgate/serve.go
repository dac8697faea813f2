package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/attest"
	"github.com/tollgate/tollgate/adapters/cvss"
	"github.com/tollgate/tollgate/adapters/expiry"
	"github.com/tollgate/tollgate/adapters/licence"
	"github.com/tollgate/tollgate/adapters/notify"
	"github.com/tollgate/tollgate/adapters/postgres"
	"github.com/tollgate/tollgate/adapters/sqlite"
	"github.com/tollgate/tollgate/rego"
	"github.com/tollgate/tollgate/server"
)

func runServe(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "serve",
		"serve --license FILE --license-key FILE [--addr HOST:PORT] [--bundle DIR] [--data-dir DIR] [--dev | --tls-cert FILE --tls-key FILE]",
		`Serves the HTTP API (POST /v1/evaluate, /v1/simulate, GET /v1/decisions,
/v1/bundles, /v1/tokens, /healthz, /readyz, /metrics) and the history page
for auditors at /ui/ (log in with a token of the read scope). Decisions are recorded
in the embedded store in --data-dir before they are answered. The bundle
directory is watched: a changed bundle replaces the active one only if it
compiles, its configuration validates, it defines a well-formed
data.tollgate.decision, it has tests and they pass, and replayed under it
the newest recorded decisions (--reload-replay-limit, --reload-replay-window)
gain no policy_error. SIGHUP reloads the bundle at once. A bundle that cannot decide stops serve at start. SIGTERM or
SIGINT drain the requests in flight and flush the history before exiting.
With --attestation-signing-key every evaluate reply carries a signed
attestation of the recorded decision (see `+"`tollgate verify-decision -h`"+`).

Every route but /healthz, /readyz and /metrics needs an API token
(Authorization: Bearer …) with the route's scope; serve refuses to start
while the store holds no active token: create one with
  tollgate token create --name admin --scopes admin [--data-dir DIR | --database-url URL]
--dev turns authentication off, for development only.`)
	addr := f.String("addr", "127.0.0.1:8181", "listen on `HOST:PORT` (port 0 picks a free one; the log says which)")
	bundleDir := f.String("bundle", "bundles/tollgate", "the policy bundle `DIR`, watched for changes")
	dataDir := f.String("data-dir", defaultDataDir, "the embedded store's `DIR`, created if missing (not used with --database-url)")
	databaseURL := f.String("database-url", "", "PostgreSQL `URL` instead of the embedded store")
	commitLinger := f.Duration("commit-linger", sqlite.DefaultLinger, "while decisions queue for the embedded store, let a group commit wait at most this `DURATION` for more (0: never); a decision made while the server is idle is never delayed")
	licencePath := f.String("license", "", "the licence `FILE` (a JWT); a missing or bad licence refuses every request with licence_invalid")
	keyPath := f.String("license-key", "", "the PEM public key `FILE` that verifies the licence (required)")
	logFormat := f.String("log-format", "text", "log `FORMAT`: text or json")
	logLevel := f.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	bodyLimit := f.Int64("body-limit", server.DefaultBodyLimit, "largest request body in `BYTES`")
	debounce := f.Duration("reload-debounce", rego.DefaultDebounce, "wait this `DURATION` after the last change to the bundle before reloading it")
	minCoverage := f.Float64("reload-min-coverage", 0, "refuse a bundle, at start and on reload, whose tests cover less than this `PERCENT` of its policy lines (0: no minimum)")
	replayLimit := f.Int("reload-replay-limit", rego.DefaultReplayLimit, "before activating a candidate bundle, replay at most the `N` newest recorded decisions under it and refuse it if any becomes policy_error (-1: no replay)")
	replayWindow := f.Duration("reload-replay-window", rego.DefaultReplayWindow, "replay only decisions recorded within this `DURATION` before the reload")
	shutdownTimeout := f.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM, wait at most this `DURATION` for requests in flight")
	dev := f.Bool("dev", false, "development mode: NO AUTHENTICATION, every request acts as identity \"dev\" with every scope")
	tlsCert := f.String("tls-cert", "", "serve HTTPS with this PEM certificate `FILE` (with --tls-key)")
	tlsKey := f.String("tls-key", "", "the PEM private key `FILE` of --tls-cert")
	tokenCacheTTL := f.Duration("token-cache-ttl", server.DefaultTokenCacheTTL, "trust a verified token this `DURATION` before reading the store again: how long a revocation by another process takes to apply here")
	rateLimit := f.String("rate-limit", "0", "requests per token: `RATE` such as 100/s, 600/m or 10 (per second); 0 is no limit")
	rateBurst := f.Int("rate-burst", 0, "requests a token may make at once above --rate-limit (`N`; default the rate per second, rounded up)")
	maxEvaluations := f.Int("max-evaluations", server.DefaultMaxEvaluations, "evaluations (evaluate, simulate) in progress at once (`N`); more wait up to --evaluation-wait, then get 503")
	evaluationWait := f.Duration("evaluation-wait", server.DefaultEvaluationWait, "how long an evaluation waits for a free slot (`DURATION`) before 503 with Retry-After")
	readHeaderTimeout := f.Duration("read-header-timeout", 5*time.Second, "close a connection that has not sent its request headers within this `DURATION`")
	readTimeout := f.Duration("read-timeout", 15*time.Second, "close a connection that has not sent its whole request within this `DURATION`")
	writeTimeout := f.Duration("write-timeout", 30*time.Second, "give up on a response not written within this `DURATION` of the request")
	idleTimeout := f.Duration("idle-timeout", 2*time.Minute, "close a keep-alive connection idle for this `DURATION`")
	expiryInterval := f.Duration("expiry-interval", 5*time.Second, "how often the worker expires exceptions, freezes and incidents past their expiry (`DURATION`); evaluations ignore them at their expiry in any case")
	ledgerKey := f.String("ledger-signing-key", "", "sign ledger exports (GET /v1/decisions/export) with this Ed25519 private key `FILE` (PEM PKCS#8, from `tollgate ledger keygen`); unsigned without it")
	attestationKey := f.String("attestation-signing-key", "", "sign every decision POST /v1/evaluate answers with this Ed25519 private key `FILE` (PEM PKCS#8, from `tollgate ledger keygen`): the reply carries \"attestation\", which `tollgate verify-decision` checks; none without it")
	githubFlags := addGitHubFlags(f)
	jobLease := f.Duration("job-lease", time.Minute, "how long this replica holds a gate job it checks (`DURATION`): the jobs of a replica that dies mid-check wait this long before another takes them")
	controlsRefresh := f.Duration("controls-refresh", time.Second, "cache the exceptions, freezes and incident in force this `DURATION`: how long a change made through another replica takes to apply here")
	evalTimeout := f.Duration("eval-timeout", rego.DefaultEvalTimeout, "time budget of one policy evaluation (a `DURATION`): past it the request is refused with policy_error")
	verification := addVerificationFlags(f)
	notifyTimeout := f.Duration("notify-timeout", 10*time.Second, "give up on one attempt to deliver a notification after this `DURATION` (it is retried)")
	notifyBackoff := f.Duration("notify-backoff", 10*time.Second, "wait about this `DURATION` before the first retry of a notification, twice as long before each next one (up to an hour)")
	notifyAttempts := f.Int("notify-max-attempts", 8, "attempts to deliver a notification (`N`) before it is recorded as failed")
	notifyRetention := f.Duration("notify-retention", 7*24*time.Hour, "keep delivered and failed notifications this `DURATION`, then prune them")
	pprofAddr := f.String("pprof-addr", "", "serve Go's profiler (net/http/pprof) on this `HOST:PORT`, apart from the API; off when empty")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *evalTimeout <= 0 {
		return f.usageError("--eval-timeout %v: want a positive duration, such as 1s", *evalTimeout)
	}
	if *commitLinger < 0 {
		return f.usageError("--commit-linger %v: want 0 (never wait) or a positive duration, such as 2ms", *commitLinger)
	}
	if *jobLease <= 0 {
		return f.usageError("--job-lease %v: want a positive duration, such as 1m", *jobLease)
	}
	if *minCoverage < 0 || *minCoverage > 100 {
		return f.usageError("--reload-min-coverage %v: want a percentage from 0 to 100", *minCoverage)
	}
	if *notifyTimeout <= 0 || *notifyBackoff <= 0 || *notifyAttempts <= 0 || *notifyRetention <= 0 {
		return f.usageError("--notify-timeout, --notify-backoff, --notify-retention must be positive durations, --notify-max-attempts a positive number")
	}
	if *replayLimit == 0 || *replayLimit < -1 || *replayWindow <= 0 {
		return f.usageError("--reload-replay-limit must be a positive number or -1 (no replay), --reload-replay-window a positive duration")
	}
	bundleKey, err := verification()
	if err != nil {
		return f.usageError("%v", err)
	}
	githubCfg, err := githubFlags()
	if err != nil {
		return f.usageError("%v", err)
	}
	if *keyPath == "" {
		return f.usageError("--license-key is required: the PEM public key that verifies the licence (see `tollgate license keygen`)")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return f.usageError("--tls-cert and --tls-key go together: give both for HTTPS, or neither")
	}
	limit, err := parseRate(*rateLimit)
	if err != nil {
		return f.usageError("--rate-limit: %v", err)
	}
	for name, v := range map[string]int{"rate-burst": *rateBurst, "max-evaluations": *maxEvaluations} {
		if v < 0 || (name == "max-evaluations" && v == 0) {
			return f.usageError("--%s must be a positive number, got %d", name, v)
		}
	}
	logger, err := newLogger(c, *logFormat, *logLevel)
	if err != nil {
		return f.usageError("%v", err)
	}
	ledgerSigner, err := loadSigner(*ledgerKey)
	if err != nil {
		return f.usageError("--ledger-signing-key: %v", err)
	}
	attestor, err := loadAttestor(*attestationKey)
	if err != nil {
		return f.usageError("--attestation-signing-key: %v", err)
	}
	err = serve(ctx, logger, serveConfig{
		addr: *addr, bundleDir: *bundleDir, dataDir: *dataDir, databaseURL: *databaseURL, commitLinger: *commitLinger,
		licencePath: *licencePath, keyPath: *keyPath,
		bodyLimit: *bodyLimit, debounce: *debounce, shutdownTimeout: *shutdownTimeout,
		minCoverage: *minCoverage, replayLimit: *replayLimit, replayWindow: *replayWindow,
		dev: *dev, tlsCert: *tlsCert, tlsKey: *tlsKey, tokenCacheTTL: *tokenCacheTTL,
		rateLimit: limit, rateBurst: *rateBurst, maxEvaluations: *maxEvaluations, evaluationWait: *evaluationWait,
		readHeaderTimeout: *readHeaderTimeout, readTimeout: *readTimeout, writeTimeout: *writeTimeout, idleTimeout: *idleTimeout,
		expiryInterval: *expiryInterval, controlsRefresh: *controlsRefresh, jobLease: *jobLease,
		evalTimeout: *evalTimeout, bundleKey: bundleKey, github: githubCfg,
		pprofAddr: *pprofAddr, ledgerSigner: ledgerSigner, attestor: attestor,
		notify: notify.Worker{Timeout: *notifyTimeout, Backoff: *notifyBackoff, MaxAttempts: *notifyAttempts, Retention: *notifyRetention},
	})
	if err != nil {
		logger.Error("tollgate serve stopped", "error", err)
		return exitError
	}
	return exitOK
}

// keepTimeout bounds the write of an activated bundle to the store, so
// that a slow store cannot hold up the reloads.
const keepTimeout = 10 * time.Second

// isLoopback reports whether addr listens on a loopback address only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

type serveConfig struct {
	addr, bundleDir, dataDir, databaseURL, licencePath, keyPath string
	pprofAddr                                                   string
	bodyLimit                                                   int64
	debounce, shutdownTimeout, evalTimeout                      time.Duration
	minCoverage                                                 float64 // percent; 0: none
	replayLimit                                                 int     // -1: no replay
	replayWindow                                                time.Duration
	commitLinger                                                time.Duration      // the embedded store's group commit (sqlite.WithLinger)
	bundleKey                                                   *rego.Verification // nil: unsigned bundles are served

	dev             bool
	tlsCert, tlsKey string
	tokenCacheTTL   time.Duration
	rateLimit       rate.Limit
	rateBurst       int
	maxEvaluations  int
	evaluationWait  time.Duration

	expiryInterval, controlsRefresh, jobLease time.Duration

	ledgerSigner ed25519.PrivateKey // signs exports; nil: unsigned
	attestor     *attest.Signer     // signs evaluate replies; nil: none
	github       *server.GitHub     // the deployment protection rule; nil: off

	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout time.Duration

	notify notify.Worker // its settings; serve gives it the rest
}

// parseRate reads a rate such as "100/s", "600/m", "3600/h" or "10" (per
// second); "0" is no limit.
func parseRate(s string) (rate.Limit, error) {
	count, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	n, err := strconv.ParseFloat(count, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || (hasUnit && per == 0) {
		return 0, fmt.Errorf("want a number of requests per second, minute or hour such as 100/s, 600/m or 10; 0 for no limit; got %q", s)
	}
	if !hasUnit {
		per = time.Second
	}
	return rate.Limit(n / per.Seconds()), nil
}

// requireToken refuses to serve with authentication on while the store has
// no active token: nobody could use the server, and the operator needs to
// know how to make one.
func requireToken(ctx context.Context, tokens tollgate.TokenStore, cfg serveConfig) error {
	list, err := tokens.Tokens(ctx, false)
	if err != nil {
		return fmt.Errorf("read the API tokens: %w", err)
	}
	for _, t := range list {
		if t.Active(time.Now()) {
			return nil
		}
	}
	where := "--data-dir " + cfg.dataDir
	if cfg.databaseURL != "" {
		where = "--database-url URL"
	}
	return fmt.Errorf("no active API token in the store, so no one could use this server: create one with "+
		"`tollgate token create --name admin --scopes admin %s` (it prints the token once), then start serve again; "+
		"or use --dev for development without authentication", where)
}

// openStore opens the embedded store, or returns a store that is still
// connecting to PostgreSQL and the function that connects it, to run beside
// the server: the API serves at once, answering 503 (and /readyz not ready)
// until the database is reached and migrated. connect fails, stopping serve,
// only on what waiting cannot fix: a malformed URL, a refused migration.
func openStore(ctx context.Context, logger *slog.Logger, cfg serveConfig) (store tollgate.DecisionStore, name string, connect func(context.Context) error, err error) {
	if cfg.databaseURL == "" {
		s, err := sqlite.Open(ctx, cfg.dataDir, sqlite.WithLinger(cfg.commitLinger))
		if err != nil {
			return nil, "", nil, err
		}
		logLegacyChained(logger, s)
		return s, "sqlite:" + filepath.Join(cfg.dataDir, sqlite.FileName), func(context.Context) error { return nil }, nil
	}
	late := &lateStore{}
	connect = func(ctx context.Context) error {
		s, err := postgres.OpenWithRetry(ctx, cfg.databaseURL, logger)
		if err != nil {
			if ctx.Err() != nil {
				return nil // shutting down before the database was reached
			}
			return fmt.Errorf("the decision store cannot be opened: %w", err)
		}
		logger.Info("decision store ready", "store", "postgres")
		logLegacyChained(logger, s)
		if !cfg.dev {
			if err := requireToken(ctx, s, cfg); err != nil {
				return errors.Join(err, s.Close())
			}
		}
		return late.set(s)
	}
	return late, "postgres", connect, nil
}

// logLegacyChained says when opening the store chained the decisions it
// held from before the ledger existed: the one time records get a place in
// the chain other than when they are recorded (see the README's "For
// auditors"), so that it is never silent.
func logLegacyChained(logger *slog.Logger, s interface{ LegacyChained() int64 }) {
	if n := s.LegacyChained(); n > 0 {
		logger.Warn("ledger started: chained the decisions recorded before the ledger existed, oldest first; the ledger covers them from now on, not the edits made to them before",
			"decisions", n)
	}
}

func newLogger(c *cli, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: want debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
	}
}

// serve wires the parts, runs until ctx is done, then shuts down in order:
// stop accepting, drain requests in flight, flush and close the store.
func serve(ctx context.Context, logger *slog.Logger, cfg serveConfig) error {
	verifier, err := licence.NewVerifierFromFiles(cfg.keyPath, cfg.licencePath)
	if err != nil {
		return err
	}
	if l := verifier.Check(time.Now()); l.Status != "valid" {
		logger.Warn("the licence is not valid: every request will be refused", "status", l.Status, "detail", l.Detail)
	}

	registry := prometheus.NewRegistry()
	metrics := server.NewMetrics(registry)
	if cfg.bundleKey != nil {
		logger.Info("bundle signatures required", "key_id", cfg.bundleKey.KeyID(), "alg", cfg.bundleKey.Algorithm())
	} else {
		logger.Warn("bundle signatures are not checked: anyone who can write the bundle directory controls the policy (see --bundle-verification-key)")
	}
	store, storeName, connectStore, err := openStore(ctx, logger, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("close the store", "error", err)
		}
	}()
	registerStoreMetrics(registry, store)
	// onActivate keeps a newly activated bundle in the store; set once the
	// engine is built, before the watcher starts.
	var onActivate func()
	engine, err := rego.NewEngine(ctx, cfg.bundleDir, rego.EngineOptions{
		Debounce: cfg.debounce,
		Logger:   logger,
		OnReload: func(status rego.BundleStatus, err error) {
			metrics.ObserveReload(status, err)
			if err == nil && onActivate != nil {
				onActivate()
			}
		},
		Verification: cfg.bundleKey,
		EvalTimeout:  cfg.evalTimeout,
		// A candidate is activated only if it decides the recorded
		// traffic without new policy_errors; the first load has no other
		// bundle to keep serving and is not replayed.
		MinCoverage:  cfg.minCoverage,
		History:      store,
		ReplayLimit:  cfg.replayLimit,
		ReplayWindow: cfg.replayWindow,
		// A sink whose URL or secret is missing from the environment or
		// its file stops serve at start and refuses a reload.
		Check: notify.CheckBundle(os.LookupEnv),
	})
	if err != nil {
		return err
	}
	metrics.Activated(engine.Status())
	// After the bundle: a bad bundle is the first thing to fix.
	if _, late := store.(*lateStore); !late && !cfg.dev {
		if err := requireToken(ctx, store.(tollgate.TokenStore), cfg); err != nil {
			return err
		}
	}

	// Every activated bundle is kept in the store, so that its decisions
	// can be replayed; the gate also keeps it before the first decision
	// it records, so that a store not reachable at activation loses none.
	keeper := &rego.Keeper{Store: store.(tollgate.BundleStore), Now: time.Now}
	keepActive := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, keepTimeout)
		defer cancel()
		if err := keeper.Keep(ctx, engine.Policy().Bundle()); err != nil {
			logger.Warn("the active bundle is not kept in the store yet; the first decision will keep it", "error", err)
		}
	}
	onActivate = func() {
		keepActive(ctx)
		limitMemory(logger, false)
	}
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	controls := &rego.Controls{Store: store.(tollgate.ControlStore), Policies: engine, Now: time.Now, NewID: newID,
		Refresh: cfg.controlsRefresh}
	gate := &rego.Gate{
		Policies: engine,
		Store:    store,
		Licence:  verifier,
		Now:      time.Now,
		NewID:    newID,
		Score:    cvss.Best,
		EPSS:     store.(tollgate.EPSSStore),
		Scans:    store.(tollgate.ScanStore),
		Controls: controls,
		Bundles:  keeper,
	}
	jobs := &server.Jobs{Store: store.(tollgate.JobStore), Lease: cfg.jobLease,
		Owner: "worker-" + uuid.NewString()} // named here, to be logged
	api := server.New(server.Config{
		Gate: gate, Engine: engine, Store: store, Tokens: store.(tollgate.TokenStore),
		Metrics: metrics, Registry: registry, Logger: logger,
		Dev: cfg.dev, TokenCacheTTL: cfg.tokenCacheTTL, GitHub: cfg.github,
		BodyLimit: cfg.bodyLimit, MaxEvaluations: cfg.maxEvaluations, EvaluationWait: cfg.evaluationWait,
		RateLimit: cfg.rateLimit, RateBurst: cfg.rateBurst, Controls: controls,
		LedgerSigner:  cfg.ledgerSigner,
		Bundles:       store.(tollgate.BundleStore),
		Attestor:      cfg.attestor,
		Jobs:          jobs,
		Notifications: store.(tollgate.Outbox),
	})
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       cfg.idleTimeout,
		MaxHeaderBytes:    server.MaxHeaderRead, // the API refuses more than server.HeaderLimit, in JSON
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.tlsCert != "" {
		// Loaded now, so that a bad pair stops serve at once with a clear error.
		pair, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	}
	listener, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	scheme := "http"
	if srv.TLSConfig != nil {
		scheme = "https"
	}
	if cfg.dev {
		logger.Warn("AUTHENTICATION IS OFF (--dev): anyone who can reach this address can evaluate, read the history and manage tokens, as identity \"dev\"; never use --dev in production",
			"addr", listener.Addr().String(), "loopback_only", isLoopback(listener.Addr()))
	}
	if cfg.attestor != nil {
		logger.Info("evaluate replies carry a signed attestation", "key_id", cfg.attestor.KeyID())
	}
	logger.Info("tollgate serving", "addr", listener.Addr().String(), "scheme", scheme, "bundle", cfg.bundleDir,
		"revision", engine.Status().Revision, "store", storeName, "auth", !cfg.dev, "job_worker", jobs.Owner)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(listener, "", "")
		} else {
			err = srv.Serve(listener)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error { return engine.Watch(gctx) })
	// SIGHUP (systemctl reload) reloads the bundle at once, without
	// waiting for the watcher's debounce or poll; it used to stop serve.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				logger.Info("SIGHUP: reloading the bundle", "dir", cfg.bundleDir)
				_ = engine.Reload(gctx) // logged, counted and shown in /v1/bundles like any reload
			}
		}
	})
	if cfg.pprofAddr != "" {
		g.Go(func() error { return servePprof(gctx, logger, cfg.pprofAddr) })
	}
	g.Go(func() error {
		if err := connectStore(gctx); err != nil || gctx.Err() != nil {
			return err
		}
		keepActive(gctx)
		limitMemory(logger, true) // the startup's load and keep are behind us
		return nil
	})
	g.Go(func() error {
		expiry.Run(gctx, controls.Store, cfg.expiryInterval, time.Now, logger, func(tollgate.Control) { controls.Invalidate() })
		return nil
	})
	g.Go(func() error {
		api.RunJobs(gctx)
		return nil
	})
	notifier := cfg.notify
	notifier.Store, notifier.Logger, notifier.Metrics = store.(tollgate.Outbox), logger, notify.NewMetrics(registry)
	notifier.Config = func() *rego.Notifications { return engine.Policy().Bundle().Config.GlobalPolicy.Notifications }
	notifier.Callbacks = map[string]notify.Callback{"github": api.ReviewGitHub}
	g.Go(func() error { return notifier.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("shutting down: draining requests in flight")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.shutdownTimeout)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	logger.Info("tollgate stopped")
	return err
}

// servePprof serves the profiler on its own listener, never on the API's:
// profiles show the bundle and the requests, so the address should be
// loopback. It stops with ctx.
func servePprof(ctx context.Context, logger *slog.Logger, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	logger.Warn("profiler listening", "addr", addr)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("pprof on %s: %w", addr, err)
	}
	return nil
}
