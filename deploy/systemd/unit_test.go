// Package systemd holds tollgate.service and its test.
package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// directives reads a unit file: section.key → values, in order (a key may
// repeat, and an empty assignment is a value too).
func directives(t *testing.T, body []byte) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	section := ""
	s := bufio.NewScanner(bytes.NewReader(body))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("not a directive: %q", line)
			}
			got[section+"."+key] = append(got[section+"."+key], value)
		}
	}
	return got
}

// The unit is held to the hardening it promises, and systemd itself reads
// it: systemd-analyze verify, with the binary it starts built from this
// repository.
func TestUnit(t *testing.T) {
	body, err := os.ReadFile("tollgate.service")
	if err != nil {
		t.Fatal(err)
	}
	d := directives(t, body)
	for key, want := range map[string]string{
		"Service.DynamicUser":             "yes",
		"Service.StateDirectory":          "tollgate",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.ExecStart":               "/usr/local/bin/tollgate serve",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Install.WantedBy":                "multi-user.target",
	} {
		if !slices.Equal(d[key], []string{want}) {
			t.Errorf("%s = %q, want %q", key, d[key], want)
		}
	}
	if !slices.Contains(d["Service.SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter %q lacks @system-service", d["Service.SystemCallFilter"])
	}

	binary := filepath.Join(t.TempDir(), "tollgate")
	build := exec.Command("go", "build", "-o", binary, "./cmd/tollgate")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The store is the state directory, and every setting is a flag serve has.
	env := map[string]string{}
	for _, kv := range d["Service.Environment"] {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env["TOLLGATE_DATA_DIR"] != "/var/lib/tollgate" {
		t.Errorf("TOLLGATE_DATA_DIR=%q, want /var/lib/tollgate, the StateDirectory", env["TOLLGATE_DATA_DIR"])
	}
	help, err := exec.Command(binary, "serve", "-h").Output()
	if err != nil {
		t.Fatalf("tollgate serve -h: %v", err)
	}
	for k := range env {
		if !strings.Contains(string(help), "["+k+"]") {
			t.Errorf("Environment=%s: serve has no such flag", k)
		}
	}

	// systemd-analyze checks that ExecStart's binary exists: the unit is
	// verified with it pointing at the binary just built.
	unit := filepath.Join(t.TempDir(), "tollgate.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(body, []byte("/usr/local/bin/tollgate"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := exec.Command("systemd-analyze", "verify", unit)
	out, err := verify.CombinedOutput()
	// It warns about the machine's own units too; only this unit's lines count.
	var mine []string
	for _, line := range strings.Split(string(out), "\n") {
		if regexp.MustCompile(`^tollgate\.service|` + regexp.QuoteMeta(unit)).MatchString(line) {
			mine = append(mine, line)
		}
	}
	if err != nil || len(mine) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
