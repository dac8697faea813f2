package test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// sendAs sends a request with the token given ("" for none) and returns
// the status, the headers and the body.
func (s *server) sendAs(t *testing.T, token, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// TestServeRefusesToStartWithoutAToken: with authentication on and no
// token in the store, serve exits and says how to make one.
func TestServeRefusesToStartWithoutAToken(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	code, _, stderr := runTollgate(t, nil, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--bundle", newBundle(t), "--license", validLicence, "--license-key", publicKey)
	if code != 2 || !strings.Contains(stderr, "no active API token") ||
		!strings.Contains(stderr, "tollgate token create --name admin --scopes admin --data-dir "+dataDir) ||
		!strings.Contains(stderr, "--dev") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	// A revoked token does not count.
	createToken(t, dataDir, "old", "admin")
	if code, out, stderr := runTollgate(t, nil, nil, "token", "revoke", "old", "--data-dir", dataDir); code != 0 {
		t.Fatalf("token revoke: %d %s %s", code, out, stderr)
	}
	code, _, stderr = runTollgate(t, nil, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--bundle", newBundle(t), "--license", validLicence, "--license-key", publicKey)
	if code != 2 || !strings.Contains(stderr, "no active API token") {
		t.Fatalf("with only a revoked token: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestServeUsageErrors: flags that cannot work together stop serve at once.
func TestServeUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "cert.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "key.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--rate-limit", "fast"}, "--rate-limit: want a number of requests"},
		{[]string{"--rate-limit", "10/d"}, "--rate-limit: want a number of requests"},
		{[]string{"--max-evaluations", "0"}, "--max-evaluations must be a positive number"},
		{[]string{"--commit-linger", "-1ms"}, "--commit-linger -1ms: want 0 (never wait) or a positive duration"},
	} {
		code, _, stderr := runTollgate(t, nil, nil, append([]string{"serve", "--dev", "--license-key", publicKey}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestAuthEndToEnd: tokens made with the CLI, used over HTTP and by
// `tollgate check`, revoked with the CLI while the server runs.
func TestAuthEndToEnd(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	admin := createToken(t, dataDir, "admin", "admin,read")
	ci := createToken(t, dataDir, "ci", "evaluate", "--ttl", "1h")
	s := startServer(t, serverOptions{dataDir: dataDir, auth: true, args: []string{"--token-cache-ttl", "300ms"}})
	body := mustJSON(t, req("org/e2e", "main", "deploy", envDev))

	status, header, raw := s.sendAs(t, "", http.MethodPost, "/v1/evaluate", body)
	requireError(t, status, raw, http.StatusUnauthorized, "unauthorized", "authentication required")
	if got := header.Get("WWW-Authenticate"); got != `Bearer realm="tollgate"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	status, _, raw = s.sendAs(t, ci, http.MethodGet, "/v1/decisions", nil)
	requireError(t, status, raw, http.StatusForbidden, "forbidden", `token "ci" lacks the read scope`)
	// Probes and metrics need no token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _, raw := s.sendAs(t, "", http.MethodGet, path, nil); status != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", path, status, raw)
		}
	}

	status, _, raw = s.sendAs(t, ci, http.MethodPost, "/v1/evaluate", body)
	if status != http.StatusOK {
		t.Fatalf("evaluate with the ci token: %d %s", status, raw)
	}
	d := decode[decision](t, raw)
	_, _, raw = s.sendAs(t, admin, http.MethodGet, "/v1/decisions/"+d.ID, nil)
	if rec := decode[record](t, raw); rec.Identity != "ci" {
		t.Errorf("the decision records identity %q, want ci", rec.Identity)
	}

	// tollgate check sends its --token (or TOLLGATE_TOKEN).
	checkArgs := []string{"check", "--server", s.cliBase(t), "--repository", "org/e2e", "--branch", "main", "--pipeline", "deploy", "--environment", envDev}
	if code, stdout, stderr := runTollgate(t, nil, nil, append(checkArgs, "--token", ci)...); code != 0 || !strings.HasPrefix(stdout, "accepted:") {
		t.Fatalf("check --token: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := runTollgate(t, []string{"TOLLGATE_TOKEN=" + ci}, nil, checkArgs...); code != 0 {
		t.Fatalf("check with TOLLGATE_TOKEN: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runTollgate(t, nil, nil, checkArgs...); code != 2 || !strings.Contains(stderr, "HTTP 401, unauthorized") {
		t.Fatalf("check without a token: exit %d\n%s", code, stderr)
	}

	// An admin makes a token through the API; it works at once.
	status, _, raw = s.sendAs(t, admin, http.MethodPost, "/v1/tokens", []byte(`{"name":"reader","scopes":["read"]}`))
	if status != http.StatusCreated {
		t.Fatalf("POST /v1/tokens: %d %s", status, raw)
	}
	reader := decode[struct {
		Token string `json:"token"`
	}](t, raw).Token
	if status, _, raw := s.sendAs(t, reader, http.MethodGet, "/v1/decisions", nil); status != http.StatusOK {
		t.Fatalf("the new reader token: %d %s", status, raw)
	}

	// `token list` shows them all, without secrets.
	code, stdout, stderr := runTollgate(t, nil, nil, "token", "list", "--data-dir", dataDir)
	if code != 0 || strings.Count(stdout, "active") != 4 || strings.Contains(stdout, ci[20:]) {
		t.Fatalf("token list: exit %d\n%s%s", code, stdout, stderr)
	}

	// Revoked by the CLI, in another process: refused within the cache TTL.
	if code, stdout, stderr := runTollgate(t, nil, nil, "token", "revoke", "ci", "--data-dir", dataDir); code != 0 || !strings.Contains(stdout, `revoked token "ci"`) {
		t.Fatalf("token revoke: exit %d\n%s%s", code, stdout, stderr)
	}
	took := eventually(t, 30*time.Second, "the revoked token is refused", func() bool {
		status, _, _ := s.sendAs(t, ci, http.MethodPost, "/v1/evaluate", body)
		return status == http.StatusUnauthorized
	})
	t.Logf("revocation by the CLI applied after %v (token cache TTL 300ms)", took)
	status, _, raw = s.sendAs(t, ci, http.MethodPost, "/v1/evaluate", body)
	requireError(t, status, raw, http.StatusUnauthorized, "unauthorized", `token "ci" was revoked`)
	if code, _, stderr := runTollgate(t, nil, nil, append(checkArgs, "--token", ci)...); code != 2 || !strings.Contains(stderr, "was revoked") {
		t.Fatalf("check with the revoked token: exit %d\n%s", code, stderr)
	}
}

// TestRateLimitEndToEnd: a token over its rate gets 429 with Retry-After.
func TestRateLimitEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{auth: true, args: []string{"--rate-limit", "60/m", "--rate-burst", "3"}})
	body := mustJSON(t, req("org/e2e", "main", "deploy", envDev))
	limited := 0
	for range 6 {
		status, header, raw := s.sendAs(t, s.token, http.MethodPost, "/v1/evaluate", body)
		switch status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			requireError(t, status, raw, http.StatusTooManyRequests, "rate_limited", "1 requests per second (bursts of 3)")
			if got := header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1", got)
			}
		default:
			t.Fatalf("%d %s", status, raw)
		}
	}
	// Six requests in well under a second: three pass, then at most one
	// more (if a second went by), the rest are limited.
	if limited < 2 {
		t.Fatalf("%d of 6 requests limited, want at least 2", limited)
	}
}

// TestTLS: with --tls-cert and --tls-key the API is HTTPS only.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{tls: true})
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("base %s", s.base)
	}
	s.evaluate(t, req("org/e2e", "main", "deploy", envDev))
	resp, err := http.Get("http" + strings.TrimPrefix(s.base, "https") + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}

// TestSlowClientsAndOversizedBodies: hundreds of connections that send
// their headers or body a byte at a time, and bodies far over the limit, do
// not stop a normal client from getting its decisions; the slow ones are
// cut off by the read timeouts.
func TestSlowClientsAndOversizedBodies(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{args: []string{"--read-header-timeout", "1s", "--read-timeout", "3s", "--body-limit", "65536"}})
	addr := strings.TrimPrefix(s.base, "http://")
	const slowHeaders, slowBodies = 300, 50

	type slow struct {
		conn   net.Conn
		closed chan struct{} // closed when the server hangs up
	}
	var (
		mu    sync.Mutex
		conns []*slow
	)
	open := func(prefix string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		sl := &slow{conn: c, closed: make(chan struct{})}
		mu.Lock()
		conns = append(conns, sl)
		mu.Unlock()
		if _, err := io.WriteString(c, prefix); err != nil {
			t.Errorf("write: %v", err)
		}
		// Dribble one byte every 200 ms until the server hangs up.
		go func() {
			defer close(sl.closed)
			go func() {
				io.Copy(io.Discard, c) // returns when the server closes
				c.Close()
			}()
			for {
				time.Sleep(200 * time.Millisecond)
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.conn.Close()
		}
	})
	for range slowHeaders {
		open("POST /v1/evaluate HTTP/1.1\r\nHost: tollgate\r\nX-Slow: ")
	}
	for range slowBodies {
		open("POST /v1/evaluate HTTP/1.1\r\nHost: tollgate\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	}

	// Meanwhile: normal decisions, and bodies of 50 MiB, which get a 413
	// as soon as the limit is read, not after 50 MiB.
	r := req("org/e2e", "main", "deploy", envDev)
	for i := range 20 {
		s.evaluate(t, r)
		if i%5 == 0 {
			huge := io.MultiReader(strings.NewReader(`{"repository":"`), &zeros{n: 50 << 20})
			reqBig, _ := http.NewRequest(http.MethodPost, s.base+"/v1/evaluate", huge)
			reqBig.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := s.client.Do(reqBig)
			if err == nil {
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				requireError(t, resp.StatusCode, raw, http.StatusRequestEntityTooLarge, "invalid_input", "larger than the limit of 64 KiB")
			} else if !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "broken pipe") {
				// The server may close the connection before the client has
				// finished sending; anything else is a failure.
				t.Fatalf("oversized body: %v", err)
			}
			t.Logf("50 MiB body refused in %v", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Every slow connection is cut off by the server (read timeouts), not
	// left to hold resources: within the read timeout and some margin.
	deadline := time.After(15 * time.Second)
	for i, c := range conns {
		select {
		case <-c.closed:
		case <-deadline:
			t.Fatalf("slow connection %d of %d still open 15 s later", i, len(conns))
		}
	}
	s.evaluate(t, r)
	if log := s.stderr.String(); strings.Contains(log, "panic") {
		t.Fatalf("server log:\n%s", log)
	}
	t.Logf("%d slow connections cut off; the server kept answering", len(conns))
}

// zeros reads n 'a' bytes: a body that never ends, as far as the limit
// is concerned.
type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), z.n)
	for i := range k {
		p[i] = 'a'
	}
	z.n -= k
	return k, nil
}
