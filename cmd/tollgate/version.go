package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	// The time zones of the windows and freezes (Europe/Paris and every
	// other IANA name) are built into the binary: the container image has
	// no /usr/share/zoneinfo, and a gate that cannot read its time zone
	// refuses everything. OPA's topdown links it as well; imported here so
	// that the gate does not depend on that. About 450 KB.
	_ "time/tzdata"

	opaversion "github.com/open-policy-agent/opa/v1/version"
)

// The release builds (make dist, make image) set these from git:
//
//	go build -buildvcs=false -ldflags "-X main.version=v1.2.3 -X main.commit=… -X main.commitDate=…"
//
// rather than letting go build stamp the commit: Go stamps only in a clone,
// not in a git worktree or an exported source tree, and a release must be
// the same bytes wherever it is built. Unset, they come from the build
// information (a plain go build in a clone), else "devel" and "unknown".
var version, commit, commitDate string

// buildInfo is what `tollgate version` prints. The commit and its time come
// from the build information Go stamps (go build -buildvcs=true in a git
// checkout); "unknown" without it.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"build_date"`
	Go        string `json:"go"`
	OPA       string `json:"opa"`
	Platform  string `json:"platform"`
}

// readBuildInfo gathers the binary's identity; read is debug.ReadBuildInfo
// except in tests.
func readBuildInfo(read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", BuildDate: "unknown",
		Go: runtime.Version(), OPA: opaversion.Version, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := read()
	if ok {
		b.Go = info.GoVersion
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.BuildDate = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && b.Commit != "unknown" {
			b.Commit += "-dirty"
		}
	}
	if commit != "" {
		b.Commit = commit
	}
	if commitDate != "" {
		b.BuildDate = commitDate
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

func (b buildInfo) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "tollgate %s\n", b.Version)
	fmt.Fprintf(&s, "  commit:     %s\n", b.Commit)
	fmt.Fprintf(&s, "  build date: %s\n", b.BuildDate)
	fmt.Fprintf(&s, "  go:         %s\n", b.Go)
	fmt.Fprintf(&s, "  opa:        %s\n", b.OPA)
	fmt.Fprintf(&s, "  platform:   %s\n", b.Platform)
	return s.String()
}

func runVersion(c *cli, args []string) int {
	f := newFlags(c, "version", "version [--json]",
		`Prints the release, the commit it was built from and that commit's time
(the build date: release builds are reproducible, so the build itself has
no date of its own), and the versions of Go and OPA inside.`)
	asJSON := f.Bool("json", false, "print JSON")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	b := readBuildInfo(debug.ReadBuildInfo)
	if *asJSON {
		out, err := json.Marshal(b)
		if err != nil {
			return f.fail("%v", err)
		}
		fmt.Fprintf(c.stdout, "%s\n", out)
		return exitOK
	}
	fmt.Fprint(c.stdout, b)
	return exitOK
}
