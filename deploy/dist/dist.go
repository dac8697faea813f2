package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/deploy/internal/release"
)

type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

// name is the archive's base name, also the directory inside it:
// tollgate_v1.2.3_linux_amd64.
func name(src release.Source, p platform) string {
	return fmt.Sprintf("tollgate_%s_%s_%s", src.Version, p.os, p.arch)
}

// sbomTool builds cyclonedx-gomod, pinned in deploy/go.mod (tools is the
// deploy/ directory), into dir for this machine, and returns its path.
// Not `go tool`: that would build it for the GOOS being described.
func sbomTool(ctx context.Context, tools, dir string) (string, error) {
	path := filepath.Join(dir, "cyclonedx-gomod")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod")
	cmd.Dir = tools
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cyclonedx-gomod: %w\n%s", err, out)
	}
	return path, nil
}

// archive builds the binary for p and writes NAME.tar.gz (the binary, LICENSE
// and README.md under NAME/) and NAME.cdx.json, its CycloneDX SBOM made by
// the tool at sbom, in out. It returns the two files' names.
func archive(ctx context.Context, src release.Source, sbom string, p platform, out string) ([]string, error) {
	base := name(src, p)
	tmp, err := os.MkdirTemp("", "tollgate-dist-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	binary := filepath.Join(tmp, "tollgate")
	if err := src.BuildBinary(ctx, p.os, p.arch, binary); err != nil {
		return nil, err
	}
	files := []release.File{{Name: base + "/", Mode: 0o755, Dir: true}}
	for _, f := range []struct {
		name, path string
		mode       int64
	}{
		{"tollgate", binary, 0o755},
		{"LICENSE", filepath.Join(src.Root, "LICENSE"), 0o644},
		{"README.md", filepath.Join(src.Root, "README.md"), 0o644},
	} {
		body, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		files = append(files, release.File{Name: base + "/" + f.name, Mode: f.mode, Body: body})
	}
	tarball := base + ".tar.gz"
	if err := release.WriteFileAtomic(filepath.Join(out, tarball), func(w io.Writer) error {
		return release.WriteTarGz(w, files, src.Time)
	}); err != nil {
		return nil, err
	}
	bom := base + ".cdx.json"
	if err := writeSBOM(ctx, src, sbom, p, filepath.Join(out, bom)); err != nil {
		return nil, err
	}
	return []string{tarball, bom}, nil
}

// writeSBOM runs cyclonedx-gomod in app mode: the modules and packages
// linked into cmd/tollgate under the same build constraints as the binary.
// Without a serial number or a timestamp, so that it is reproducible too.
func writeSBOM(ctx context.Context, src release.Source, tool string, p platform, path string) error {
	cmd := exec.CommandContext(ctx, tool, "app", "-json", "-licenses", "-packages",
		"-noserial", "-notimestamp", "-main", "cmd/tollgate", "-output", path, src.Root)
	cmd.Dir = src.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.os, "GOARCH="+p.arch, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cyclonedx-gomod %s: %w\n%s", p, err, out)
	}
	return os.Chmod(path, 0o644)
}

// writeSums writes SHA256SUMS for files in out, in the format sha256sum -c
// reads, sorted by name.
func writeSums(out string, files []string) error {
	files = slices.Sorted(slices.Values(files))
	var sums bytes.Buffer
	for _, f := range files {
		body, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(body), f)
	}
	return release.WriteFileAtomic(filepath.Join(out, "SHA256SUMS"), func(w io.Writer) error {
		_, err := w.Write(sums.Bytes())
		return err
	})
}

func parsePlatforms(list string) ([]platform, error) {
	var ps []platform
	for _, s := range strings.Split(list, ",") {
		goos, goarch, ok := strings.Cut(strings.TrimSpace(s), "/")
		if !ok || goos == "" || goarch == "" || strings.Contains(goarch, "/") {
			return nil, fmt.Errorf("platform %q: want OS/ARCH such as linux/amd64", s)
		}
		ps = append(ps, platform{goos, goarch})
	}
	return ps, nil
}
