package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

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

func mustOpen(t testing.TB, url string, opts ...Option) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func openClosing(t testing.TB, url string, opts ...Option) *Store {
	t.Helper()
	s := mustOpen(t, url, opts...)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func record(status tollgate.Status, at time.Time) tollgate.Record {
	reasons := []tollgate.Reason{}
	if status == tollgate.Refused {
		reasons = []tollgate.Reason{{Code: tollgate.CodeCooldown, Message: "too soon"}}
	}
	return tollgate.Record{
		Decision: tollgate.Decision{
			ID: uuid.Must(uuid.NewV7()).String(), Status: status, Reasons: reasons, Warnings: []tollgate.Reason{},
			Project: "service-api", Pipeline: "deploy-prod", Branch: "main", Environment: "production",
			BundleRevision: "rev", EvaluatedAt: at,
		},
		Request: tollgate.Request{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod",
			Metadata: tollgate.Metadata{Environment: "production"}},
		Context: tollgate.Context{Now: at, Licence: tollgate.Licence{Status: tollgate.LicenceValid}},
	}
}

func fixed(rec tollgate.Record) func(tollgate.Cooldown) (tollgate.Record, error) {
	return func(tollgate.Cooldown) (tollgate.Record, error) { return rec, nil }
}

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
