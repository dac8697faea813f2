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
	// Catalogue is the messages of each language (messages.go).
	Catalogue Catalogue

	modules map[string]*ast.Module // policy modules, keyed by file path
	tests   map[string]*ast.Module // *_test.rego modules
	// Every data document, as OPA loads them, held once as an AST value:
	// the stores of the policy and of the tests share it, read-only. For a
	// large registry it is most of the memory a bundle takes.
	data ast.Object
	// sources is the text of every module (tests too), by slash path
	// relative to dir: what the revision hashes, and what Stored keeps.
	sources map[string]string
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
		sources: map[string]string{},
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
		b.sources[filepath.ToSlash(rel)] = string(m.Raw)
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

	gp, projects := configDocs(loaded.Documents)
	if b.Config, err = ParseConfig(dir, gp, projects); err != nil {
		return nil, err
	}
	if b.Catalogue, err = parseCatalogue(dir, loaded.Documents["messages"]); err != nil {
		return nil, err
	}
	if err := b.Config.checkLanguages(dir, b.Catalogue); err != nil {
		return nil, err
	}
	if b.data, err = astObject(loaded.Documents); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	return b, nil
}

func astObject(docs map[string]any) (ast.Object, error) {
	v, err := make(interner).value(docs)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("data documents are not an object")
	}
	return obj, nil
}

// interner converts data documents to AST values as ast.InterfaceToValue
// does, but makes each distinct array and object once: an equal one met
// again is the same value. A registry repeats itself (the same branches,
// pipelines and environments in project after project), and the data's
// AST is most of the memory a bundle keeps: the bench registry of 10,000
// projects keeps ~45 -> ~20 MB. The values are shared read-only, as the
// whole data object already is.
type interner map[int][]ast.Value // by hash

func (in interner) value(x any) (ast.Value, error) {
	switch x := x.(type) {
	case []any:
		terms := make([]*ast.Term, len(x))
		for i, e := range x {
			v, err := in.value(e)
			if err != nil {
				return nil, err
			}
			terms[i] = ast.NewTerm(v)
		}
		return in.intern(ast.NewArray(terms...)), nil
	case map[string]any:
		kvs := make([][2]*ast.Term, 0, len(x))
		for k, e := range x {
			v, err := in.value(e)
			if err != nil {
				return nil, err
			}
			kvs = append(kvs, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v)})
		}
		return in.intern(ast.NewObject(kvs...)), nil
	default:
		return ast.InterfaceToValue(x)
	}
}

func (in interner) intern(v ast.Value) ast.Value {
	h := v.Hash()
	for _, u := range in[h] {
		if identical(u, v) {
			return u
		}
	}
	in[h] = append(in[h], v)
	return v
}

// identical tells whether two arrays or objects, whose elements were
// interned, are the same document: elements that are arrays or objects
// are the same value, numbers are written alike (1.0 is not 1: a kept
// bundle's data must encode as it was loaded), other scalars are equal.
func identical(a, b ast.Value) bool {
	switch a := a.(type) {
	case *ast.Array:
		b, ok := b.(*ast.Array)
		if !ok || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameElement(a.Elem(i).Value, b.Elem(i).Value) {
				return false
			}
		}
		return true
	case ast.Object:
		b, ok := b.(ast.Object)
		if !ok || a.Len() != b.Len() {
			return false
		}
		same := true
		a.Until(func(k, v *ast.Term) bool {
			w := b.Get(k)
			same = w != nil && sameElement(v.Value, w.Value)
			return !same
		})
		return same
	}
	return false
}

func sameElement(a, b ast.Value) bool {
	switch a := a.(type) {
	case *ast.Array, ast.Object:
		return a == b
	case ast.Number:
		b, ok := b.(ast.Number)
		return ok && a == b
	}
	return a.Compare(b) == 0
}

// dataWith is b's data with key set to value at the top level: a new root
// object sharing everything else with b's, which must stay unchanged.
func (b *Bundle) dataWith(key string, value ast.Value) ast.Object {
	root := ast.NewObjectWithCapacity(b.data.Len() + 1)
	b.data.Foreach(func(k, v *ast.Term) {
		if k.Value.Compare(ast.String(key)) != 0 {
			root.Insert(k, v)
		}
	})
	root.Insert(ast.StringTerm(key), ast.NewTerm(value))
	return root
}

// WithConfig returns a copy of b whose configuration documents are replaced
// by the given ones (nil keeps the bundle's), validated as at load.
// Simulations use it to ask "what if the configuration were this".
func (b *Bundle) WithConfig(globalPolicy, projects any) (*Bundle, error) {
	var config map[string]any
	if t := b.data.Get(ast.StringTerm("config")); t != nil {
		v, err := ast.JSON(t.Value) // rare (a simulation's config): a copy is fine
		if err != nil {
			return nil, err
		}
		config, _ = v.(map[string]any)
	}
	if config == nil {
		config = map[string]any{}
	}
	if globalPolicy != nil {
		config["global_policy"] = globalPolicy
	}
	if projects != nil {
		config["projects"] = projects
	}
	cfg, err := ParseConfig("", config["global_policy"], config["projects"])
	if err != nil {
		return nil, err
	}
	if err := cfg.checkLanguages("", b.Catalogue); err != nil {
		return nil, err
	}
	configValue, err := ast.InterfaceToValue(config)
	if err != nil {
		return nil, err
	}
	c := *b
	c.Config, c.data = cfg, b.dataWith("config", configValue)
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
