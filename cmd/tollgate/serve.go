package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/cvss"
	"github.com/tollgate/tollgate/adapters/licence"
	"github.com/tollgate/tollgate/adapters/postgres"
	"github.com/tollgate/tollgate/adapters/sqlite"
	"github.com/tollgate/tollgate/rego"
	"github.com/tollgate/tollgate/server"
)

func runServe(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "serve",
		"serve --license FILE --license-key FILE [--addr HOST:PORT] [--bundle DIR] [--data-dir DIR]",
		`Serves the HTTP API (POST /v1/evaluate, /v1/simulate, GET /v1/decisions,
/v1/bundles, /healthz, /readyz, /metrics). Decisions are recorded in the
embedded store in --data-dir before they are answered. The bundle directory
is watched: a changed bundle replaces the active one only if it compiles, its
configuration validates and its own tests pass. SIGTERM or SIGINT drain the
requests in flight and flush the history before exiting.`)
	addr := f.String("addr", "127.0.0.1:8181", "listen on `HOST:PORT` (port 0 picks a free one; the log says which)")
	bundleDir := f.String("bundle", "bundles/tollgate", "the policy bundle `DIR`, watched for changes")
	dataDir := f.String("data-dir", ".data/tollgate", "the embedded store's `DIR`, created if missing (not used with --database-url)")
	databaseURL := f.String("database-url", "", "PostgreSQL `URL` instead of the embedded store")
	licencePath := f.String("license", "", "the licence `FILE` (a JWT); a missing or bad licence refuses every request with licence_invalid")
	keyPath := f.String("license-key", "", "the PEM public key `FILE` that verifies the licence (required)")
	logFormat := f.String("log-format", "text", "log `FORMAT`: text or json")
	logLevel := f.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	bodyLimit := f.Int64("body-limit", server.DefaultBodyLimit, "largest request body in `BYTES`")
	debounce := f.Duration("reload-debounce", rego.DefaultDebounce, "wait this `DURATION` after the last change to the bundle before reloading it")
	shutdownTimeout := f.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM, wait at most this `DURATION` for requests in flight")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *keyPath == "" {
		return f.usageError("--license-key is required: the PEM public key that verifies the licence (see `tollgate license keygen`)")
	}
	logger, err := newLogger(c, *logFormat, *logLevel)
	if err != nil {
		return f.usageError("%v", err)
	}
	err = serve(ctx, logger, serveConfig{
		addr: *addr, bundleDir: *bundleDir, dataDir: *dataDir, databaseURL: *databaseURL,
		licencePath: *licencePath, keyPath: *keyPath,
		bodyLimit: *bodyLimit, debounce: *debounce, shutdownTimeout: *shutdownTimeout,
	})
	if err != nil {
		logger.Error("tollgate serve stopped", "error", err)
		return exitError
	}
	return exitOK
}

type serveConfig struct {
	addr, bundleDir, dataDir, databaseURL, licencePath, keyPath string
	bodyLimit                                                   int64
	debounce, shutdownTimeout                                   time.Duration
}

// openStore opens the embedded store, or returns a store that is still
// connecting to PostgreSQL and the function that connects it, to run beside
// the server: the API serves at once, answering 503 (and /readyz not ready)
// until the database is reached and migrated. connect fails, stopping serve,
// only on what waiting cannot fix: a malformed URL, a refused migration.
func openStore(ctx context.Context, logger *slog.Logger, cfg serveConfig) (store tollgate.DecisionStore, name string, connect func(context.Context) error, err error) {
	if cfg.databaseURL == "" {
		s, err := sqlite.Open(ctx, cfg.dataDir)
		return s, "sqlite:" + filepath.Join(cfg.dataDir, sqlite.FileName), func(context.Context) error { return nil }, err
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
		return late.set(s)
	}
	return late, "postgres", connect, nil
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
	engine, err := rego.NewEngine(ctx, cfg.bundleDir, rego.EngineOptions{
		Debounce: cfg.debounce,
		Logger:   logger,
		OnReload: metrics.ObserveReload,
	})
	if err != nil {
		return err
	}
	metrics.Activated(engine.Status())

	store, storeName, connectStore, err := openStore(ctx, logger, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("close the store", "error", err)
		}
	}()

	gate := &rego.Gate{
		Policies: engine,
		Store:    store,
		Licence:  verifier,
		Now:      time.Now,
		NewID:    func() string { return uuid.Must(uuid.NewV7()).String() },
		Score:    cvss.Best,
		EPSS:     store.(tollgate.EPSSStore),
		Scans:    store.(tollgate.ScanStore),
	}
	api := server.New(server.Config{
		Gate: gate, Engine: engine, Store: store, Metrics: metrics, Registry: registry,
		Logger: logger, BodyLimit: cfg.bodyLimit,
	})
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	listener, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	logger.Info("tollgate serving", "addr", listener.Addr().String(), "bundle", cfg.bundleDir,
		"revision", engine.Status().Revision, "store", storeName)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error { return engine.Watch(gctx) })
	g.Go(func() error { return connectStore(gctx) })
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
