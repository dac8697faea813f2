package test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMalformedRequestsEndToEnd: the real binary, with its default body
// limit (1 MiB), refuses requests that encoding/json would have bent into
// a decision, records none of them, and answers oversized headers in the
// JSON error shape. What Go's HTTP server answers before tollgate sees
// the request stays plain text, as the README says.
func TestMalformedRequestsEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	valid := string(mustJSON(t, req("org/service-api", "main", "deploy-staging", envStaging)))
	const jsonType = "application/json"
	for _, c := range []struct{ name, body, message string }{
		{"duplicate key", strings.Replace(valid, `"branch":"main"`, `"branch":"main","branch":"main"`, 1), `duplicate key "branch"`},
		{"case-variant key", strings.Replace(valid, `"branch"`, `"BRANCH"`, 1), `did you mean "branch"`},
		{"lone surrogate", strings.Replace(valid, `"main"`, `"main\udfff"`, 1), `branch: lone UTF-16 surrogate`},
		{"bidi override", strings.Replace(valid, `"main"`, `"main\u202e"`, 1), `found U+202E`},
		{"branch of a megabyte", strings.Replace(valid, `"main"`, `"`+strings.Repeat("m", 1_000_000)+`"`, 1), `branch is 1000000 bytes long`},
		{"branch git refuses", strings.Replace(valid, `"main"`, `"feature/x.lock"`, 1), `not a branch name git accepts`},
	} {
		status, raw := s.do(t, http.MethodPost, "/v1/evaluate", jsonType, []byte(c.body))
		requireError(t, status, raw, http.StatusBadRequest, "invalid_input", c.message)
	}

	status, raw := s.raw(t, "POST /v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: "+
		strings.Repeat("p", 100<<10)+"\r\nContent-Length: "+strconv.Itoa(len(valid))+"\r\nConnection: close\r\n\r\n"+valid)
	requireError(t, status, raw, http.StatusRequestHeaderFieldsTooLarge, "invalid_input", "larger than the limit of 64 KiB")

	// Past Go's own read limit, and for a request line it cannot parse, the
	// answer is Go's, in plain text: documented, not hidden.
	status, raw = s.raw(t, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: "+strings.Repeat("p", 2<<20)+"\r\n\r\n")
	if status != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(raw), "Request Header Fields Too Large") {
		t.Errorf("headers over 1 MiB: %d %.200s", status, raw)
	}
	status, raw = s.raw(t, "NOT A REQUEST\r\n\r\n")
	if status != http.StatusBadRequest {
		t.Errorf("a bad request line: %d %.200s", status, raw)
	}

	if all := s.allDecisions(t, ""); len(all) != 0 {
		t.Errorf("malformed requests were recorded: the history holds %d decisions", len(all))
	}
	if d := s.evaluate(t, req("org/service-api", "release/2026.12", "deploy-staging", envStaging)); d.Status == "" {
		t.Errorf("a well-formed request after them: %+v", d)
	}
}

// raw sends text as it is on a new connection and returns the status and
// body of the answer.
func (s *server) raw(t *testing.T, text string) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go io.WriteString(conn, text) // the server may answer before it has read it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
