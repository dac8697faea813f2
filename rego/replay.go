package rego

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate"
)

// storedDataFile is where Stored puts a bundle's data documents, merged.
const storedDataFile = "data.json"

// Stored is b as a tollgate.BundleStore keeps it, first kept at now: what
// LoadStored turns back into a bundle of the same revision. The data is
// encoded here rather than kept from the load: for a large registry it is
// most of a bundle's memory, and a revision is stored once.
func (b *Bundle) Stored(now time.Time) (tollgate.StoredBundle, error) {
	docs, err := ast.JSON(b.data)
	if err != nil {
		return tollgate.StoredBundle{}, fmt.Errorf("encode the data of bundle %s: %w", b.Revision, err)
	}
	data, err := json.Marshal(docs) // map keys sorted, as the revision hashes them
	if err != nil {
		return tollgate.StoredBundle{}, fmt.Errorf("encode the data of bundle %s: %w", b.Revision, err)
	}
	files := maps.Clone(b.sources)
	files[storedDataFile] = string(data)
	return tollgate.StoredBundle{Revision: b.Revision, Files: files, StoredAt: now.UTC()}, nil
}

// LoadStored loads a kept bundle. Its files are written to a temporary
// directory and loaded as LoadBundle loads any bundle, so that a replay
// compiles exactly what the server compiled; the result must have the
// revision it was kept under.
func LoadStored(sb tollgate.StoredBundle) (*Bundle, error) {
	if err := sb.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tollgate-bundle-")
	if err != nil {
		return nil, fmt.Errorf("load stored bundle %s: %w", sb.Revision, err)
	}
	defer os.RemoveAll(dir)
	for name, content := range sb.Files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("load stored bundle %s: %w", sb.Revision, err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("load stored bundle %s: %w", sb.Revision, err)
		}
	}
	b, err := LoadBundle(dir)
	if err != nil {
		return nil, fmt.Errorf("load stored bundle %s: %w", sb.Revision, err)
	}
	if b.Revision != sb.Revision {
		return nil, tollgate.Errorf(tollgate.EInternal, "stored bundle %s loads as revision %s: the stored copy was altered", sb.Revision, b.Revision)
	}
	b.Dir = "stored bundle " + sb.Revision
	return b, nil
}

// Keeper keeps every bundle revision a server activates in a store, so
// that decisions stay replayable after the bundle directory changed. It
// writes each revision once per process; the store ignores revisions it
// holds already, so replicas may keep the same one.
type Keeper struct {
	Store tollgate.BundleStore
	Now   func() time.Time

	// last is the revision kept last: every evaluation asks, and all but
	// the first after a reload find it here without taking the lock.
	last atomic.Pointer[string]
	mu   sync.Mutex
	kept map[string]bool
	// flight makes the evaluations that arrive while a revision is being
	// kept wait for that one write rather than each encode and write the
	// whole bundle again: right after a reload, every request in flight
	// asks at once.
	flight singleflight.Group
}

// Keep stores b unless this Keeper stored its revision already.
func (k *Keeper) Keep(ctx context.Context, b *Bundle) error {
	if last := k.last.Load(); last != nil && *last == b.Revision {
		return nil
	}
	k.mu.Lock()
	done := k.kept[b.Revision]
	k.mu.Unlock()
	if done {
		k.last.Store(&b.Revision)
		return nil
	}
	// The write is not tied to the first caller's context: a caller that
	// gives up must not fail the others waiting for the same write.
	ch := k.flight.DoChan(b.Revision, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepTimeout)
		defer cancel()
		return nil, k.keep(ctx, b)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// keepTimeout bounds one write of a bundle revision, which no single
// caller's context does.
const keepTimeout = 30 * time.Second

// keep writes b to the store and remembers it.
func (k *Keeper) keep(ctx context.Context, b *Bundle) error {
	sb, err := b.Stored(k.Now())
	if err != nil {
		return err
	}
	if err := k.Store.PutBundle(ctx, sb); err != nil {
		return fmt.Errorf("keep bundle revision %s: %w", b.Revision, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kept == nil {
		k.kept = map[string]bool{}
	}
	k.kept[b.Revision] = true
	k.last.Store(&b.Revision)
	return nil
}

// Replay is a recorded decision made again with the bundle revision and
// the context it was made with.
type Replay struct {
	DecisionID  string            `json:"decision_id"`
	Revision    string            `json:"bundle_revision"`
	Identical   bool              `json:"identical"`
	Differences []Difference      `json:"differences"`
	Recorded    tollgate.Decision `json:"recorded"`
	Replayed    tollgate.Decision `json:"replayed"`
}

// Difference is a field of a decision that a replay answered differently.
type Difference struct {
	Field    string `json:"field"`
	Recorded any    `json:"recorded"`
	Replayed any    `json:"replayed"`
}

// ReplayRecord evaluates rec's request again, with its recorded context
// (clock, licence, cooldown, scan, controls) under the bundle revision it
// was made with, read from bundles, and compares the answers. An unknown
// revision is an ENotFound error.
func ReplayRecord(ctx context.Context, bundles tollgate.BundleStore, rec tollgate.Record) (Replay, error) {
	revision := rec.Decision.BundleRevision
	sb, err := bundles.Bundle(ctx, revision)
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ENotFound {
			return Replay{}, tollgate.Errorf(tollgate.ENotFound,
				"decision %s was made with bundle revision %q, which is not in the store: it was recorded before bundles were kept, or in another store", rec.Decision.ID, revision)
		}
		return Replay{}, err
	}
	b, err := LoadStored(sb)
	if err != nil {
		return Replay{}, err
	}
	p, err := Compile(ctx, b)
	if err != nil {
		return Replay{}, fmt.Errorf("replay decision %s: %w", rec.Decision.ID, err)
	}
	d := p.Evaluate(ctx, rec.Request, rec.Context)
	d.ID = rec.Decision.ID
	diffs := Compare(rec.Decision, d)
	return Replay{DecisionID: rec.Decision.ID, Revision: revision, Identical: len(diffs) == 0,
		Differences: diffs, Recorded: rec.Decision, Replayed: d}, nil
}

// Compare lists the fields in which two decisions on the same request
// differ: status, reasons, warnings, waived reasons, suppressed findings,
// when the refusal clears, project, incident and bundle revision. Nil and
// empty lists are the same.
func Compare(recorded, replayed tollgate.Decision) []Difference {
	diffs := []Difference{}
	add := func(field string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			diffs = append(diffs, Difference{Field: field, Recorded: a, Replayed: b})
		}
	}
	add("status", recorded.Status, replayed.Status)
	add("reasons", nonNilReasons(recorded.Reasons), nonNilReasons(replayed.Reasons))
	add("warnings", nonNilReasons(recorded.Warnings), nonNilReasons(replayed.Warnings))
	add("waived", nonNilReasons(recorded.Waived), nonNilReasons(replayed.Waived))
	if len(recorded.Suppressed) > 0 || len(replayed.Suppressed) > 0 {
		add("suppressed", recorded.Suppressed, replayed.Suppressed)
	}
	if len(recorded.ClearsAt) > 0 || len(replayed.ClearsAt) > 0 {
		add("clears_at", recorded.ClearsAt, replayed.ClearsAt)
	}
	add("next_check_at", waitOf(recorded.NextCheckAt), waitOf(replayed.NextCheckAt))
	add("project", recorded.Project, replayed.Project)
	add("incident_id", recorded.IncidentID, replayed.IncidentID)
	add("bundle_revision", recorded.BundleRevision, replayed.BundleRevision)
	return diffs
}

// wait shows a next_check_at in a difference: absent (not waiting) and
// null (waiting, no known end) both encode as null in a decision.
type wait struct {
	Waiting bool               `json:"waiting"`
	At      tollgate.ClearTime `json:"at"`
}

func waitOf(n tollgate.NextCheck) wait { return wait{n.Waiting, tollgate.ClearTime{Time: n.At}} }

func nonNilReasons(r []tollgate.Reason) []tollgate.Reason {
	if r == nil {
		return []tollgate.Reason{}
	}
	return slices.Clone(r)
}
