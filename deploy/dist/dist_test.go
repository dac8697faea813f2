package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/tollgate/tollgate/deploy/internal/release"
)

// One platform's archive and SBOM, built twice from the same commit, must
// be the same bytes; then the archive is read as a user would.
func TestArchiveIsReproducible(t *testing.T) {
	ctx := context.Background()
	src, remove, err := release.Checkout(ctx, "../..", "v0.0.0-test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	sbom, err := sbomTool(ctx, "..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := platform{runtime.GOOS, runtime.GOARCH} // the test runs the binary
	outs := []string{t.TempDir(), t.TempDir()}
	var made []string
	for _, out := range outs {
		start := time.Now()
		if made, err = archive(ctx, src, sbom, p, out); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s built in %s", made[0], time.Since(start).Round(time.Millisecond))
	}
	if want := []string{"tollgate_v0.0.0-test_" + p.os + "_" + p.arch + ".tar.gz", "tollgate_v0.0.0-test_" + p.os + "_" + p.arch + ".cdx.json"}; !slices.Equal(made, want) {
		t.Fatalf("made %q, want %q", made, want)
	}
	for _, f := range made {
		a, b := digest(t, filepath.Join(outs[0], f)), digest(t, filepath.Join(outs[1], f))
		if a != b {
			t.Errorf("%s differs between two builds of the same commit: %s and %s", f, a, b)
		}
	}

	checkArchive(t, filepath.Join(outs[0], made[0]), src)
	checkSBOM(t, filepath.Join(outs[0], made[1]), p)

	if err := writeSums(outs[0], made); err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(outs[0], "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := digest(t, filepath.Join(outs[0], made[1])) + "  " + made[1] + "\n" + digest(t, filepath.Join(outs[0], made[0])) + "  " + made[0] + "\n"
	if string(sums) != want {
		t.Errorf("SHA256SUMS:\n%s\nwant:\n%s", sums, want)
	}
}

func digest(t *testing.T, path string) string {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func checkArchive(t *testing.T, path string, src release.Source) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q, time %s: want neither", zr.Name, zr.ModTime)
	}
	base := strings.TrimSuffix(filepath.Base(path), ".tar.gz")
	dir := t.TempDir()
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(src.Time) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: time %s, owner %d:%d (%q:%q): want the commit's time %s, 0:0 unnamed", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname, src.Time)
		}
		if h.Typeflag == tar.TypeReg {
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(h.Name)), body, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{base + "/", base + "/LICENSE", base + "/README.md", base + "/tollgate"}
	if !slices.Equal(names, want) {
		t.Errorf("archive entries %q, want %q in this order", names, want)
	}
	out, err := exec.Command(filepath.Join(dir, "tollgate"), "version").Output()
	if err != nil {
		t.Fatalf("tollgate version from the archive: %v", err)
	}
	for _, s := range []string{"tollgate v0.0.0-test\n", "commit:     " + src.Commit + "\n", "build date: " + src.Time.Format(time.RFC3339) + "\n"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("tollgate version lacks %q:\n%s", s, out)
		}
	}
	licence, err := os.ReadFile(filepath.Join(dir, "LICENSE"))
	if err != nil || !bytes.Contains(licence, []byte("Apache License\n                           Version 2.0, January 2004")) {
		t.Errorf("LICENSE in the archive is not the Apache License 2.0 (%v)", err)
	}
}

// checkSBOM reads the SBOM as CycloneDX JSON: the application, built for
// p, and the modules it links, with OPA among them at the version go.mod
// requires.
func checkSBOM(t *testing.T, path string, p platform) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type property struct{ Name, Value string }
	type component struct {
		Type, Name, Version string
		Properties          []property
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component component
		}
		Components []component
	}
	if err := json.Unmarshal(body, &bom); err != nil {
		t.Fatal(err)
	}
	main := bom.Metadata.Component
	if bom.BOMFormat != "CycloneDX" || main.Type != "application" || main.Name != "github.com/tollgate/tollgate" {
		t.Errorf("SBOM %s %s of %s %q", bom.BOMFormat, bom.SpecVersion, main.Type, main.Name)
	}
	for _, want := range []property{{"cdx:gomod:build:env:GOOS", p.os}, {"cdx:gomod:build:env:GOARCH", p.arch}, {"cdx:gomod:build:env:CGO_ENABLED", "0"}} {
		if !slices.Contains(main.Properties, want) {
			t.Errorf("SBOM lacks the build constraint %s=%s: %v", want.Name, want.Value, main.Properties)
		}
	}
	opa := requiredVersion(t, "github.com/open-policy-agent/opa")
	if !slices.ContainsFunc(bom.Components, func(c component) bool {
		return c.Name == "github.com/open-policy-agent/opa" && c.Version == opa
	}) {
		t.Errorf("SBOM does not list github.com/open-policy-agent/opa %s among its %d components", opa, len(bom.Components))
	}
}

// requiredVersion reads a module's version from the server's go.mod.
func requiredVersion(t *testing.T, module string) string {
	t.Helper()
	body, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.ParseLax("go.mod", body, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Require {
		if r.Mod.Path == module {
			return r.Mod.Version
		}
	}
	t.Fatalf("%s not in go.mod", module)
	return ""
}
