// Command image builds tollgate's container image without Docker and
// without pulling anything: the static binary, the default bundle, CA
// certificates and a non-root user on an empty base, written as an OCI
// image layout (and, with -tarball, an archive `docker load` reads).
// The same commit and Go toolchain give the same digest. `make image`
// runs it; the Dockerfile at the repository's root builds the equivalent
// image with Docker.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tollgate/tollgate/deploy/internal/release"
)

func main() { release.Main("image", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	repo := fs.String("repo", "..", "the repository `DIR` to build from")
	version := fs.String("version", "", "the release `VERSION` (default devel)")
	out := fs.String("out", "../dist/image", "write the OCI image layout to `DIR`")
	archive := fs.String("tarball", "", "also write the first platform's image as a `docker load` archive to `FILE`")
	tag := fs.String("tag", "tollgate:devel", "the image `NAME:TAG` in the -tarball archive")
	platforms := fs.String("platforms", "linux/amd64", "comma-separated `OS/ARCH` list")
	caCerts := fs.String("ca-certs", caPath, "the CA certificates `FILE` to copy into the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	src, remove, err := release.Checkout(ctx, *repo, *version, os.Stderr)
	if err != nil {
		return err
	}
	defer remove()
	opts := options{caCerts: *caCerts}
	for _, p := range strings.Split(*platforms, ",") {
		platform, err := v1.ParsePlatform(p)
		if err != nil || platform.OS != "linux" || platform.Architecture == "" {
			return fmt.Errorf("-platforms %q: want linux/ARCH such as linux/amd64", p)
		}
		opts.platforms = append(opts.platforms, *platform)
	}
	index, err := buildIndex(ctx, src, opts)
	if err != nil {
		return err
	}
	if err := writeLayout(*out, index); err != nil {
		return err
	}
	digest, err := index.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s, %s, commit %s) in %s\n", *out, digest, *platforms, src.Version, src.Commit, time.Since(start).Round(time.Millisecond))
	if *archive != "" {
		if err := writeArchive(*archive, *tag, index); err != nil {
			return err
		}
		fmt.Printf("%s: docker load -i %s\n", *archive, *archive)
	}
	return nil
}
