// Package release builds what tollgate ships — the binary, the container
// image, the archives — reproducibly: the same commit and the same Go
// toolchain give the same bytes, wherever and whenever they are built.
// Every timestamp is the commit's time (or SOURCE_DATE_EPOCH), every path
// is trimmed, and files are written in a fixed order with fixed owners.
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Source is the commit a release is built from.
type Source struct {
	Root    string    // the repository: go.mod, cmd/tollgate, bundles/, LICENSE
	Version string    // v1.2.3; "devel" when none is given
	Commit  string    // the full hash, "-dirty" appended if the tree has changes
	Time    time.Time // the commit's time (UTC): every timestamp in the artefacts
}

// Checkout clones the commit checked out in root into a temporary
// directory and reads it: a release is built from a commit, never from
// uncommitted changes, and is the same from a clone, a git worktree or
// another machine's clone. The clone is a plain local one (objects
// hard-linked), because the SBOM tool reads it with go-git, which follows
// neither worktrees nor alternates. warn hears about uncommitted changes.
// remove deletes the clone.
func Checkout(ctx context.Context, root, version string, warn io.Writer) (s Source, remove func(), err error) {
	commit, err := git(ctx, root, "rev-parse", "HEAD")
	if err != nil {
		return Source{}, nil, err
	}
	if status, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no"); err != nil {
		return Source{}, nil, err
	} else if status != "" {
		fmt.Fprintf(warn, "building commit %s: the uncommitted changes in %s are not in it\n", commit, root)
	}
	dir, err := os.MkdirTemp("", "tollgate-release-")
	if err != nil {
		return Source{}, nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	if _, err := git(ctx, root, "clone", "--quiet", "--no-checkout", ".", dir); err != nil {
		remove()
		return Source{}, nil, err
	}
	if _, err := git(ctx, dir, "checkout", "--quiet", "--detach", commit); err != nil {
		remove()
		return Source{}, nil, err
	}
	if s, err = ReadSource(ctx, dir, version); err != nil {
		remove()
		return Source{}, nil, err
	}
	return s, remove, nil
}

// ReadSource reads the commit and its time from git in root. SOURCE_DATE_EPOCH,
// when set, replaces the commit time (the reproducible-builds convention).
func ReadSource(ctx context.Context, root, version string) (Source, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return Source{}, err
	}
	s := Source{Root: root, Version: version}
	if s.Version == "" {
		s.Version = "devel"
	}
	if s.Commit, err = git(ctx, root, "rev-parse", "HEAD"); err != nil {
		return Source{}, err
	}
	status, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return Source{}, err
	}
	if status != "" {
		s.Commit += "-dirty"
	}
	epoch, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok {
		if epoch, err = git(ctx, root, "log", "-1", "--format=%ct"); err != nil {
			return Source{}, err
		}
	}
	seconds, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return Source{}, fmt.Errorf("commit time %q: want seconds since 1970 (SOURCE_DATE_EPOCH)", epoch)
	}
	s.Time = time.Unix(seconds, 0).UTC()
	return s, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s (a release is built from a git checkout)", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildBinary builds cmd/tollgate for goos/goarch into out: static (no cgo),
// paths trimmed, no DWARF, and the release's identity set with -X, not
// stamped by go build (see cmd/tollgate/version.go). The symbol table is
// kept: a test reads it to check the time zone database is linked.
func (s Source) BuildBinary(ctx context.Context, goos, goarch, out string) error {
	ldflags := strings.Join([]string{"-w",
		"-X main.version=" + s.Version,
		"-X main.commit=" + s.Commit,
		"-X main.commitDate=" + s.Time.Format(time.RFC3339),
	}, " ")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-mod=readonly",
		"-ldflags", ldflags, "-o", out, "./cmd/tollgate")
	cmd.Dir = s.Root
	// The environment is pinned where it changes the output: the caller's
	// GOFLAGS or GOAMD64 must not make another binary.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch,
		"GOFLAGS=", "GOAMD64=v1", "GOARM64=v8.0", "GOEXPERIMENT=")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s/%s: %w\n%s", goos, goarch, err, output)
	}
	return nil
}

// File is one entry of an archive or an image layer.
type File struct {
	Name     string // slash-separated, relative: "usr/local/bin/tollgate", "data/"
	Mode     int64  // permission bits (and sticky bit)
	UID, GID int
	Dir      bool
	Body     []byte
}

// Tree reads the files under dir into Files named prefix/relative-path,
// owned by root, directories 0755 and files 0644 (0755 if executable).
func Tree(dir, prefix string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(prefix+"/"+filepath.ToSlash(rel), "/.")
		switch {
		case d.IsDir():
			files = append(files, File{Name: name + "/", Mode: 0o755, Dir: true})
		case d.Type().IsRegular():
			body, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, File{Name: name, Mode: 0o644 | int64(info.Mode().Perm()&0o111), Body: body})
		default:
			return fmt.Errorf("%s: only files and directories are shipped, not %v", path, d.Type())
		}
		return nil
	})
	return files, err
}

// WriteTar writes files as a tar stream sorted by name, each parent
// directory before its children, every entry dated mtime. Parent
// directories not listed are added, owned by root, 0755.
func WriteTar(w io.Writer, files []File, mtime time.Time) error {
	byName := map[string]File{}
	for _, f := range files {
		f.Name = strings.TrimPrefix(f.Name, "/")
		if f.Dir && !strings.HasSuffix(f.Name, "/") {
			f.Name += "/"
		}
		if _, dup := byName[f.Name]; dup {
			return fmt.Errorf("%s listed twice", f.Name)
		}
		byName[f.Name] = f
		for dir := parent(f.Name); dir != ""; dir = parent(dir) {
			if _, ok := byName[dir]; !ok {
				byName[dir] = File{Name: dir, Mode: 0o755, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	slices.Sort(names) // "etc/" < "etc/passwd": a parent sorts before its children
	tw := tar.NewWriter(w)
	for _, name := range names {
		f := byName[name]
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: mtime, Format: tar.FormatPAX}
		if f.Dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Body))
		}
		// PAX without access or change times: only the fixed mtime.
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", name, err)
		}
		if _, err := tw.Write(f.Body); err != nil {
			return fmt.Errorf("tar %s: %w", name, err)
		}
	}
	return tw.Close()
}

// parent is "a/b/" for "a/b/c" and "a/b/c/", "" at the top.
func parent(name string) string {
	i := strings.LastIndex(strings.TrimSuffix(name, "/"), "/")
	if i < 0 {
		return ""
	}
	return name[:i+1]
}

// WriteTarGz is WriteTar, gzipped without a file name or time in the gzip
// header, at the best compression.
func WriteTarGz(w io.Writer, files []File, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := WriteTar(zw, files, mtime); err != nil {
		return err
	}
	return zw.Close()
}

// WriteFileAtomic writes body to path through a temporary file in the same
// directory, so that a failed build never leaves a half-written artefact.
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Main runs a release command: run with its arguments until Ctrl-C; its
// error, prefixed with name, on stderr and exit status 1.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
