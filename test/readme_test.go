package test

// The README is a tested document: TestReadme runs its shell examples the way
// a reader would, in order, and compares the outputs it shows with what the
// real binary prints.
//
// Every ```sh block of README.md is preceded by a marker line:
//
//	<!-- doctest -->               run it
//	<!-- doctest: skip WHY -->     not runnable here (a synopsis, a remote host…)
//
// A block without a marker fails the test, so a new example is run unless
// someone says why not. Blocks run in README order in one sandbox that looks
// like a checkout after `make build dev-licence`: bin/tollgate, bundles/,
// examples/, .data/dev/ (a licence and its key). `make run` and `bin/tollgate
// serve …` lines (re)start the server, on a free port that replaces
// 127.0.0.1:8181 everywhere; other `make` lines are what the sandbox already
// did. The lines of a block share one bash: a variable set on one line is
// read on the next.
//
// The output a command should print is shown in comment lines right after it
// that begin with "#   " or "# → ". Each shown line must appear in the
// output, in that order; "…" stands for anything, whitespace is ignored, and
// output lines the README does not show (a time_window_violation out of
// hours, say) are allowed. A command that exits with 2 or more fails the test
// (1 is a refusal, a normal outcome for check, replay and verify-decision).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An example is one command of a README block and the output it shows.
type example struct {
	line    int    // of README.md, where the command starts
	command string // as written, continuation lines included
	want    []string
}

// A docBlock is a ```sh block of the README and whether it runs.
type docBlock struct {
	line     int
	run      bool
	examples []example
}

var doctestMarker = regexp.MustCompile(`^<!-- doctest(?::\s*skip\s+(.+?))?\s*-->$`)

// readmeBlocks parses README.md's ```sh blocks and their markers.
func readmeBlocks(t *testing.T, readme []byte) []docBlock {
	t.Helper()
	lines := strings.Split(string(readme), "\n")
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		b := docBlock{line: i + 1}
		marker := ""
		for j := i - 1; j >= 0; j-- {
			if s := strings.TrimSpace(lines[j]); s != "" {
				marker = s
				break
			}
		}
		m := doctestMarker.FindStringSubmatch(marker)
		if m == nil {
			t.Errorf("README.md:%d: a ```sh block without <!-- doctest --> or <!-- doctest: skip WHY --> before it", i+1)
		}
		b.run = m != nil && m[1] == ""
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		b.examples = parseExamples(lines[i+1:end], i+2)
		blocks = append(blocks, b)
		i = end
	}
	return blocks
}

// parseExamples splits a block's lines into commands (a command goes on
// while a line ends with a backslash or inside quotes) and their shown output.
func parseExamples(lines []string, first int) []example {
	var out []example
	var cur *example
	inCommand, state := false, byte(0)
	for k, l := range lines {
		if inCommand {
			cur.command += "\n" + l
			state = shellState(l, state)
			inCommand = state != 0 || strings.HasSuffix(l, `\`)
			continue
		}
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "":
		case strings.HasPrefix(trimmed, "#"):
			if cur == nil {
				continue
			}
			if shown, ok := strings.CutPrefix(trimmed, "#   "); ok {
				cur.want = append(cur.want, shown)
			} else if shown, ok := strings.CutPrefix(trimmed, "# → "); ok {
				cur.want = append(cur.want, shown)
			}
		default:
			out = append(out, example{line: first + k, command: l})
			cur = &out[len(out)-1]
			state = shellState(l, 0)
			inCommand = state != 0 || strings.HasSuffix(l, `\`)
		}
	}
	return out
}

// shellState is the quoting state at the end of a line, from the state at its
// start: 0 outside quotes, the quote character inside them. A # outside quotes starts
// a comment.
func shellState(line string, state byte) byte {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch state {
		case '\'':
			if c == '\'' {
				state = 0
			}
		case '"':
			if c == '\\' {
				i++
			} else if c == '"' {
				state = 0
			}
		default:
			switch {
			case c == '\\':
				i++
			case c == '\'' || c == '"':
				state = c
			case c == '#' && (i == 0 || line[i-1] == ' '):
				return 0
			}
		}
	}
	return state
}

// matchShown reports whether the output shows every wanted line, in order.
func matchShown(want []string, output string) bool {
	if len(want) == 0 {
		return true
	}
	var parts []string
	for _, w := range want {
		var pieces []string
		for _, p := range strings.Split(stripSpace(w), "…") {
			pieces = append(pieces, regexp.QuoteMeta(p))
		}
		parts = append(parts, strings.Join(pieces, ".*?"))
	}
	return regexp.MustCompile("(?s)" + strings.Join(parts, ".*?")).MatchString(stripSpace(output))
}

func stripSpace(s string) string {
	return strings.Join(strings.Fields(s), "")
}

func TestReadmeMatcher(t *testing.T) {
	output := "  refused: service-api/deploy-prod on feature/x to production (decision 01a2-99)\n" +
		"    reason  time_window_violation: out of hours\n" +
		"    reason  branch_not_allowed: Branch \"feature/x\" may not run\n"
	for _, c := range []struct {
		want []string
		ok   bool
	}{
		{[]string{`refused: service-api/deploy-prod on feature/x to production (decision …)`, `reason branch_not_allowed: Branch "feature/x" may not run`}, true},
		{[]string{`reason branch_not_allowed: …`, `refused: …`}, false}, // order
		{[]string{`accepted: …`}, false},
		{[]string{`reason cooldown: …`}, false},
	} {
		if got := matchShown(c.want, output); got != c.ok {
			t.Errorf("matchShown(%q) = %v, want %v", c.want, got, c.ok)
		}
	}
	ex := parseExamples([]string{
		`ID=$(bin/tollgate check --json \`,
		`       | sed 's/x/y/')   # a comment`,
		`#   shown`,
		`# not shown`,
		`curl -d '{"a": 1,`,
		`  "b": 2}'`,
		`# → {"ok": true}`,
	}, 1)
	if len(ex) != 2 || ex[0].want[0] != "shown" || len(ex[0].want) != 1 || ex[1].line != 5 ||
		!strings.HasSuffix(ex[1].command, `"b": 2}'`) || ex[1].want[0] != `{"ok": true}` {
		t.Errorf("parseExamples = %+v", ex)
	}
}

// readmeSandbox makes a directory that looks like a checkout after
// `make build dev-licence`.
func readmeSandbox(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"bundles", "examples"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(repoRoot, sub), dir).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", sub, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binPath, filepath.Join(dir, "bin", "tollgate")); err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(dir, ".data", "dev")
	if _, err := tollgateOutput("license", "keygen", "--bits", "2048", "--out", dev); err != nil {
		t.Fatal(err)
	}
	token, err := tollgateOutput("license", "issue", "--key", filepath.Join(dev, "license-private.pem"),
		"--subject", "tollgate development", "--valid-for", "8760h")
	if err != nil {
		t.Fatal(err)
	}
	saveFile(t, filepath.Join(dev, "licence.jwt"), []byte(token))
	return dir
}

// makeRun is the command `make run` runs, from the Makefile's variables and
// its run recipe.
func makeRun(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var recipe []string
	inRun := false
	for _, l := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
		if m := regexp.MustCompile(`^(\w+)\s*[:?]?=\s*(.*)$`).FindStringSubmatch(l); m != nil {
			vars[m[1]] = strings.TrimSpace(m[2])
		}
		switch {
		case strings.HasPrefix(l, "run:"):
			inRun = true
		case inRun && strings.HasPrefix(l, "\t"):
			recipe = append(recipe, strings.TrimSpace(l))
		default:
			inRun = false
		}
	}
	if len(recipe) != 1 {
		t.Fatalf("Makefile: the run recipe has %d lines, want 1: %q", len(recipe), recipe)
	}
	ref := regexp.MustCompile(`\$\((\w+)\)`)
	cmd := recipe[0]
	for ref.MatchString(cmd) {
		cmd = ref.ReplaceAllStringFunc(cmd, func(s string) string { return vars[s[2:len(s)-1]] })
	}
	return cmd
}

// docServer is the server a README block started.
type docServer struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func (s *docServer) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("the README's server did not stop within %v of SIGTERM", stopTimeout)
	}
}

func startDocServer(t *testing.T, dir, command, addr string) *docServer {
	t.Helper()
	s := &docServer{log: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command("bash", "-c", "exec "+command+" --addr "+addr)
	s.cmd.Dir = dir
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("%s: exited before ready:\n%s", command, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop(t)
			t.Fatalf("%s: not ready within %v:\n%s", command, startTimeout, s.log.String())
		}
		time.Sleep(pollInterval)
	}
}

var (
	serveCommand = regexp.MustCompile(`^bin/tollgate serve\b`)
	makeCommand  = regexp.MustCompile(`^make\b`)
	checkCommand = regexp.MustCompile(`bin/tollgate check\b`)
)

// localize points a README command at the sandbox's server.
func localize(command, addr string) string {
	for _, from := range []string{"127.0.0.1:8181", "localhost:8181"} {
		command = strings.ReplaceAll(command, from, addr)
	}
	if !strings.Contains(command, "--server") {
		command = checkCommand.ReplaceAllString(command, "bin/tollgate check --server http://"+addr)
	}
	return command
}

func TestReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, readme)
	dir := readmeSandbox(t)
	addr := freePort(t)
	var srv *docServer
	defer func() {
		if srv != nil {
			srv.stop(t)
			if t.Failed() {
				t.Logf("the last server's log:\n%s", srv.log.String())
			}
		}
	}()
	ran := 0
	for _, b := range blocks {
		if !b.run {
			continue
		}
		// A server line splits the block: the lines before it run, then
		// the server (re)starts, then the rest runs.
		var batch []example
		flush := func() {
			if len(batch) > 0 {
				runExamples(t, dir, addr, batch)
				ran += len(batch)
				batch = nil
			}
		}
		for _, ex := range b.examples {
			command := strings.TrimSpace(strings.SplitN(ex.command, " #", 2)[0])
			switch {
			case command == "make run" || serveCommand.MatchString(command):
				flush()
				if command == "make run" {
					command = makeRun(t)
				}
				if srv != nil {
					srv.stop(t)
				}
				srv = startDocServer(t, dir, strings.ReplaceAll(command, "\\\n", " "), addr)
				ran++
			case makeCommand.MatchString(command):
				// make build, make dev-licence: the sandbox is made so.
			default:
				batch = append(batch, ex)
			}
		}
		flush()
	}
	if ran == 0 {
		t.Fatal("README.md: no <!-- doctest --> example ran")
	}
	t.Logf("README.md: %d commands run", ran)
}

// runExamples runs commands in one bash, in order, and compares each one's
// output with what the README shows.
func runExamples(t *testing.T, dir, addr string, examples []example) {
	t.Helper()
	var script strings.Builder
	for i, ex := range examples {
		fmt.Fprintf(&script, "%s\nprintf '\\n@@doctest %d %%d@@\\n' $?\n", localize(ex.command, addr), i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("README.md:%d: bash: %v\n%s", examples[0].line, err, out.String())
	}
	outputs := make([]string, len(examples))
	codes := make([]int, len(examples))
	for i := range codes {
		codes[i] = -1
	}
	var cur strings.Builder
	end := regexp.MustCompile(`^@@doctest (\d+) (\d+)@@$`)
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if m := end.FindStringSubmatch(sc.Text()); m != nil {
			i, _ := strconv.Atoi(m[1])
			codes[i], _ = strconv.Atoi(m[2])
			outputs[i] = cur.String()
			cur.Reset()
			continue
		}
		cur.WriteString(sc.Text() + "\n")
	}
	for i, ex := range examples {
		switch {
		case codes[i] < 0:
			t.Errorf("README.md:%d: did not run:\n%s", ex.line, ex.command)
		case codes[i] >= 2:
			t.Errorf("README.md:%d: exit %d:\n%s\noutput:\n%s", ex.line, codes[i], ex.command, outputs[i])
		case !matchShown(ex.want, outputs[i]):
			t.Errorf("README.md:%d: the output is not what the README shows\ncommand:\n%s\nREADME shows:\n  %s\noutput:\n%s",
				ex.line, ex.command, strings.Join(ex.want, "\n  "), outputs[i])
		}
	}
}
