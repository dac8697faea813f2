package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// bundleTests are the conformance checks of tollgate.BundleStore, which every
// store implements beside tollgate.DecisionStore.
var bundleTests = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Bundles/RoundTrip", testBundleRoundTrip},
	{"Bundles/NotFound", testBundleNotFound},
	{"Bundles/PutTwiceKeepsTheFirst", testBundleIdempotent},
	{"Bundles/InvalidStoresNothing", testBundleInvalid},
	{"Bundles/ConcurrentPutsOfOneRevision", testBundleConcurrent},
	{"Bundles/DurableAcrossReopen", testBundleDurable},
	{"Bundles/ClosedStoreIsUnavailable", testBundleClosed},
}

// bundles returns the store under test as a tollgate.BundleStore: every
// store must be one.
func (h *harness) bundles() tollgate.BundleStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.BundleStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.BundleStore", h.store)
	}
	return s
}

// sampleBundle has what real bundles hold: nested paths, non-ASCII text,
// quotes, newlines, tabs and a large file.
func sampleBundle(revision string) tollgate.StoredBundle {
	return tollgate.StoredBundle{
		Revision: revision,
		StoredAt: base.Add(time.Minute),
		Files: map[string]string{
			"decision.rego":          "package tollgate\n\n# « gel » des déploiements\ndecision := {\"status\": \"accepted\"}\n",
			"projects/payments.rego": "package tollgate.projects.payments\n\n\tdeny contains \"x\" if { true }\n",
			"data.json":              `{"config":{"global_policy":{"timezone":"Europe/Paris"},"projects":{}}}`,
			"big.rego":               "package big\n" + strings.Repeat("# padding line of a large module\n", 20000),
		},
	}
}

func testBundleRoundTrip(t *testing.T, h *harness) {
	want := sampleBundle("sha256:0123456789abcdef")
	if err := h.bundles().PutBundle(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	got, err := h.bundles().Bundle(t.Context(), want.Revision)
	if err != nil {
		t.Fatal(err)
	}
	want.StoredAt = want.StoredAt.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the bundle:\n got %+v\nwant %+v", got.Files, want.Files)
	}
}

func testBundleNotFound(t *testing.T, h *harness) {
	_, err := h.bundles().Bundle(t.Context(), "sha256:ffffffffffffffff")
	assertCode(t, "Bundle of an unknown revision", err, tollgate.ENotFound)
}

func testBundleIdempotent(t *testing.T, h *harness) {
	first := sampleBundle("sha256:1111111111111111")
	if err := h.bundles().PutBundle(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	again := sampleBundle(first.Revision)
	again.StoredAt = first.StoredAt.Add(time.Hour)
	again.Files = map[string]string{"other.rego": "package other\n"}
	if err := h.bundles().PutBundle(t.Context(), again); err != nil {
		t.Fatalf("PutBundle of a revision kept already: %v; want success, changing nothing", err)
	}
	got, err := h.bundles().Bundle(t.Context(), first.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if !got.StoredAt.Equal(first.StoredAt) || !reflect.DeepEqual(got.Files, first.Files) {
		t.Fatalf("second PutBundle changed the kept revision: stored at %v, %d files; want %v, %d files",
			got.StoredAt, len(got.Files), first.StoredAt, len(first.Files))
	}
}

func testBundleInvalid(t *testing.T, h *harness) {
	for name, b := range map[string]tollgate.StoredBundle{
		"no revision": {Files: map[string]string{"a.rego": "package a"}},
		"no files":    {Revision: "sha256:2222222222222222"},
		"escaping":    {Revision: "sha256:3333333333333333", Files: map[string]string{"../a.rego": "package a"}},
		"absolute":    {Revision: "sha256:4444444444444444", Files: map[string]string{"/etc/a.rego": "package a"}},
		"unclean":     {Revision: "sha256:5555555555555555", Files: map[string]string{"x/../a.rego": "package a"}},
	} {
		assertCode(t, "PutBundle "+name, h.bundles().PutBundle(t.Context(), b), tollgate.EInvalid)
		if b.Revision != "" {
			_, err := h.bundles().Bundle(t.Context(), b.Revision)
			assertCode(t, "Bundle after an invalid PutBundle ("+name+")", err, tollgate.ENotFound)
		}
	}
}

func testBundleConcurrent(t *testing.T, h *harness) {
	b := sampleBundle("sha256:6666666666666666")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			c := b
			c.StoredAt = b.StoredAt.Add(time.Duration(i) * time.Second)
			errs[i] = h.bundles().PutBundle(t.Context(), c)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("PutBundle %d of the same revision: %v; want every one to succeed", i, err)
		}
	}
	got, err := h.bundles().Bundle(t.Context(), b.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Files, b.Files) {
		t.Fatalf("concurrent puts: files changed")
	}
}

func testBundleDurable(t *testing.T, h *harness) {
	var revisions []string
	for i := range 3 {
		b := sampleBundle(fmt.Sprintf("sha256:777777777777777%d", i))
		if err := h.bundles().PutBundle(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		revisions = append(revisions, b.Revision)
	}
	h.reopen()
	for _, r := range revisions {
		if got, err := h.bundles().Bundle(t.Context(), r); err != nil || len(got.Files) != 4 {
			t.Fatalf("after reopen, Bundle(%s) = %d files, %v; want 4 files", r, len(got.Files), err)
		}
	}
}

func testBundleClosed(t *testing.T, h *harness) {
	s := h.bundles()
	b := sampleBundle("sha256:8888888888888888")
	if err := s.PutBundle(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	h.close()
	assertCode(t, "PutBundle", s.PutBundle(t.Context(), sampleBundle("sha256:9999999999999999")), tollgate.EUnavailable)
	_, err := s.Bundle(t.Context(), b.Revision)
	assertCode(t, "Bundle", err, tollgate.EUnavailable)
}
