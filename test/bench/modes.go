package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
)

// The request of the sanity checks: load.lua's, on project-00000.
const checkPayload = `{"repository":"org/project-00000","branch":%q,"pipeline":"deploy-prod",` +
	`"metadata":{"initiator":"bench","run_id":"1","environment":"production"}}`

// server is one kind of server the harness loads.
type server struct {
	name   string
	target string // load.lua's BENCH_TARGET
	// start starts a fresh one (a new store or database) for one run.
	start func(run string) (*proc, error)
	// check asks it once, for keys, and fails unless it decides as tollgate
	// should: accepted with a new key, refused with cooldown on a used one.
	check func(p *proc, keys string) error
}

const smallRegistry = 10 // projects in the compare runs

// The baselines of compare: stock OPA on tollgate's own bundle, and on the
// minimal policy (test/bench/minimal).
const (
	stockOPA   = "stock opa"
	minimalOPA = "stock opa, minimal policy"
)

func (h *harness) compare(ctx context.Context) ([]row, error) {
	bundle := filepath.Join(h.work, "bundle")
	if err := benchBundle(h.root, bundle, smallRegistry); err != nil {
		return nil, err
	}
	minimal := filepath.Join(h.work, "minimal")
	if err := minimalBundle(h.root, minimal, smallRegistry); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "starting PostgreSQL (adapters/pgtest) …")
	pg, err := pgtest.Launch()
	if err != nil {
		return nil, err
	}
	defer pg.Close()

	servers := []server{
		h.tollgateServer("tollgate sqlite", bundle, func(run string) (string, error) {
			return filepath.Join(h.work, "data-"+run), nil
		}),
		h.tollgateServer("tollgate postgres", bundle, func(run string) (string, error) {
			return createDatabase(ctx, pg.URL(), "bench_"+run)
		}),
		h.opaServer(bundle),
		h.minimalServer(minimal),
		h.ceilingServer(),
	}
	if h.against != "" {
		servers = append(servers[:1], append([]server{h.tollgateBinServer(h.against, "tollgate sqlite (-against)", bundle,
			func(run string) (string, error) { return filepath.Join(h.work, "data-against-"+run), nil })}, servers[1:]...)...)
	}
	var rows []row
	for _, keys := range []string{"varying", "same"} {
		var base, minimal row
		for i, s := range servers {
			if !h.measures(s.name) {
				continue
			}
			r, err := h.measure(s, keys, smallRegistry, fmt.Sprintf("%s_%d", keys, i), nil)
			if err != nil {
				return nil, err
			}
			switch s.name {
			case stockOPA:
				r.base = true
				base = r
			case minimalOPA:
				minimal = r
			}
			rows = append(rows, r)
		}
		for i := range rows {
			if rows[i].Keys != keys {
				continue
			}
			rows[i].against(base)
			if strings.HasPrefix(rows[i].Name, "tollgate") {
				rows[i].RPSRatioMinimal, rows[i].P99RatioMinimal = ratios(rows[i], minimal)
				rows[i].judge()
			}
		}
	}
	return rows, nil
}

// measure starts a fresh s, checks it, warms it up and loads it once.
// during, if set, runs beside the measured load until it ends.
func (h *harness) measure(s server, keys string, projects int, run string, during func(p *proc, stop <-chan struct{})) (row, error) {
	fmt.Fprintf(os.Stderr, "%s, %s keys, %d projects …\n", s.name, keys, projects)
	p, err := s.start(run)
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	if err := s.check(p, keys); err != nil {
		return row{}, fmt.Errorf("%s decides wrongly, so its numbers would mean nothing: %w", s.name, err)
	}
	l := load{target: s.target, keys: keys, projects: projects, duration: h.warmup}
	if _, _, err := h.wrk(p, l); err != nil {
		return row{}, err
	}
	l.duration = h.duration
	stop := make(chan struct{})
	finished := make(chan struct{})
	if p.pprof != "" {
		profile, also := h.profiler(fmt.Sprintf("%s-%s-%d%s", s.name, keys, projects, h.profileSuffix(during))), during
		during = func(p *proc, stop <-chan struct{}) {
			var wg sync.WaitGroup
			if also != nil {
				wg.Go(func() { also(p, stop) })
			}
			profile(p, stop)
			wg.Wait()
		}
	}
	if during != nil {
		go func() { defer close(finished); during(p, stop) }()
	} else {
		close(finished)
	}
	res, rss, err := h.wrk(p, l)
	close(stop)
	<-finished
	if err != nil {
		return row{}, err
	}
	return newRow(s.name, keys, projects, res, rss), nil
}

// tollgateServer is tollgate serve on the bundle, with the store dsn gives
// for each run (a data directory or a postgres:// URL).
// env is added to its environment (GOMEMLIMIT=…, say).
func (h *harness) tollgateServer(name, bundle string, store func(run string) (string, error), env ...string) server {
	return h.tollgateBinServer(h.tollgate, name, bundle, store, env...)
}

// tollgateBinServer is tollgateServer with the binary bin.
func (h *harness) tollgateBinServer(bin, name, bundle string, store func(run string) (string, error), env ...string) server {
	return server{
		name: name, target: "tollgate",
		start: func(run string) (*proc, error) {
			dsn, err := store(run)
			if err != nil {
				return nil, err
			}
			args := h.tollgateArgs("{addr}", bundle, dsn)
			var pprof string
			if h.profile != "" {
				if pprof, err = freeAddr(); err != nil {
					return nil, err
				}
				args = append(args, "--pprof-addr", pprof)
			}
			p, err := h.start(name, "/readyz", env, bin, args...)
			if p != nil {
				p.pprof = pprof
			}
			return p, err
		},
		check: func(p *proc, keys string) error {
			return checkDecisions(keys, func(branch string) (tollgate.Decision, error) {
				var d tollgate.Decision
				err := post(p.url("/v1/evaluate"), fmt.Sprintf(checkPayload, branch), &d)
				return d, err
			})
		},
	}
}

// opaServer is stock `opa run --server` on the same bundle, given the
// context tollgate computes itself (load.lua's target "opa").
func (h *harness) opaServer(bundle string) server {
	return h.stockServer(stockOPA, "opa", bundle, "/v1/data/tollgate/decision", func(branch string, now int64, used bool) string {
		cooldown := "{}"
		if used {
			cooldown = fmt.Sprintf(`{"last_accepted_ns":%d}`, now)
		}
		return fmt.Sprintf(`{"input":{"request":`+checkPayload+`,"context":{"now_ns":%d,`+
			`"licence":{"status":"valid","detail":"","subject":"bench","edition":"pro","expires_ns":4102444800000000000},`+
			`"cooldown":%s}}}`, branch, now, cooldown)
	})
}

// minimalServer is stock `opa run --server` on the minimal policy, given
// the licence's verdict and the key's last acceptance (load.lua's target
// "minimal"); the clock is OPA's.
func (h *harness) minimalServer(bundle string) server {
	return h.stockServer(minimalOPA, "minimal", bundle, "/v1/data/minimal/decision", func(branch string, now int64, used bool) string {
		last := ""
		if used {
			last = fmt.Sprintf(`,"last_accepted_ns":%d`, now)
		}
		return fmt.Sprintf(`{"input":{"request":`+checkPayload+`,"licence":"valid"%s}}`, branch, last)
	})
}

// stockServer is `opa run --server` on bundle, asked at path with the
// bodies body makes: for branch, at now, with the key used before or not.
func (h *harness) stockServer(name, target, bundle, path string, body func(branch string, now int64, used bool) string) server {
	return server{
		name: name, target: target,
		start: func(string) (*proc, error) {
			return h.start(name, "/health", nil, h.opa, "run", "--server", "--addr", "{addr}",
				"--log-level", "error", bundle)
		},
		check: func(p *proc, keys string) error {
			now := time.Now().UnixNano()
			n := 0
			return checkDecisions(keys, func(branch string) (tollgate.Decision, error) {
				n++
				var out struct {
					Result *tollgate.Decision `json:"result"`
				}
				if err := post(p.url(path), body(branch, now, n > 1 && keys == "same"), &out); err != nil {
					return tollgate.Decision{}, err
				}
				if out.Result == nil {
					return tollgate.Decision{}, fmt.Errorf("%s is undefined", path)
				}
				return *out.Result, nil
			})
		},
	}
}

// checkDecisions asks twice on one key: the first must be accepted, and
// with keys "same" the second refused with cooldown.
func checkDecisions(keys string, decide func(branch string) (tollgate.Decision, error)) error {
	branch := "main"
	if keys == "varying" {
		branch = "release/check"
	}
	d, err := decide(branch)
	if err != nil {
		return err
	}
	if d.Status != tollgate.Accepted {
		return fmt.Errorf("first decision: want accepted, got %s %v", d.Status, d.Reasons)
	}
	if keys != "same" {
		return nil
	}
	if d, err = decide(branch); err != nil {
		return err
	}
	if d.Status != tollgate.Refused || len(d.Reasons) != 1 || d.Reasons[0].Code != "cooldown" {
		return fmt.Errorf("second decision on the same key: want refused with cooldown, got %s %v", d.Status, d.Reasons)
	}
	return nil
}

// ceilingServer is a net/http handler that decodes the payload as tollgate
// does and answers a fixed decision: what HTTP and JSON alone cost here.
func (h *harness) ceilingServer() server {
	self, _ := os.Executable()
	return server{
		name: "net/http ceiling", target: "ceiling",
		start: func(string) (*proc, error) {
			return h.start("net/http ceiling", "/healthz", nil, self, "serve-ceiling", "{addr}")
		},
		check: func(p *proc, keys string) error {
			var d tollgate.Decision
			return post(p.url("/v1/evaluate"), fmt.Sprintf(checkPayload, "main"), &d)
		},
	}
}

func serveCeiling(addr string) {
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /v1/evaluate", func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := tollgate.DecodeRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d := tollgate.Decision{ID: strconv.FormatInt(n.Add(1), 10), Status: tollgate.Accepted,
			Reasons: []tollgate.Reason{}, Warnings: []tollgate.Reason{}, Pipeline: req.Pipeline,
			Branch: req.Branch, Environment: req.Metadata.Environment, EvaluatedAt: time.Now().UTC()}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// createDatabase creates an empty database on the PostgreSQL server of
// adminURL and returns its URL.
func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// profileSuffix tells apart the profiles of a row measured with and
// without something running beside the load.
func (h *harness) profileSuffix(during func(p *proc, stop <-chan struct{})) string {
	if during != nil {
		return "-during"
	}
	return ""
}

// profiler fetches a CPU profile of p over the measured run (all but its
// last second) into h.profile/<name>.pprof.
func (h *harness) profiler(name string) func(p *proc, stop <-chan struct{}) {
	return func(p *proc, stop <-chan struct{}) {
		seconds := max(1, int(h.duration.Seconds())-1)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, seconds))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		path := filepath.Join(h.profile, strings.NewReplacer(" ", "-", "/", "-").Replace(name)+".pprof")
		f, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		fmt.Fprintln(os.Stderr, "profile:", path)
	}
}
