// Command dist builds tollgate's release archives: for each platform a
// tar.gz of the static binary, LICENSE and README.md, its CycloneDX SBOM,
// and SHA256SUMS over them all. Reproducible: the commit checked out (never
// uncommitted changes) and the Go toolchain fix every byte. `make dist`
// runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/deploy/internal/release"
)

func main() { release.Main("dist", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	repo := fs.String("repo", "..", "the repository `DIR` to build from")
	version := fs.String("version", "", "the release `VERSION` (default devel)")
	out := fs.String("out", "../dist", "write the archives to `DIR`")
	list := fs.String("platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64", "comma-separated `OS/ARCH` list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	platforms, err := parsePlatforms(*list)
	if err != nil {
		return err
	}
	tools, err := os.Getwd() // deploy/, where go.mod pins cyclonedx-gomod
	if err != nil {
		return err
	}
	outDir, err := filepath.Abs(*out) // the SBOM tool runs in the clone
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	src, remove, err := release.Checkout(ctx, *repo, *version, os.Stderr)
	if err != nil {
		return err
	}
	defer remove()
	toolDir, err := os.MkdirTemp("", "tollgate-dist-tools-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(toolDir)
	sbom, err := sbomTool(ctx, tools, toolDir)
	if err != nil {
		return err
	}
	var files []string
	for _, p := range platforms {
		start := time.Now()
		made, err := archive(ctx, src, sbom, p, outDir)
		if err != nil {
			return err
		}
		files = append(files, made...)
		fmt.Printf("%s in %s\n", filepath.Join(outDir, made[0]), time.Since(start).Round(time.Millisecond))
	}
	if err := writeSums(outDir, files); err != nil {
		return err
	}
	fmt.Printf("%s: sha256sum -c SHA256SUMS in %s checks them\n", filepath.Join(outDir, "SHA256SUMS"), outDir)
	return nil
}
