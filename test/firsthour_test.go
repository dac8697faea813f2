package test

// What a newcomer meets in the first hour, following the README literally:
// the defaults of make run and of the CLI, where the README's commands
// write secrets, the CLI reference, and make test's prerequisites.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOneDataDir: make run served .data/server while every command that
// opens a store defaulted to .data/tollgate, so `tollgate token create`,
// `replay` or `ledger verify` without --data-dir read another, empty,
// store. There is one default: make run's, every command's and the
// README's.
func TestOneDataDir(t *testing.T) {
	run := makeRun(t)
	m := regexp.MustCompile(`--data-dir (\S+)`).FindStringSubmatch(run)
	if m == nil {
		t.Fatalf("make run: no --data-dir in %q", run)
	}
	want := m[1]
	dataDirDefault := regexp.MustCompile(`--data-dir DIR\n.*\(default ([^)]+)\)`)
	for _, command := range [][]string{
		{"serve"}, {"token", "create"}, {"token", "list"}, {"token", "revoke"}, {"epss", "import"},
		{"replay"}, {"impact"}, {"ledger", "verify"}, {"ledger", "export"}, {"ledger", "archive"},
	} {
		out, err := exec.Command(binPath, append(command, "-h")...).CombinedOutput()
		if err != nil {
			t.Fatalf("tollgate %s -h: %v\n%s", strings.Join(command, " "), err, out)
		}
		got := "none"
		if d := dataDirDefault.FindStringSubmatch(string(out)); d != nil {
			got = d[1]
		}
		if got != want {
			t.Errorf("tollgate %s: --data-dir default %s; make run serves %s", strings.Join(command, " "), got, want)
		}
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range regexp.MustCompile("--data-dir ([^\\s`|\\];…]+)").FindAllStringSubmatch(string(readme), -1) {
		// /var/lib/tollgate is a production host's (the systemd unit's
		// StateDirectory), not a development default.
		if d[1] != want && d[1] != "DIR" && d[1] != "DIR/tollgate.db" && d[1] != "/var/lib/tollgate" {
			t.Errorf("README.md: --data-dir %s; make run and the commands use %s", d[1], want)
		}
	}
}

// TestReadmeWritesSecretsUnderData: the README's commands wrote
// admin.token, auditor.token and keys/ledger-private.pem into the
// checkout, where `git add .` takes them. Every secret a README command
// writes goes under .data/, which git ignores; and the files the README
// reads from examples/ are not ignored.
func TestReadmeWritesSecretsUnderData(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, readme)
	redirect := regexp.MustCompile(`>\s*([^\s>&|;]+)`)
	outFlag := regexp.MustCompile(`(?:--out|-out)\s+([^\s;|&]+)`)
	secret := regexp.MustCompile(`(?i)token|private|key`)
	var written []string
	for _, b := range blocks {
		for _, ex := range b.examples {
			command := ex.command
			for _, m := range redirect.FindAllStringSubmatch(command, -1) {
				if secret.MatchString(m[1]) {
					written = append(written, m[1])
				}
			}
			for _, m := range outFlag.FindAllStringSubmatch(command, -1) {
				// keygen writes private keys into the directory it is given.
				if strings.Contains(command, "keygen") || secret.MatchString(m[1]) {
					written = append(written, m[1])
				}
			}
		}
	}
	if len(written) < 5 {
		t.Fatalf("found %d secrets written by README commands (%v): the parser is broken", len(written), written)
	}
	for _, path := range written {
		if !strings.HasPrefix(path, ".data/") {
			t.Errorf("README.md writes the secret %s outside .data/", path)
			continue
		}
		probe := strings.TrimSuffix(path, "/") + "/x"
		if !gitIgnored(t, probe) {
			t.Errorf("%s is not ignored by git", path)
		}
	}
	examples, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("examples/: %v %v", examples, err)
	}
	for _, path := range examples {
		rel, _ := filepath.Rel(repoRoot, path)
		if gitIgnored(t, rel) {
			t.Errorf("%s, which the README uses, is ignored by git", rel)
		}
	}
}

// gitIgnored reports whether git would ignore path, relative to the
// repository, whether or not it exists.
func gitIgnored(t *testing.T, path string) bool {
	t.Helper()
	cmd := exec.Command("git", "check-ignore", "-q", "--no-index", path)
	cmd.Dir = repoRoot
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("git check-ignore %s: %v", path, err)
	}
	return true
}

// TestReadmeCLIReferenceListsEveryCommand: the README's CLI reference left
// out exception, freeze and incident. Every command `tollgate help` lists,
// and every subcommand each names in its own help, has a line there.
func TestReadmeCLIReferenceListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## CLI\n")
	if start < 0 {
		t.Fatal("README.md: no ## CLI section")
	}
	reference := text[start:]
	reference = reference[:strings.Index(reference[1:], "\n## ")+1]
	help, err := exec.Command(binPath, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	_, list, _ := strings.Cut(string(help), "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	var commands []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)`).FindAllStringSubmatch(list, -1) {
		commands = append(commands, m[1])
	}
	if len(commands) < 15 {
		t.Fatalf("tollgate help lists %d commands: %v", len(commands), commands)
	}
	for _, command := range commands {
		out, _ := exec.Command(binPath, command, "-h").CombinedOutput()
		subs := subcommands(command, string(out))
		if len(subs) == 0 {
			subs = []string{""}
		}
		for _, sub := range subs {
			line := strings.TrimSpace("bin/tollgate " + command + " " + sub)
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `\b`).MatchString(reference) {
				t.Errorf("README.md's CLI reference has no line for %q", line)
			}
		}
	}
	for _, b := range readmeBlocks(t, readme) {
		for _, ex := range b.examples {
			if strings.HasPrefix(ex.command, "tollgate ") {
				t.Errorf("README.md:%d runs `tollgate` (not on PATH) rather than bin/tollgate, which make builds", ex.line)
			}
		}
	}
}

// subcommands are the subcommands a command's -h names: "<a|b|c>" in its
// usage, a "Commands:" list, or "tollgate CMD SUB" usage lines.
func subcommands(command, help string) []string {
	var subs []string
	if m := regexp.MustCompile(`tollgate ` + command + ` <([a-z-]+(?:\|[a-z-]+)+)>`).FindStringSubmatch(help); m != nil {
		subs = append(subs, strings.Split(m[1], "|")...)
	}
	if _, list, ok := strings.Cut(help, "Commands:\n"); ok {
		list, _, _ = strings.Cut(list, "\n\n")
		for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)`).FindAllStringSubmatch(list, -1) {
			subs = append(subs, m[1])
		}
	}
	for _, m := range regexp.MustCompile(`tollgate `+command+` ([a-z][a-z-]*)`).FindAllStringSubmatch(help, -1) {
		subs = append(subs, m[1])
	}
	slices.Sort(subs)
	return slices.Compact(subs)
}

// TestPrereqsNameWhatIsMissing: make test needs PostgreSQL and Chromium,
// and said so after building and running tests for minutes. Its first
// step checks them in a moment, names what is missing and the one command
// that installs it.
func TestPrereqsNameWhatIsMissing(t *testing.T) {
	mk := exec.Command("make", "--no-print-directory", "-n", "test")
	mk.Dir = repoRoot
	for _, kv := range os.Environ() {
		// Under make test this test runs in a sub-make's environment,
		// whose flags must not reach this make.
		if !strings.HasPrefix(kv, "MAKE") && !strings.HasPrefix(kv, "MFLAGS=") {
			mk.Env = append(mk.Env, kv)
		}
	}
	out, err := mk.Output()
	if err != nil {
		t.Fatalf("make -n test: %v", err)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); first != ".ci/prereqs" {
		t.Errorf("make test starts with %q, not .ci/prereqs", first)
	}

	bin := t.TempDir()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bash, filepath.Join(bin, "bash")); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"make", "git", "initdb", "systemd-analyze", "curl"} {
		saveFile(t, filepath.Join(bin, tool), []byte("#!/bin/sh\n"))
		if err := os.Chmod(filepath.Join(bin, tool), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prereqs := func(env ...string) (string, int, time.Duration) {
		cmd := exec.Command(filepath.Join(repoRoot, ".ci", "prereqs"))
		cmd.Env = append([]string{"PATH=" + bin}, env...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code, time.Since(start)
	}
	out2, code, took := prereqs() // no chromium on PATH, no $CHROME
	if code != 1 || !strings.Contains(out2, "lacks: chromium\n") ||
		!strings.Contains(out2, "apt-get install -y --no-install-recommends chromium") {
		t.Errorf("without Chromium: exit %d\n%s", code, out2)
	}
	if took > 5*time.Second {
		t.Errorf("the check took %v", took)
	}
	if out2, code, _ = prereqs("CHROME=" + filepath.Join(bin, "make")); code != 0 || out2 != "" {
		t.Errorf("with everything: exit %d\n%s", code, out2)
	}
}
