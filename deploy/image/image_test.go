package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tollgate/tollgate/deploy/internal/release"
)

// The image is built twice from the same commit: the digests must match.
// The first build is then inspected as a registry would see it, and the
// binary taken out of its layer serves on the bundle taken out of its
// layer.
func TestImage(t *testing.T) {
	ctx := context.Background()
	src, remove, err := release.Checkout(ctx, "../..", "v0.0.0-test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	opts := options{platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}}, caCerts: caPath}
	var digests []v1.Hash
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	for _, dir := range dirs {
		start := time.Now()
		index, err := buildIndex(ctx, src, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeLayout(dir, index); err != nil {
			t.Fatal(err)
		}
		digest, err := index.Digest()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("built %s in %s", digest, time.Since(start).Round(time.Millisecond))
		digests = append(digests, digest)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same commit differ: %s and %s", digests[0], digests[1])
	}

	index, err := layout.ImageIndexFromPath(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 || manifest.Manifests[0].Platform == nil || manifest.Manifests[0].Platform.String() != "linux/amd64" {
		t.Fatalf("index manifests: %+v", manifest.Manifests)
	}
	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, img, src)
	checkArchive(t, index, img)
	rootfs := extract(t, img, src)
	runImage(t, rootfs, src)
}

func checkConfig(t *testing.T, img v1.Image, src release.Source) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/tollgate"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
		t.Errorf("user %q, entrypoint %q, cmd %q: want 65532:65532, [/usr/local/bin/tollgate], [serve]", c.User, c.Entrypoint, c.Cmd)
	}
	for _, kv := range []string{"TOLLGATE_DATA_DIR=/data", "TOLLGATE_BUNDLE=/etc/tollgate/bundle", "TOLLGATE_ADDR=0.0.0.0:8181"} {
		if !slices.Contains(c.Env, kv) {
			t.Errorf("env %q lacks %s", c.Env, kv)
		}
	}
	if _, ok := c.ExposedPorts["8181/tcp"]; !ok {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	created := src.Time.Format(time.RFC3339)
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "v0.0.0-test",
		"org.opencontainers.image.revision": src.Commit,
		"org.opencontainers.image.created":  created,
		"org.opencontainers.image.source":   "https://github.com/tollgate/tollgate",
		"org.opencontainers.image.licenses": "Apache-2.0",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(src.Time) {
		t.Errorf("os %s, architecture %s, created %s", cfg.OS, cfg.Architecture, cfg.Created.Time)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 || len(cfg.RootFS.DiffIDs) != 3 || len(cfg.History) != 3 {
		t.Fatalf("%d layers, %d diff ids, %d history entries: want 3 (base, bundle, binary)", len(layers), len(cfg.RootFS.DiffIDs), len(cfg.History))
	}
	for i, l := range layers {
		if mt, err := l.MediaType(); err != nil || mt != types.OCILayer {
			t.Errorf("layer %d media type %s (%v), want %s", i, mt, err, types.OCILayer)
		}
	}
}

// checkArchive: the docker load archive holds the same configuration and
// layers as the OCI layout.
func checkArchive(t *testing.T, index v1.ImageIndex, img v1.Image) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tollgate-image.tar")
	if err := writeArchive(path, "tollgate:v0.0.0-test", index); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("tollgate:v0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	got, err := loaded.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("the archive's configuration is %s, the layout's %s", got, want)
	}
	wantLayers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	gotLayers, err := loaded.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(gotLayers) != len(wantLayers) {
		t.Fatalf("the archive has %d layers, the layout %d", len(gotLayers), len(wantLayers))
	}
	for i := range wantLayers {
		w, err := wantLayers[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		g, err := gotLayers[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		if g != w {
			t.Errorf("layer %d: %s in the archive, %s in the layout", i, g, w)
		}
	}
}

// extract writes every layer's files under a temporary root, checking
// owners, modes and dates on the way, and returns the root.
func extract(t *testing.T, img v1.Image, src release.Source) string {
	t.Helper()
	root := t.TempDir()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !h.ModTime.Equal(src.Time) {
				t.Errorf("%s dated %s, want the commit's time %s", h.Name, h.ModTime, src.Time)
			}
			headers[strings.TrimSuffix(h.Name, "/")] = h
			path := filepath.Join(root, h.Name)
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(path, 0o755); err != nil {
					t.Fatal(err)
				}
				owner(t, path, h)
			case tar.TypeReg:
				body, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, body, os.FileMode(h.Mode)&0o755); err != nil {
					t.Fatal(err)
				}
				owner(t, path, h)
			default:
				t.Errorf("%s: unexpected entry type %c", h.Name, h.Typeflag)
			}
		}
		rc.Close()
	}
	want := map[string]struct {
		mode     int64
		uid, gid int
	}{
		"usr/local/bin/tollgate":                        {0o755, 0, 0},
		"etc/ssl/certs/ca-certificates.crt":             {0o644, 0, 0},
		"etc/passwd":                                    {0o644, 0, 0},
		"etc/group":                                     {0o644, 0, 0},
		"etc/tollgate/bundle/decision.rego":             {0o644, 0, 0},
		"etc/tollgate/bundle/decision_test.rego":        {0o644, 0, 0},
		"etc/tollgate/bundle/config/projects/data.json": {0o644, 0, 0},
		"usr/share/doc/tollgate/LICENSE":                {0o644, 0, 0},
		"data":                                          {0o700, 65532, 65532},
		"tmp":                                           {0o1777, 0, 0},
	}
	for name, w := range want {
		h, ok := headers[name]
		if !ok {
			t.Errorf("/%s missing from the image", name)
			continue
		}
		if h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid {
			t.Errorf("/%s: mode %o owner %d:%d, want %o %d:%d", name, h.Mode, h.Uid, h.Gid, w.mode, w.uid, w.gid)
		}
	}
	// Every file of the default bundle is shipped, tests included: serve
	// refuses a bundle without them.
	bundle, err := release.Tree(filepath.Join(src.Root, "bundles/tollgate"), "etc/tollgate/bundle")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range bundle {
		if _, ok := headers[strings.TrimSuffix(f.Name, "/")]; !ok {
			t.Errorf("/%s of the default bundle is missing from the image", f.Name)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(passwd), "\ntollgate:x:65532:65532:") {
		t.Errorf("/etc/passwd has no tollgate user 65532:\n%s", passwd)
	}
	certs, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(certs) {
		t.Error("/etc/ssl/certs/ca-certificates.crt holds no certificate")
	}
	checkStatic(t, filepath.Join(root, "usr/local/bin/tollgate"))
	return root
}

// checkStatic: an empty base has no libc and no zoneinfo, so the binary
// must need neither.
func checkStatic(t *testing.T, binary string) {
	t.Helper()
	f, err := elf.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v): want a static binary (CGO_ENABLED=0)", libs, err)
	}
	if f.Section(".interp") != nil {
		t.Error("the binary has a dynamic loader (.interp): want a static binary")
	}
	symbols, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(symbols, func(s elf.Symbol) bool { return s.Name == "time/tzdata.loadFromEmbeddedTZData" }) {
		t.Error("the binary does not embed time/tzdata: the image has no /usr/share/zoneinfo")
	}
}

// runImage starts the image's binary as the image would (its command, its
// environment with the paths moved under root) and asks for /healthz and
// /readyz: the bundle shipped loads, the store in /data opens.
func runImage(t *testing.T, root string, src release.Source) {
	t.Helper()
	binary := filepath.Join(root, "usr/local/bin/tollgate")
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatalf("tollgate version: %v", err)
	}
	if !strings.HasPrefix(string(out), "tollgate v0.0.0-test\n") || !strings.Contains(string(out), "commit:     "+src.Commit+"\n") {
		t.Errorf("tollgate version in the image:\n%s", out)
	}

	keys := t.TempDir()
	if asRoot() {
		// The image's user must reach the extracted tree and the licence.
		for _, dir := range []string{filepath.Dir(root), root, filepath.Dir(keys), keys} {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	dataDir := filepath.Join(root, "data")
	env := []string{
		"TOLLGATE_ADDR=" + freeAddr(t),
		"TOLLGATE_BUNDLE=" + filepath.Join(root, "etc/tollgate/bundle"),
		"TOLLGATE_DATA_DIR=" + dataDir,
		"TOLLGATE_LICENSE=" + filepath.Join(keys, "licence.jwt"),
		"TOLLGATE_LICENSE_KEY=" + filepath.Join(keys, "license-public.pem"),
	}
	tollgate := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = env
		asImageUser(cmd)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	// The vendor's side, as whoever runs the test.
	for _, args := range [][]string{
		{"license", "keygen", "--bits", "2048", "--out", keys},
		{"license", "issue", "--key", filepath.Join(keys, "license-private.pem"), "--subject", "image test", "--valid-for", "1h"},
	} {
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("tollgate %s: %v", strings.Join(args, " "), err)
		}
		if args[1] == "issue" {
			if err := os.WriteFile(filepath.Join(keys, "licence.jwt"), out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(filepath.Join(keys, "license-public.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	// As the README says to: a token first, in the image's /data.
	tollgate("token", "create", "--name", "admin", "--scopes", "admin")

	serve := exec.Command(binary, "serve") // the image's command
	serve.Env = env
	asImageUser(serve)
	var logs bytes.Buffer
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(os.Interrupt)
		serve.Wait()
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	})
	base := "http://" + strings.TrimPrefix(env[0], "TOLLGATE_ADDR=")
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := waitFor(t, base+path); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, code)
		}
	}
	db, err := os.Stat(filepath.Join(dataDir, "tollgate.db"))
	if err != nil {
		t.Fatalf("the store is not in /data: %v", err)
	}
	if st := db.Sys().(*syscall.Stat_t); asRoot() && st.Uid != uid {
		t.Errorf("/data/tollgate.db belongs to uid %d, want %d: tollgate did not run as the image's user", st.Uid, uid)
	}
}

// asRoot: when the test runs as root (CI containers), files get the
// image's owners and tollgate runs as the image's user, 65532, who may
// write /data only; otherwise both are the test's user.
func asRoot() bool { return os.Geteuid() == 0 }

func owner(t *testing.T, path string, h *tar.Header) {
	t.Helper()
	if !asRoot() {
		return
	}
	if err := os.Lchown(path, h.Uid, h.Gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, os.FileMode(h.Mode)&os.ModePerm|sticky(h.Mode)); err != nil {
		t.Fatal(err)
	}
}

func sticky(mode int64) os.FileMode {
	if mode&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

func asImageUser(cmd *exec.Cmd) {
	if asRoot() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls url until it answers, for up to a minute (the first start
// compiles the bundle and runs its tests), and returns the status code.
func waitFor(t *testing.T, url string) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
				return resp.StatusCode
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
