package test

import (
	"net/http"
	"testing"
	"time"
)

// The profiler serves only when asked for, and then on its own listener:
// the API never exposes it.
func TestPprofAddr(t *testing.T) {
	addr := freePort(t)
	s := startServer(t, serverOptions{args: []string{"--pprof-addr", addr}})
	eventually(t, 10*time.Second, "the profiler answers on --pprof-addr", func() bool {
		resp, err := http.Get("http://" + addr + "/debug/pprof/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if status, _ := s.get(t, "/debug/pprof/"); status != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ on the API: %d, want 404", status)
	}
}
