package main

import (
	"debug/elf"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	opaversion "github.com/open-policy-agent/opa/v1/version"
)

func TestReadBuildInfo(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "698a8a44cef03cc24a362eb037e171ae5a35c928"},
			{Key: "vcs.time", Value: "2026-12-03T17:10:11Z"},
			{Key: "vcs.modified", Value: "false"},
		}}
	dirty := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		want buildInfo
	}{
		{"a build in a clone", stamped, buildInfo{Version: "devel", Commit: "698a8a44cef03cc24a362eb037e171ae5a35c928",
			BuildDate: "2026-12-03T17:10:11Z", Go: "go1.26.8"}},
		{"go install of a tagged module, edited tree", dirty, buildInfo{Version: "v1.2.3", Commit: "abc-dirty",
			BuildDate: "unknown", Go: "go1.26.8"}},
		{"no build information", nil, buildInfo{Version: "devel", Commit: "unknown", BuildDate: "unknown", Go: runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readBuildInfo(func() (*debug.BuildInfo, bool) { return tc.info, tc.info != nil })
			tc.want.OPA, tc.want.Platform = opaversion.Version, runtime.GOOS+"/"+runtime.GOARCH
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A release build's -X values win over the build information, and both
// spellings print the same thing.
func TestVersionOfAReleaseBuild(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "tollgate")
	ldflags := "-X main.version=v0.19.0 -X main.commit=698a8a44cef03cc24a362eb037e171ae5a35c928 -X main.commitDate=2026-12-03T17:10:11Z"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", binary, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var outputs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("tollgate %s: %v", args[0], err)
		}
		outputs = append(outputs, string(out))
	}
	if outputs[0] != outputs[1] {
		t.Errorf("version and --version differ:\n%s\n%s", outputs[0], outputs[1])
	}
	for _, want := range []string{"tollgate v0.19.0\n", "commit:     698a8a44cef03cc24a362eb037e171ae5a35c928\n",
		"build date: 2026-12-03T17:10:11Z\n", "go:         " + runtime.Version() + "\n", "opa:        " + opaversion.Version + "\n"} {
		if !strings.Contains(outputs[0], want) {
			t.Errorf("tollgate version lacks %q:\n%s", want, outputs[0])
		}
	}
	out, err := exec.Command(binary, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got buildInfo
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	if got.Version != "v0.19.0" || got.OPA != opaversion.Version || got.BuildDate != "2026-12-03T17:10:11Z" {
		t.Errorf("version --json: %+v", got)
	}
}

func TestVersionTakesNoArgument(t *testing.T) {
	runTollgate(t, "version", "extra").wantCode(t, exitError)
}

// The windows and freezes are read in IANA time zones, and the container
// image has no zoneinfo directory: the binary must carry the database
// (time/tzdata). Its loader is in the symbol table only if it is linked.
func TestBinaryEmbedsTheTimeZoneDatabase(t *testing.T) {
	f, err := elf.Open(fixtures.binary)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	symbols, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range symbols {
		if s.Name == "time/tzdata.loadFromEmbeddedTZData" {
			return
		}
	}
	t.Fatal("the binary does not embed time/tzdata: without /usr/share/zoneinfo (the container image) it cannot read Europe/Paris")
}
