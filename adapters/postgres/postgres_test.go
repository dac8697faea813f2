package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"group-commit", nil},
		{"tx-per-decision", []Option{WithGroupCommit(false)}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) func() tollgate.DecisionStore {
				url := pgtest.Shared(t).NewDatabase(t)
				return func() tollgate.DecisionStore { return mustOpen(t, url, mode.opts...) }
			})
		})
	}
}

// open opens the store at url, the opening bounded by 30 s.
func open(url string, opts ...Option) func() (*Store, error) {
	return func() (*Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return Open(ctx, url, opts...)
	}
}

func mustOpen(t testing.TB, url string, opts ...Option) *Store {
	t.Helper()
	return storetest.MustOpen(t, open(url, opts...))
}

func openClosing(t testing.TB, url string, opts ...Option) *Store {
	t.Helper()
	return storetest.OpenClosing(t, open(url, opts...))
}

// record and fixed are the conformance suite's: a new decision, and the
// decide function that records it.
var (
	record = storetest.Record
	fixed  = storetest.Fixed
)

func newKey(branch string) *tollgate.CooldownKey {
	return &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: branch}
}

// acceptUnlessCooling is the cooldown policy of the races: accept when no
// cooldown runs.
func acceptUnlessCooling(at time.Time) func(tollgate.Cooldown) (tollgate.Record, error) {
	return func(c tollgate.Cooldown) (tollgate.Record, error) {
		st := tollgate.Accepted
		if !c.LastAcceptedAt.IsZero() {
			st = tollgate.Refused
		}
		rec := record(st, at)
		rec.Context.Cooldown = c
		return rec, nil
	}
}

func assertCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want a %s error", what, code)
	}
	if got := tollgate.ErrorCode(err); got != code {
		t.Fatalf("%s: error %q has code %s, want %s", what, err, got, code)
	}
}

// listAll returns every record of the history.
func listAll(t testing.TB, s tollgate.DecisionStore) []tollgate.Record {
	t.Helper()
	var all []tollgate.Record
	f := tollgate.DecisionFilter{Limit: tollgate.MaxPageSize}
	for {
		page, err := s.Decisions(context.Background(), f)
		if err != nil {
			t.Fatalf("Decisions: %v", err)
		}
		all = append(all, page.Records...)
		if page.NextCursor == "" {
			return all
		}
		f.Cursor = page.NextCursor
	}
}
