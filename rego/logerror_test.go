package rego

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer the engine's goroutines may log into.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestReloadLogsRegoErrorsReadably: a Rego mistake saved into the served
// bundle was logged, by serve's text handler, as one quoted string full of
// \n and \t escapes (OPA appends the source line and a caret). Each error
// is now file:line: code: message, on the reload failure's one line.
func TestReloadLogsRegoErrorsReadably(t *testing.T) {
	for _, c := range []struct {
		name, source string
		excerpt      bool // OPA adds the source line and a caret
		want         []string
	}{
		{"parse error", "package tollgate.broken\n\nx := {\n", true, []string{
			`broken.rego:4: rego_parse_error: unexpected eof token; `,
			`broken.rego:4: rego_parse_error: unexpected eof token: expected rule value term`,
		}},
		{"compile error", "package tollgate.broken\n\nx := y + 1\n", false, []string{
			`broken.rego:3: rego_unsafe_var_error: var y is unsafe`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := bundleCopy(t)
			removeTests(t, dir)
			var log lockedBuffer
			e, err := NewEngine(context.Background(), dir, EngineOptions{
				Poll:   -1,
				Logger: slog.New(slog.NewTextHandler(&log, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "broken.rego"), c.source)
			if err := e.Reload(context.Background()); err == nil {
				t.Fatal("a broken module was activated")
			}
			var failure string
			for line := range strings.SplitSeq(log.String(), "\n") {
				if strings.Contains(line, "bundle reload failed") {
					failure = line
				}
			}
			if failure == "" || strings.Contains(failure, `\n`) || strings.Contains(failure, `\t`) {
				t.Fatalf("the reload failure is not one readable line:\n%s", log.String())
			}
			for _, want := range c.want {
				if !strings.Contains(failure, want) {
					t.Errorf("the reload failure does not say %q:\n%s", want, failure)
				}
			}
			if status := e.Status(); c.excerpt && !strings.Contains(status.LastError, "\n\t") {
				t.Errorf("GET /v1/bundles lost OPA's source excerpt: %q", status.LastError)
			}
		})
	}
}
