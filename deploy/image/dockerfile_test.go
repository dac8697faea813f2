package main

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// The Dockerfile is parsed with BuildKit's own parser (no Docker here) and
// its final stage held to spec.go: what `docker build` makes must run like
// what `make image` makes.
func TestDockerfileAgreesWithTheImageBuilder(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2: build, then the image", len(stages))
	}
	build, final := stages[0], stages[1]
	// The image stage's words expanded as `docker build --build-arg …`
	// would: quotes removed, build arguments substituted.
	created := time.Date(2026, 12, 3, 17, 10, 11, 0, time.UTC)
	args := shell.EnvsFromSlice([]string{"VERSION=v1.2.3", "REVISION=698a8a44cef03cc24a362eb037e171ae5a35c928",
		"CREATED=" + created.Format(time.RFC3339)})
	lex := shell.NewLex('\\')
	expand := func(word string) (string, error) {
		s, _, err := lex.ProcessWord(word, args)
		return s, err
	}
	for _, c := range final.Commands {
		if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			if err := e.Expand(expand); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
		}
	}
	if final.BaseName != "scratch" {
		t.Errorf("the image is FROM %s, want scratch (make image uses an empty base)", final.BaseName)
	}

	var (
		users, workdirs []string
		entry, cmd      *instructions.ShellDependantCmdLine
		envs            []string
		gotLabels       = map[string]string{}
		ports, volumes  []string
		copies          []*instructions.CopyCommand
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			users = append(users, c.User)
		case *instructions.WorkdirCommand:
			workdirs = append(workdirs, c.Path)
		case *instructions.EntrypointCommand:
			entry = &c.ShellDependantCmdLine
		case *instructions.CmdCommand:
			cmd = &c.ShellDependantCmdLine
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				envs = append(envs, kv.Key+"="+kv.Value)
			}
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				gotLabels[kv.Key] = kv.Value
			}
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.CopyCommand:
			copies = append(copies, c)
		case *instructions.ArgCommand:
		default:
			t.Errorf("unexpected instruction in the image stage: %s", c)
		}
	}
	if !slices.Equal(users, []string{user}) {
		t.Errorf("USER %q, want %s", users, user)
	}
	if !slices.Equal(workdirs, []string{dataPath}) || !slices.Equal(volumes, []string{dataPath}) || !slices.Equal(ports, []string{port}) {
		t.Errorf("WORKDIR %q, VOLUME %q, EXPOSE %q: want %s, %s, %s", workdirs, volumes, ports, dataPath, dataPath, port)
	}
	if entry == nil || entry.PrependShell || !slices.Equal(entry.CmdLine, entrypoint) {
		t.Errorf("ENTRYPOINT %+v, want the exec form %q", entry, entrypoint)
	}
	if cmd == nil || cmd.PrependShell || !slices.Equal(cmd.CmdLine, command) {
		t.Errorf("CMD %+v, want the exec form %q", cmd, command)
	}
	if !slices.Equal(envs, env) {
		t.Errorf("ENV %q, want %q", envs, env)
	}
	// The labels the builder writes, with the build arguments where it
	// writes the commit's values.
	want := labels("v1.2.3", "698a8a44cef03cc24a362eb037e171ae5a35c928", created)
	if !maps.Equal(gotLabels, want) {
		t.Errorf("LABEL %v\nwant %v", gotLabels, want)
	}
	var dataCopied bool
	for _, c := range copies {
		if c.DestPath == dataPath || c.DestPath == dataPath+"/" {
			dataCopied = c.Chown == user && c.Chmod == "0700"
		}
	}
	if !dataCopied {
		t.Errorf("no COPY --chown=%s --chmod=0700 … %s: /data must belong to the user", user, dataPath)
	}

	// The build stage: a static, trimmed build with the release's identity
	// set as make image sets it, and the same files in the same places.
	var script strings.Builder
	for _, c := range build.Commands {
		if run, ok := c.(*instructions.RunCommand); ok {
			script.WriteString(strings.Join(run.CmdLine, " ") + "\n")
		}
	}
	for _, s := range []string{"CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "-X main.version=${VERSION}",
		"-X main.commit=${REVISION}", "-X main.commitDate=${CREATED}", "/rootfs" + binaryPath,
		"deploy/image/rootfs/etc/passwd", "deploy/image/rootfs/etc/group", "/rootfs" + caPath,
		"bundles/tollgate /rootfs" + bundlePath, "LICENSE /rootfs" + licenceDoc} {
		if !strings.Contains(script.String(), s) {
			t.Errorf("the build stage does not run %q:\n%s", s, script.String())
		}
	}
}
