package test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/rego"
)

// kubeletWrite projects files (slash-separated relative paths → content)
// into dir the way the kubelet's AtomicWriter updates a ConfigMap volume
// (kubernetes/kubernetes, pkg/volume/util/atomic_writer.go, Write):
//
//   - the files are written into a new hidden timestamped directory,
//     ..2006_01_02_15_04_05.NNNN (os.MkdirTemp in dir, mode 0755);
//   - a symlink ..data_tmp to it is renamed over ..data: the swap, atomic;
//   - the top-level entries the user sees are symlinks through ..data
//     (x.rego -> ..data/x.rego, config -> ..data/config), created where
//     missing and removed where no longer projected;
//   - the previous timestamped directory is deleted.
//
// Current kubelets create the visible symlinks after the swap; older ones
// (the file at commit 00e11024) before it, when a new name's symlink
// dangles until the swap: linksFirst does that.
func kubeletWrite(t *testing.T, dir string, files map[string][]byte, linksFirst bool) {
	t.Helper()
	dataDir := filepath.Join(dir, "..data")
	oldTs, err := os.Readlink(dataDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	top := map[string]bool{}
	for path := range files {
		top[strings.Split(path, "/")[0]] = true
	}
	var stale []string
	if oldTs != "" {
		entries, err := os.ReadDir(filepath.Join(dir, oldTs))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !top[e.Name()] {
				stale = append(stale, e.Name())
			}
		}
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Chmod(ts, 0o755))
	for path, data := range files {
		full := filepath.Join(ts, filepath.FromSlash(path))
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, data, 0o644))
	}
	links := func() {
		for name := range top {
			if _, err := os.Readlink(filepath.Join(dir, name)); os.IsNotExist(err) {
				must(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
			}
		}
	}
	if linksFirst {
		links()
	}
	tmp := filepath.Join(dir, "..data_tmp")
	must(t, os.Symlink(filepath.Base(ts), tmp))
	must(t, os.Rename(tmp, dataDir))
	if !linksFirst {
		links()
	}
	for _, name := range stale {
		must(t, os.Remove(filepath.Join(dir, name)))
	}
	if oldTs != "" {
		must(t, os.RemoveAll(filepath.Join(dir, oldTs)))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// bundleFiles reads a bundle directory as the files a ConfigMap projects.
func bundleFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	must(t, err)
	return files
}

// withBranches is files with the e2e project's allowed branches replaced.
func withBranches(t *testing.T, files map[string][]byte, branches []string) map[string][]byte {
	t.Helper()
	const key = "config/projects/data.json"
	var projects map[string]any
	must(t, json.Unmarshal(files[key], &projects))
	projects["e2e"].(map[string]any)["allowed_branches"] = branches
	data, err := json.MarshalIndent(projects, "", "  ")
	must(t, err)
	out := map[string][]byte{}
	for k, v := range files {
		out[k] = v
	}
	out[key] = append(data, '\n')
	return out
}

// TestServeFollowsAConfigMapVolume: the real server, its bundle a
// ConfigMap volume that the kubelet updates (see kubeletWrite). A good
// update becomes the active revision, with a new top-level file; a bad
// one is rejected and the last good bundle keeps deciding; an update that
// removes files, with the visible links made before the swap as older
// kubelets did, is active again.
func TestServeFollowsAConfigMapVolume(t *testing.T) {
	t.Parallel()
	mount := filepath.Join(t.TempDir(), "bundle")
	must(t, os.Mkdir(mount, 0o755))
	files := bundleFiles(t, newBundle(t))
	kubeletWrite(t, mount, files, false)
	s := startServer(t, serverOptions{bundle: mount})
	first := s.bundleStatus(t)

	// activate waits for the revision the mount now holds, and checks
	// that it decides a feature branch as want.
	feature := req("org/e2e", "feature/x", "deploy", envDev)
	activate := func(step string, want string) {
		t.Helper()
		b, err := rego.LoadBundle(mount)
		if err != nil {
			t.Fatalf("%s: the mount does not load: %v", step, err)
		}
		eventually(t, reloadWithin, step+": revision "+b.Revision+" active", func() bool {
			return s.bundleStatus(t).Revision == b.Revision
		})
		if d := s.evaluate(t, feature); d.Status != want || d.BundleRevision != b.Revision {
			t.Fatalf("%s: %s %v from %s, want %s from %s", step, d.Status, d.codes(), d.BundleRevision, want, b.Revision)
		}
	}
	if d := s.evaluate(t, feature); d.Status != "accepted" {
		t.Fatalf("before any update: %s %v, want accepted (the e2e project allows every branch)", d.Status, d.codes())
	}

	// 1. Only main, and a new file: a new visible symlink after the swap.
	good := withBranches(t, files, []string{"main"})
	good["kubernetes.rego"] = []byte("package tollgate.kubernetes\n\nmounted := true\n")
	kubeletWrite(t, mount, good, false)
	activate("good update", "refused")
	active := s.bundleStatus(t)
	// One reload, unless the machine stalled longer than the debounce
	// between two of the kubelet's steps; never a failure.
	if active.Reloads < 1 || active.Failures != 0 || active.Revision == first.Revision {
		t.Fatalf("after a good update: %+v, want a reload from %s and no failure", active, first.Revision)
	}
	if _, err := os.Lstat(filepath.Join(mount, "kubernetes.rego")); err != nil {
		t.Fatalf("the new file is not projected: %v", err)
	}

	// 2. A syntax error: rejected, the last good bundle keeps deciding.
	bad := withBranches(t, good, []string{"main", "feature/*"})
	bad["broken.rego"] = []byte("package tollgate.broken\n\nanswer := {\n")
	kubeletWrite(t, mount, bad, false)
	var st bundleStatus
	eventually(t, reloadWithin, "the bad update rejected", func() bool {
		st = s.bundleStatus(t)
		return st.Failures > 0
	})
	if st.Revision != active.Revision || !strings.Contains(st.LastError, "broken.rego") {
		t.Fatalf("after a bad update: %+v, want revision %s kept and an error naming broken.rego", st, active.Revision)
	}
	if d := s.evaluate(t, feature); d.Status != "refused" || d.BundleRevision != active.Revision {
		t.Fatalf("after a bad update: %s %v from %s, want refused from %s", d.Status, d.codes(), d.BundleRevision, active.Revision)
	}

	// 3. Fixed, and the extra files gone; links made before the swap.
	fixed := withBranches(t, files, []string{"main", "feature/*"})
	kubeletWrite(t, mount, fixed, true)
	activate("fixed update", "accepted")
	for _, gone := range []string{"broken.rego", "kubernetes.rego"} {
		if _, err := os.Lstat(filepath.Join(mount, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still projected: %v", gone, err)
		}
	}
	if st := s.bundleStatus(t); st.LastError != "" || st.Reloads <= active.Reloads {
		t.Fatalf("after the fix: %+v, want one more reload and no error", st)
	}
	// Only ..data and the current timestamped directory remain hidden.
	entries, err := os.ReadDir(mount)
	must(t, err)
	var hidden []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			hidden = append(hidden, e.Name())
		}
	}
	if len(hidden) != 2 || !slices.Contains(hidden, "..data") {
		t.Fatalf("hidden entries %v, want ..data and one timestamped directory", hidden)
	}
}
