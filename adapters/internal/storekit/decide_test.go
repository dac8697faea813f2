package storekit

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// errDuplicate stands for the database refusing one record.
var errDuplicate = errors.New("duplicate key")

// fakeDialect commits a batch whole unless it holds a record whose ID is
// in bad (then nothing, as a transaction), or fails every commit with
// down; it records the batches it was given.
type fakeDialect struct {
	bad     map[string]bool
	down    error
	batches [][]string
}

func (f *fakeDialect) dialect() Dialect {
	return Dialect{
		Where: "fake",
		Refused: func(err error) (string, string, bool) {
			return tollgate.EInternal, "", errors.Is(err, errDuplicate)
		},
		Explain: func(error) string { return "" },
		Commit: func(ws []*Write) error {
			var ids []string
			for _, w := range ws {
				ids = append(ids, w.Rec.Decision.ID)
			}
			f.batches = append(f.batches, ids)
			if f.down != nil {
				return f.down
			}
			for _, id := range ids {
				if f.bad[id] {
					return errDuplicate
				}
			}
			return nil
		},
	}
}

func fakeWrites(t *testing.T, ids ...string) []*Write {
	var ws []*Write
	for _, id := range ids {
		rec := tollgate.Record{Decision: tollgate.Decision{ID: id, Status: tollgate.Accepted, EvaluatedAt: time.Now()}}
		w, err := NewWrite(context.Background(), rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// A record the database refuses fails alone, not the batch it was in: the
// writer commits the others one by one. A database that fails fails the
// whole batch at once, without trying each record again.
func TestRefusedWriteFailsAlone(t *testing.T) {
	f := &fakeDialect{bad: map[string]bool{"c": true}}
	c := &Core{d: f.dialect(), keys: NewKeyLocks()}
	ws := fakeWrites(t, "a", "b", "c", "d")
	c.commit(ws)
	for _, w := range ws {
		err := <-w.done
		switch id := w.Rec.Decision.ID; {
		case id == "c" && tollgate.ErrorCode(err) != tollgate.EInternal:
			t.Errorf("the refused record: %v, want an %s error", err, tollgate.EInternal)
		case id != "c" && err != nil:
			t.Errorf("record %s failed with the refused one: %v", id, err)
		}
	}
	want := [][]string{{"a", "b", "c", "d"}, {"a"}, {"b"}, {"c"}, {"d"}}
	if !slices.EqualFunc(f.batches, want, slices.Equal) {
		t.Errorf("batches %v, want %v", f.batches, want)
	}
	if st := c.Stats(); st.Commits != 3 || st.Written != 3 {
		t.Errorf("stats %+v, want 3 commits of one", st)
	}

	f = &fakeDialect{down: errors.New("connection refused")}
	c = &Core{d: f.dialect(), keys: NewKeyLocks()}
	ws = fakeWrites(t, "a", "b")
	c.commit(ws)
	for _, w := range ws {
		if err := <-w.done; tollgate.ErrorCode(err) != tollgate.EUnavailable {
			t.Errorf("record %s with the database down: %v, want %s", w.Rec.Decision.ID, err, tollgate.EUnavailable)
		}
	}
	if len(f.batches) != 1 {
		t.Errorf("batches %v: a database down must not be tried again record by record", f.batches)
	}
}
