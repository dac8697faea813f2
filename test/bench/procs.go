package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Serve arguments and request headers live here, and only here. The
// harness runs serve with --dev (no tokens: every request acts with every
// scope, as `make run` does); to measure with token checks instead, create
// a token with `tollgate token create` against the store, drop --dev and
// set authorization to "Bearer <token>": one line each.
var (
	serveAuthArgs = []string{"--dev"} // extra arguments of every tollgate serve
	authorization = ""                // the Authorization header of every request to tollgate
)

// tollgateArgs is the command line of one tollgate server of the harness.
func (h *harness) tollgateArgs(addr, bundle, store string) []string {
	args := []string{"serve", "--addr", addr, "--bundle", bundle,
		"--license", h.licence, "--license-key", h.publicKey,
		"--log-level", "warn", "--reload-debounce", "100ms"}
	if strings.HasPrefix(store, "postgres://") {
		args = append(args, "--database-url", store)
	} else {
		args = append(args, "--data-dir", store)
	}
	return append(args, serveAuthArgs...)
}

// proc is a server process the harness started.
type proc struct {
	name string
	addr string // host:port
	cmd  *exec.Cmd
	log  string
	// pprof is tollgate's --pprof-addr when the harness profiles it.
	pprof string
}

// start runs a server, with env added to the harness's environment, and
// waits until ready answers 200.
func (h *harness) start(name, ready string, env []string, bin string, args ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{addr}", addr)
	}
	logPath := filepath.Join(h.work, strings.NewReplacer(" ", "-", "/", "-").Replace(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, addr: addr, cmd: cmd, log: logPath}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready at %s after 90 s; its log: %s", name, ready, p.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// stop ends the server with SIGTERM (tollgate flushes its history), or
// SIGKILL after 30 s.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within 30 s of SIGTERM", p.name)
	}
}

func (p *proc) logTail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// rssMB is the process's resident set now, in MB.
func (p *proc) rssMB() float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the CPU time the process has used so far (user and
// system), from /proc/PID/stat in clock ticks of 1/100 s.
func (p *proc) cpuSeconds() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields start after its ")".
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

// post sends one request and decodes the JSON answer into out.
func post(url, body string, out any) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

func get(url string, out any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// build compiles a Go main package into the work directory.
func (h *harness) build(ctx context.Context, name, pkg string) (string, error) {
	out := filepath.Join(h.work, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = h.root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out, nil
}

// run runs a command of the harness and returns its standard output.
func run(bin string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
