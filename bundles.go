package tollgate

import (
	"context"
	"path"
	"strings"
	"time"
)

// StoredBundle is a bundle revision as the store keeps it, so that a
// decision can be replayed with the policy it was made with long after the
// bundle directory changed. Files holds every Rego module verbatim (tests
// included: they count in the revision) and the data documents as one
// data.json, by slash-separated path relative to the bundle root: loaded
// again, they give the same revision.
type StoredBundle struct {
	Revision string            `json:"revision"`
	Files    map[string]string `json:"files"`
	StoredAt time.Time         `json:"stored_at"` // when it was first kept
}

// Validate checks that b can be stored and loaded again: a revision, at
// least one file, and paths that stay inside the bundle.
func (b StoredBundle) Validate() error {
	if b.Revision == "" {
		return Errorf(EInvalid, "bundle revision is required")
	}
	if len(b.Files) == 0 {
		return Errorf(EInvalid, "bundle %s has no files", b.Revision)
	}
	for name := range b.Files {
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
			return Errorf(EInvalid, "bundle %s: file path %q must be a clean relative path inside the bundle", b.Revision, name)
		}
	}
	return nil
}

// BundleStore keeps every bundle revision the server activated, content
// addressed: a revision is written once and never changes.
type BundleStore interface {
	// PutBundle keeps b unless its revision is kept already, in which case
	// it changes nothing and succeeds (the first StoredAt stays).
	PutBundle(ctx context.Context, b StoredBundle) error

	// Bundle returns the bundle of revision, or an ENotFound error.
	Bundle(ctx context.Context, revision string) (StoredBundle, error)
}
