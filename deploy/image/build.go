package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tollgate/tollgate/deploy/internal/release"
)

// options are what an image is built from besides the commit.
type options struct {
	platforms []v1.Platform // linux/amd64, linux/arm64
	caCerts   string        // the CA bundle copied into the image
}

// buildIndex builds one image per platform, on an empty base (nothing is
// pulled), and the index that lists them.
func buildIndex(ctx context.Context, src release.Source, opts options) (v1.ImageIndex, error) {
	base, err := baseLayer(src, opts)
	if err != nil {
		return nil, err
	}
	bundleFiles, err := release.Tree(filepath.Join(src.Root, "bundles", "tollgate"), strings.TrimPrefix(bundlePath, "/"))
	if err != nil {
		return nil, fmt.Errorf("the default bundle: %w", err)
	}
	bundle, err := layer(bundleFiles, src.Time)
	if err != nil {
		return nil, err
	}
	binaries, err := os.MkdirTemp("", "tollgate-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(binaries)

	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range opts.platforms {
		binary := filepath.Join(binaries, p.OS+"-"+p.Architecture)
		if err := src.BuildBinary(ctx, p.OS, p.Architecture, binary); err != nil {
			return nil, err
		}
		body, err := os.ReadFile(binary)
		if err != nil {
			return nil, err
		}
		bin, err := layer([]release.File{{Name: strings.TrimPrefix(binaryPath, "/"), Mode: 0o755, Body: body}}, src.Time)
		if err != nil {
			return nil, err
		}
		img, err := image(src, p, []v1.Layer{base, bundle, bin})
		if err != nil {
			return nil, err
		}
		platform := p
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	return index, nil
}

// baseLayer is everything but the bundle and the binary: the user, the CA
// certificates, the licence, /data owned by the user and /tmp.
func baseLayer(src release.Source, opts options) (v1.Layer, error) {
	var files []release.File
	for _, name := range []string{"etc/passwd", "etc/group"} {
		body, err := os.ReadFile(filepath.Join(src.Root, "deploy", "image", "rootfs", name))
		if err != nil {
			return nil, err
		}
		files = append(files, release.File{Name: name, Mode: 0o644, Body: body})
	}
	certs, err := os.ReadFile(opts.caCerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates (Debian's ca-certificates package provides %s): %w", caPath, err)
	}
	licence, err := os.ReadFile(filepath.Join(src.Root, "LICENSE"))
	if err != nil {
		return nil, err
	}
	files = append(files,
		release.File{Name: strings.TrimPrefix(caPath, "/"), Mode: 0o644, Body: certs},
		release.File{Name: strings.TrimPrefix(licenceDoc, "/"), Mode: 0o644, Body: licence},
		release.File{Name: strings.TrimPrefix(dataPath, "/"), Mode: 0o700, UID: uid, GID: gid, Dir: true},
		release.File{Name: "tmp", Mode: 0o1777, Dir: true}, // SQLite's temporary files
	)
	return layer(files, src.Time)
}

// layer is files as a gzipped tar layer, compressed here rather than by
// go-containerregistry so that the bytes, and the digest, are fixed.
func layer(files []release.File, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := release.WriteTarGz(&buf, files, mtime); err != nil {
		return nil, err
	}
	body := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// image is the layers with the configuration of spec.go, every date the
// commit's.
func image(src release.Source, p v1.Platform, layers []v1.Layer) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: src.Time}
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{Created: created, CreatedBy: "tollgate deploy/image", Comment: "tollgate " + src.Version}})
		if err != nil {
			return nil, err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = created
	cfg.Author = sourceURL
	cfg.Config = v1.Config{
		User:         user,
		Entrypoint:   entrypoint,
		Cmd:          command,
		Env:          env,
		WorkingDir:   dataPath,
		ExposedPorts: map[string]struct{}{port: {}},
		Volumes:      map[string]struct{}{dataPath: {}},
		Labels:       labels(src.Version, src.Commit, src.Time),
	}
	return mutate.ConfigFile(img, cfg)
}

// writeLayout writes the index as an OCI image layout in dir, replacing
// what was there.
func writeLayout(dir string, index v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	_, err := layout.Write(dir, index)
	return err
}

// writeArchive writes the index's first image to path as an archive that
// `docker load` reads, tagged tag.
func writeArchive(path, tag string, index v1.ImageIndex) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return err
	}
	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		return err
	}
	return release.WriteFileAtomic(path, func(w io.Writer) error { return tarball.Write(ref, img, w) })
}
