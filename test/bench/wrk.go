package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// load is one wrk run against one server.
type load struct {
	target   string // tollgate, opa or ceiling: the request shape (load.lua)
	keys     string // varying or same
	projects int
	duration time.Duration
}

// wrkResult is what load.lua's done() prints.
type wrkResult struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	P50US      float64 `json:"p50_us"`
	P90US      float64 `json:"p90_us"`
	P99US      float64 `json:"p99_us"`
	MaxUS      float64 `json:"max_us"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"` // answers other than 2xx/3xx
	Timeout    int64   `json:"timeout"`

	CPUSeconds float64 `json:"-"` // of the server, from /proc
}

func (r wrkResult) errors() int64 { return r.Connect + r.Read + r.Write + r.Status + r.Timeout }

// wrk runs l against p with h.connections connections and returns what
// wrk measured, with the largest RSS of p seen while it ran and the CPU
// time p used.
func (h *harness) wrk(p *proc, l load) (wrkResult, float64, error) {
	cpu := p.cpuSeconds()
	res, rss, err := h.runWrk(p, l)
	res.CPUSeconds = p.cpuSeconds() - cpu
	return res, rss, err
}

func (h *harness) runWrk(p *proc, l load) (wrkResult, float64, error) {
	cmd := exec.Command("wrk", "-t", strconv.Itoa(h.threads), "-c", strconv.Itoa(h.connections),
		"-d", fmt.Sprintf("%ds", int(l.duration.Seconds())), "--timeout", "10s",
		"-s", h.script, "http://"+p.addr)
	cmd.Env = append(os.Environ(),
		"BENCH_TARGET="+l.target, "BENCH_KEYS="+l.keys,
		"BENCH_PROJECTS="+strconv.Itoa(max(l.projects, 1)),
		"BENCH_AUTHORIZATION="+authorization)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return wrkResult{}, 0, fmt.Errorf("start wrk (install it: apt-get install wrk): %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var rss float64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return wrkResult{}, rss, fmt.Errorf("wrk: %v: %s", err, stderr.String())
			}
			return parseWrk(stdout.String(), rss)
		case <-tick.C:
			rss = max(rss, p.rssMB())
		}
	}
}

func parseWrk(out string, rss float64) (wrkResult, float64, error) {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCH "); ok {
			var r wrkResult
			err := json.Unmarshal([]byte(rest), &r)
			return r, rss, err
		}
	}
	return wrkResult{}, rss, fmt.Errorf("wrk printed no BENCH line: %s", out)
}
