// Package rego is tollgate's engine. It loads a bundle directory the way
// stock `opa test` does, validates its configuration, compiles its modules
// in-process with the OPA Go API and evaluates decisions through a query
// prepared once and shared by all goroutines.
package rego

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Bundle is a bundle directory, loaded and validated but not compiled.
// It is immutable once loaded.
type Bundle struct {
	Dir      string
	Revision string // content hash of every module and data document
	Config   *Config

	modules map[string]*ast.Module // policy modules, keyed by file path
	tests   map[string]*ast.Module // *_test.rego modules
	data    map[string]any         // every data document, as OPA loads them
}

// LoadBundle reads dir (Rego v1 modules and data.json/yaml files, as stock
// `opa test dir` would), parses it and validates its configuration.
func LoadBundle(dir string) (*Bundle, error) { return loadBundle(dir, nil) }

// LoadBundle loads dir as the package function does, but only if its
// .signatures.json verifies with v and covers exactly what is loaded.
func (v *Verification) LoadBundle(dir string) (*Bundle, error) { return loadBundle(dir, v) }

func loadBundle(dir string, v *Verification) (*Bundle, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("load bundle: %s is not a directory", dir)
	}
	var signed *bundle.Bundle
	if v != nil {
		if signed, err = v.verify(dir); err != nil {
			return nil, err
		}
	}
	loaded, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{dir}, skipHidden)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	b := &Bundle{
		Dir:     dir,
		modules: map[string]*ast.Module{},
		tests:   map[string]*ast.Module{},
		data:    loaded.Documents,
	}
	h := sha256.New()
	// Modules are keyed by the file name the parser recorded, which is also
	// what OPA's tracers and errors report (the loader's own keys drop the
	// leading "/" of an absolute path). The revision hashes names relative
	// to dir, so it does not depend on how dir is spelled.
	files := make(map[string]*loader.RegoFile, len(loaded.Modules))
	raw := make(map[string][]byte, len(loaded.Modules)) // by path relative to dir
	for _, m := range loaded.Modules {
		files[m.Parsed.Package.Location.File] = m
	}
	for _, file := range slices.Sorted(maps.Keys(files)) {
		m := files[file]
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return nil, fmt.Errorf("load bundle %s: %w", dir, err)
		}
		raw[filepath.ToSlash(rel)] = m.Raw
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(m.Raw))
		h.Write(m.Raw)
		if strings.HasSuffix(file, "_test.rego") {
			b.tests[file] = m.Parsed
		} else {
			b.modules[file] = m.Parsed
		}
	}
	if len(b.modules) == 0 {
		return nil, fmt.Errorf("load bundle %s: no Rego modules found", dir)
	}
	if signed != nil {
		if err := matchesSigned(dir, signed, raw, loaded.Documents); err != nil {
			return nil, err
		}
	}
	docs, err := json.Marshal(loaded.Documents) // map keys sorted: canonical
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	h.Write(docs)
	b.Revision = "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]

	gp, projects := configDocs(b.data)
	if b.Config, err = ParseConfig(dir, gp, projects); err != nil {
		return nil, err
	}
	return b, nil
}

// WithConfig returns a copy of b whose configuration documents are replaced
// by the given ones (nil keeps the bundle's), validated as at load.
// Simulations use it to ask "what if the configuration were this".
func (b *Bundle) WithConfig(globalPolicy, projects any) (*Bundle, error) {
	gp, pr := configDocs(b.data)
	if globalPolicy != nil {
		gp = globalPolicy
	}
	if projects != nil {
		pr = projects
	}
	cfg, err := ParseConfig("", gp, pr)
	if err != nil {
		return nil, err
	}
	data := maps.Clone(b.data)
	configDoc, _ := data["config"].(map[string]any)
	configDoc = maps.Clone(configDoc)
	if configDoc == nil {
		configDoc = map[string]any{}
	}
	configDoc["global_policy"], configDoc["projects"] = gp, pr
	data["config"] = configDoc
	c := *b
	c.Config, c.data = cfg, data
	c.Revision = configRevision(b.Revision, globalPolicy, projects)
	return &c, nil
}

func configDocs(data map[string]any) (globalPolicy, projects any) {
	config, _ := data["config"].(map[string]any)
	return config["global_policy"], config["projects"]
}

// skipHidden leaves out dot-files and dot-directories (.git, editor backups).
func skipHidden(_ string, info fs.FileInfo, depth int) bool {
	return depth > 0 && strings.HasPrefix(info.Name(), ".")
}
