package storekit

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tollgate/tollgate"
)

// BundleArgs checks b and returns what both stores insert: revision, the
// files as a JSON object and stored_at.
func BundleArgs(b tollgate.StoredBundle) ([]any, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	files, err := json.Marshal(b.Files)
	if err != nil {
		return nil, fmt.Errorf("encode bundle %s: %w", b.Revision, err)
	}
	return []any{b.Revision, string(files), UnixNano(b.StoredAt)}, nil
}

// BundleRow is a row of the bundles table as both stores read it.
type BundleRow struct {
	Revision string
	Files    string
	StoredAt int64
}

// Dest is the scan destination of SELECT revision, files, stored_at.
func (r *BundleRow) Dest() []any { return []any{&r.Revision, &r.Files, &r.StoredAt} }

// Bundle decodes the row.
func (r *BundleRow) Bundle() (tollgate.StoredBundle, error) {
	b := tollgate.StoredBundle{Revision: r.Revision, StoredAt: time.Unix(0, r.StoredAt).UTC()}
	if err := json.Unmarshal([]byte(r.Files), &b.Files); err != nil {
		return tollgate.StoredBundle{}, fmt.Errorf("decode stored bundle %s: %w", r.Revision, err)
	}
	return b, nil
}
