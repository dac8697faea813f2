// Package storetest is the conformance suite of tollgate.DecisionStore. Every
// store runs it from its own tests, against the real database:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) func() tollgate.DecisionStore {
//			dir := t.TempDir()
//			return func() tollgate.DecisionStore { return mustOpen(t, dir) }
//		})
//	}
//
// It checks what the server relies on: exact round trips, newest-first
// listing, every filter, keyset pagination, cooldowns that concurrent
// requests cannot both pass, group-committed writes that are all there
// after a restart, and the error codes the API maps to HTTP statuses.
//
// RunTamper is its twin for the ledger's promises: every value a store
// serves beside the hashed record, edited in SQL, is caught by `ledger
// verify` and never served as the record's.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
)

// Factory prepares a fresh, empty store for one test (a new directory, a new
// database or schema) and returns the function that opens it. The suite
// calls open once, and again after closing the store it returned: it must
// then reopen the same data. open fails t itself if it cannot open. Tests run
// in parallel, so Factory is called from several goroutines at once.
type Factory func(t *testing.T) (open func() tollgate.DecisionStore)

// Run runs the conformance suite, each check a subtest of t.
func Run(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"RecordAndGet", testRecordAndGet},
		{"NotFound", testNotFound},
		{"NewestFirst", testNewestFirst},
		{"Filters", testFilters},
		{"SinceUntilBoundaries", testSinceUntilBoundaries},
		{"Pagination", testPagination},
		{"PaginationStableWhileRecording", testPaginationStable},
		{"BadCursor", testBadCursor},
		{"LimitDefaultAndCap", testLimit},
		{"CooldownStartsOnAccept", testCooldownStartsOnAccept},
		{"CooldownKeysAreIndependent", testCooldownKeysIndependent},
		{"NilKeyHasNoCooldown", testNilKey},
		{"DecideErrorRecordsNothing", testDecideError},
		{"InvalidRecordRecordsNothing", testInvalidRecord},
		{"ConcurrentSameKeyPassesOnce", testConcurrentSameKey},
		{"ConcurrentDistinctKeys", testConcurrentDistinctKeys},
		{"DistinctKeysDoNotWaitForEachOther", testDistinctKeysParallel},
		{"ConcurrentNilKeys", testConcurrentNilKeys},
		{"CanceledContext", testCanceledContext},
		{"CancelWhileWaitingForKey", testCancelWhileWaiting},
		{"DurableAcrossReopen", testDurable},
		{"CloseFlushesPendingWrites", testCloseFlushes},
		{"ClosedStoreIsUnavailable", testClosed},
		{"Ping", testPing},
		{"EPSS/NothingImported", testEPSSNothingImported},
		{"EPSS/ImportAndLookup", testEPSSImportAndLookup},
		{"EPSS/ReplaceDropsOldScores", testEPSSReplace},
		{"EPSS/EmptySet", testEPSSEmptySet},
		{"EPSS/InvalidSetChangesNothing", testEPSSInvalid},
		{"EPSS/DurableAcrossReopen", testEPSSDurable},
		{"EPSS/ManyLookups", testEPSSMany},
		{"Scans/RoundTrip", testScanRoundTrip},
		{"Scans/InvalidRecordsNothing", testScanInvalid},
		{"Scans/Baseline", testBaseline},
		{"Controls/RoundTrip", testControlRoundTrip},
		{"Controls/NotFound", testControlNotFound},
		{"Controls/InvalidRecordsNothing", testControlInvalid},
		{"Controls/ListAndFilters", testControlList},
		{"Controls/LimitDefaultAndCap", testControlLimit},
		{"Controls/UpdateAppendsOneEvent", testControlUpdate},
		{"Controls/FailingChangeWritesNothing", testControlFailingChange},
		{"Controls/InForce", testControlInForce},
		{"Controls/ExpireDue", testControlExpireDue},
		{"Controls/ConcurrentExpireDueExpiresOnce", testControlConcurrentExpire},
		{"Controls/ConcurrentUpdatesOneWins", testControlConcurrentUpdate},
		{"Controls/OneIncidentAtATime", testControlOneIncident},
		{"Controls/ConcurrentIncidentsOneStarts", testControlConcurrentIncidents},
		{"Controls/DurableAcrossReopen", testControlDurable},
		{"Controls/ClosedStoreIsUnavailable", testControlClosed},
	}
	tests = append(tests, tokenTests...)
	tests = append(tests, ledgerTests...)
	tests = append(tests, bundleTests...)
	tests = append(tests, jobTests...)
	tests = append(tests, notifyTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, start(t, factory))
		})
	}
}

// harness holds the store under test and can close and reopen it.
type harness struct {
	t      *testing.T
	open   func() tollgate.DecisionStore
	store  tollgate.DecisionStore
	closed bool
}

func start(t *testing.T, factory Factory) *harness {
	h := &harness{t: t, open: factory(t)}
	h.store = h.open()
	t.Cleanup(func() {
		if !h.closed {
			if err := h.store.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return h
}

func (h *harness) close() {
	h.t.Helper()
	h.closed = true
	if err := h.store.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
}

func (h *harness) reopen() {
	h.t.Helper()
	if !h.closed {
		h.close()
	}
	h.store = h.open()
	h.closed = false
}

// base is the first evaluation time of every test: not UTC, with
// nanoseconds, to catch stores that lose either.
var base = time.Date(2026, 3, 2, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))

// spec describes a record; record fills in the rest.
type spec struct {
	project, pipeline, branch string
	status                    tollgate.Status
	at                        time.Time
	cooldown                  tollgate.Cooldown // what decide was given
}

func (s spec) record() tollgate.Record {
	id := uuid.Must(uuid.NewV7())
	if s.project == "" {
		s.project = "service-api"
	}
	if s.pipeline == "" {
		s.pipeline = "deploy-prod"
	}
	if s.branch == "" {
		s.branch = "main"
	}
	if s.status == "" {
		s.status = tollgate.Accepted
	}
	if s.at.IsZero() {
		s.at = base
	}
	reasons := []tollgate.Reason{}
	if s.status == tollgate.Refused {
		reasons = []tollgate.Reason{
			{Code: tollgate.CodeBranchNotAllowed, Message: fmt.Sprintf("branch %q is not allowed", s.branch)},
			{Code: tollgate.CodeCooldown, Message: "an accepted deployment less than 30 minutes ago"},
		}
	}
	return tollgate.Record{
		Decision: tollgate.Decision{
			ID:             id.String(),
			Status:         s.status,
			Reasons:        reasons,
			Warnings:       []tollgate.Reason{{Code: "risk_drift", Message: "two new findings since the last scan"}},
			Project:        s.project,
			Pipeline:       s.pipeline,
			Branch:         s.branch,
			Environment:    "production",
			BundleRevision: "sha256:5f1c0de",
			EvaluatedAt:    s.at,
		},
		Request: tollgate.Request{
			Repository: "org/" + s.project,
			Branch:     s.branch,
			Pipeline:   s.pipeline,
			Metadata:   tollgate.Metadata{Initiator: "jane", RunID: "run-" + id.String()[:8], Environment: "production"},
		},
		Context: tollgate.Context{
			Now: s.at,
			Licence: tollgate.Licence{
				Status:    tollgate.LicenceValid,
				Subject:   "acme",
				Edition:   "pro",
				ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			},
			Cooldown: s.cooldown,
		},
	}
}

// Fixed is a decide function that records rec whatever the cooldown.
func Fixed(rec tollgate.Record) func(tollgate.Cooldown) (tollgate.Record, error) {
	return func(tollgate.Cooldown) (tollgate.Record, error) { return rec, nil }
}

var fixed = Fixed

// Record is a new decision of status at at, for service-api's deploy-prod
// on main in production: what the stores' own tests record.
func Record(status tollgate.Status, at time.Time) tollgate.Record {
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

// put records rec with no cooldown key.
func put(t *testing.T, s tollgate.DecisionStore, rec tollgate.Record) {
	t.Helper()
	got, err := s.Decide(t.Context(), nil, fixed(rec))
	if err != nil {
		t.Fatalf("Decide %s: %v", rec.Decision.ID, err)
	}
	assertSame(t, "Decide's record", got, rec)
}

// putAll records one record per spec, in order, and returns them.
func putAll(t *testing.T, s tollgate.DecisionStore, specs []spec) []tollgate.Record {
	t.Helper()
	recs := make([]tollgate.Record, len(specs))
	for i, sp := range specs {
		recs[i] = sp.record()
		put(t, s, recs[i])
	}
	return recs
}

// putParallel records n records from workers goroutines at once and returns
// them in ID order.
func putParallel(t *testing.T, s tollgate.DecisionStore, n, workers int) []tollgate.Record {
	t.Helper()
	recs := make([]tollgate.Record, n)
	for i := range recs {
		recs[i] = spec{at: base.Add(time.Duration(i) * time.Second)}.record()
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if _, err := s.Decide(t.Context(), nil, fixed(recs[i])); err != nil {
					errs <- fmt.Errorf("Decide %s: %w", recs[i].Decision.ID, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return recs
}

// normalize makes records comparable with reflect.DeepEqual: the same
// instant in another location, or without a monotonic reading, is the same
// time.
func normalize(r tollgate.Record) tollgate.Record {
	r.Decision.EvaluatedAt = r.Decision.EvaluatedAt.UTC()
	r.Context.Now = r.Context.Now.UTC()
	r.Context.Licence.ExpiresAt = r.Context.Licence.ExpiresAt.UTC()
	r.Context.Cooldown.LastAcceptedAt = r.Context.Cooldown.LastAcceptedAt.UTC()
	return r
}

func assertSame(t *testing.T, what string, got, want tollgate.Record) {
	t.Helper()
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s differs from the record given\ngot:  %s\nwant: %s\n(Go values: got %#v\nwant %#v)", what, g, w, got, want)
	}
}

func ids(recs []tollgate.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Decision.ID
	}
	return out
}

// newestFirst returns the IDs of recs, which were made in order, newest first.
func newestFirst(recs []tollgate.Record) []string {
	out := ids(recs)
	slices.Reverse(out)
	return out
}

// list returns one page, failing the test on error.
func list(t *testing.T, s tollgate.DecisionStore, f tollgate.DecisionFilter) tollgate.DecisionPage {
	t.Helper()
	page, err := s.Decisions(t.Context(), f)
	if err != nil {
		t.Fatalf("Decisions(%+v): %v", f, err)
	}
	return page
}

// listAll follows the cursor to the last page and returns every record.
func listAll(t *testing.T, s tollgate.DecisionStore, f tollgate.DecisionFilter) []tollgate.Record {
	t.Helper()
	var all []tollgate.Record
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("more than 10000 pages: the cursor does not advance")
		}
		page := list(t, s, f)
		all = append(all, page.Records...)
		if page.NextCursor == "" {
			return all
		}
		f.Cursor = page.NextCursor
	}
}

func assertCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want a %s error", what, code)
	}
	if got := tollgate.ErrorCode(err); got != code {
		t.Fatalf("%s: error %q has code %s, want %s", what, err, got, code)
	}
}

func testRecordAndGet(t *testing.T, h *harness) {
	rec := spec{
		status:   tollgate.Refused,
		cooldown: tollgate.Cooldown{LastAcceptedAt: base.Add(-10 * time.Minute)},
	}.record()
	got, err := h.store.Decide(t.Context(), nil, func(c tollgate.Cooldown) (tollgate.Record, error) {
		if !c.LastAcceptedAt.IsZero() {
			t.Errorf("decide got cooldown %v with no key, want the zero Cooldown", c)
		}
		return rec, nil
	})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	assertSame(t, "Decide's record", got, rec)

	got, err = h.store.Decision(t.Context(), rec.Decision.ID)
	if err != nil {
		t.Fatalf("Decision(%s): %v", rec.Decision.ID, err)
	}
	assertSame(t, "Decision", got, rec)
	if !got.Decision.EvaluatedAt.Equal(base) || got.Decision.EvaluatedAt.Nanosecond() != base.Nanosecond() {
		t.Fatalf("evaluated_at %v, want %v to the nanosecond", got.Decision.EvaluatedAt, base)
	}

	page := list(t, h.store, tollgate.DecisionFilter{})
	if len(page.Records) != 1 || page.NextCursor != "" {
		t.Fatalf("Decisions: %d records, cursor %q; want 1 and none", len(page.Records), page.NextCursor)
	}
	assertSame(t, "Decisions", page.Records[0], rec)
}

func testNotFound(t *testing.T, h *harness) {
	put(t, h.store, spec{}.record())
	for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "", "no-such-decision"} {
		_, err := h.store.Decision(t.Context(), id)
		assertCode(t, fmt.Sprintf("Decision(%q)", id), err, tollgate.ENotFound)
	}
}

func testNewestFirst(t *testing.T, h *harness) {
	specs := make([]spec, 5)
	for i := range specs {
		specs[i] = spec{at: base.Add(time.Duration(i) * time.Minute)}
	}
	recs := putAll(t, h.store, specs)
	page := list(t, h.store, tollgate.DecisionFilter{})
	if got, want := ids(page.Records), newestFirst(recs); !slices.Equal(got, want) {
		t.Fatalf("Decisions order %q, want newest first %q", got, want)
	}
	if page.Records == nil {
		t.Fatal("Records is nil")
	}

	empty := list(t, h.store, tollgate.DecisionFilter{Project: "no-such-project"})
	if empty.Records == nil || len(empty.Records) != 0 || empty.NextCursor != "" {
		t.Fatalf("empty result: %#v, want a non-nil empty slice (JSON []) and no cursor", empty)
	}
}

// testFilters records a grid of records and checks every combination of
// filters against the same selection made in Go.
func testFilters(t *testing.T, h *harness) {
	var specs []spec
	for i := range 24 {
		st := tollgate.Accepted
		if i%3 == 0 {
			st = tollgate.Refused
		}
		specs = append(specs, spec{
			project:  []string{"alpha", "beta"}[i%2],
			pipeline: []string{"deploy", "hotfix"}[(i/2)%2],
			branch:   []string{"main", "dev"}[(i/4)%2],
			status:   st,
			at:       base.Add(time.Duration(i)*time.Minute + time.Duration(i)),
		})
	}
	recs := putAll(t, h.store, specs)
	since, until := specs[5].at, specs[17].at

	n := 0
	for _, project := range []string{"", "alpha", "gamma"} {
		for _, pipeline := range []string{"", "deploy"} {
			for _, branch := range []string{"", "main"} {
				for _, status := range []tollgate.Status{"", tollgate.Accepted, tollgate.Refused} {
					for _, s := range []time.Time{{}, since} {
						for _, u := range []time.Time{{}, until} {
							f := tollgate.DecisionFilter{
								Project: project, Pipeline: pipeline, Branch: branch, Status: status,
								Since: s, Until: u, Limit: tollgate.MaxPageSize,
							}
							var want []tollgate.Record
							for i, sp := range specs {
								if (project == "" || sp.project == project) &&
									(pipeline == "" || sp.pipeline == pipeline) &&
									(branch == "" || sp.branch == branch) &&
									(status == "" || sp.status == status) &&
									(s.IsZero() || !sp.at.Before(s)) &&
									(u.IsZero() || sp.at.Before(u)) {
									want = append(want, recs[i])
								}
							}
							page := list(t, h.store, f)
							if got, want := ids(page.Records), newestFirst(want); !slices.Equal(got, want) {
								t.Errorf("filter %+v: got %d records %q, want %d %q", f, len(got), got, len(want), want)
							}
							if page.NextCursor != "" {
								t.Errorf("filter %+v: cursor %q on the only page", f, page.NextCursor)
							}
							n++
						}
					}
				}
			}
		}
	}
	t.Logf("%d filter combinations checked", n)
}

func testSinceUntilBoundaries(t *testing.T, h *harness) {
	before := spec{at: base.Add(-time.Nanosecond)}.record()
	at := spec{at: base}.record()
	after := spec{at: base.Add(time.Nanosecond)}.record()
	for _, r := range []tollgate.Record{before, at, after} {
		put(t, h.store, r)
	}
	utc := base.UTC() // the same instant, written another way
	tests := []struct {
		name         string
		since, until time.Time
		want         []tollgate.Record
	}{
		{"since is inclusive", base, time.Time{}, []tollgate.Record{after, at}},
		{"since in another zone", utc, time.Time{}, []tollgate.Record{after, at}},
		{"since one ns later", base.Add(time.Nanosecond), time.Time{}, []tollgate.Record{after}},
		{"until is exclusive", time.Time{}, base, []tollgate.Record{before}},
		{"until in another zone", time.Time{}, utc, []tollgate.Record{before}},
		{"until one ns later", time.Time{}, base.Add(time.Nanosecond), []tollgate.Record{at, before}},
		{"since == until is empty", base, base, nil},
		{"one-ns window", base, base.Add(time.Nanosecond), []tollgate.Record{at}},
		{"since after until is empty", base.Add(time.Nanosecond), base, nil},
		{"far past and future", time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), []tollgate.Record{after, at, before}},
	}
	for _, tc := range tests {
		page := list(t, h.store, tollgate.DecisionFilter{Since: tc.since, Until: tc.until})
		if got, want := ids(page.Records), ids(tc.want); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, want)
		}
	}
}

func testPagination(t *testing.T, h *harness) {
	// Seven records of project alpha between seven of beta: the walk must
	// see each alpha record once, in order, and no beta one.
	var specs []spec
	for i := range 14 {
		specs = append(specs, spec{project: []string{"alpha", "beta"}[i%2], at: base.Add(time.Duration(i) * time.Minute)})
	}
	recs := putAll(t, h.store, specs)
	var alpha []tollgate.Record
	for i, r := range recs {
		if specs[i].project == "alpha" {
			alpha = append(alpha, r)
		}
	}
	want := newestFirst(alpha)

	f := tollgate.DecisionFilter{Project: "alpha", Limit: 3}
	var sizes []int
	var got []string
	for {
		page := list(t, h.store, f)
		sizes = append(sizes, len(page.Records))
		got = append(got, ids(page.Records)...)
		if page.NextCursor == "" {
			break
		}
		if len(sizes) > 3 {
			t.Fatalf("more than 3 pages; sizes so far %v", sizes)
		}
		f.Cursor = page.NextCursor
	}
	if !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("page sizes %v, want [3 3 1]", sizes)
	}
	if !slices.Equal(got, want) {
		t.Errorf("walk got %q, want %q", got, want)
	}

	// A last page that is exactly full has no cursor: no empty page after it.
	full := listAll(t, h.store, tollgate.DecisionFilter{Limit: 7})
	if len(full) != 14 {
		t.Fatalf("walk with limit 7 got %d records, want 14", len(full))
	}
	page := list(t, h.store, tollgate.DecisionFilter{Limit: 7})
	page = list(t, h.store, tollgate.DecisionFilter{Limit: 7, Cursor: page.NextCursor})
	if len(page.Records) != 7 || page.NextCursor != "" {
		t.Errorf("second page of 14 by 7: %d records, cursor %q; want 7 and none", len(page.Records), page.NextCursor)
	}
}

func testPaginationStable(t *testing.T, h *harness) {
	specs := make([]spec, 7)
	for i := range specs {
		specs[i] = spec{at: base.Add(time.Duration(i) * time.Minute)}
	}
	recs := putAll(t, h.store, specs)
	first := list(t, h.store, tollgate.DecisionFilter{Limit: 3})
	// Newer decisions arrive while a client pages through the history.
	putAll(t, h.store, []spec{{at: base.Add(time.Hour)}, {at: base.Add(2 * time.Hour)}})
	rest := listAll(t, h.store, tollgate.DecisionFilter{Limit: 3, Cursor: first.NextCursor})
	got := append(ids(first.Records), ids(rest)...)
	if want := newestFirst(recs); !slices.Equal(got, want) {
		t.Fatalf("walk while recording got %q, want %q", got, want)
	}
}

func testBadCursor(t *testing.T, h *harness) {
	putAll(t, h.store, []spec{{}, {}, {}})
	for _, c := range []string{"%%% not a cursor %%%", "Z2FyYmFnZQ", "bm90LWEtY3Vyc29y"} {
		_, err := h.store.Decisions(t.Context(), tollgate.DecisionFilter{Cursor: c})
		assertCode(t, fmt.Sprintf("Decisions with cursor %q", c), err, tollgate.EInvalid)
	}
}

func testLimit(t *testing.T, h *harness) {
	n := tollgate.MaxPageSize + 10
	recs := putParallel(t, h.store, n, 20)
	for _, tc := range []struct {
		limit, want int
	}{
		{0, tollgate.DefaultPageSize},
		{-5, tollgate.DefaultPageSize},
		{1, 1},
		{tollgate.MaxPageSize, tollgate.MaxPageSize},
		{tollgate.MaxPageSize + 100, tollgate.MaxPageSize},
	} {
		page := list(t, h.store, tollgate.DecisionFilter{Limit: tc.limit})
		if len(page.Records) != tc.want || page.NextCursor == "" {
			t.Errorf("limit %d: %d records, cursor %q; want %d and a cursor", tc.limit, len(page.Records), page.NextCursor, tc.want)
		}
	}
	all := listAll(t, h.store, tollgate.DecisionFilter{Limit: 1 << 20})
	got := ids(all)
	want := ids(recs)
	slices.Sort(want)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("walk of %d records with a huge limit got %d, not each once in ID order", n, len(got))
	}
}

// decideWith runs Decide on key, recording the spec built from the cooldown
// decide is given, and returns that cooldown and the record.
func decideWith(t *testing.T, s tollgate.DecisionStore, key *tollgate.CooldownKey, sp spec) (tollgate.Cooldown, tollgate.Record) {
	t.Helper()
	var seen tollgate.Cooldown
	var made tollgate.Record
	got, err := s.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
		seen = c
		sp.cooldown = c
		made = sp.record()
		return made, nil
	})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	// The store writes the key the decision was made under into the
	// record, where the ledger covers it.
	if key != nil {
		k := *key
		made.CooldownKey = &k
	}
	assertSame(t, "Decide's record", got, made)
	return seen, got
}

func keyOf(sp spec) *tollgate.CooldownKey {
	return &tollgate.CooldownKey{Project: sp.project, Pipeline: sp.pipeline, Branch: sp.branch}
}

func assertCooldown(t *testing.T, what string, got tollgate.Cooldown, want time.Time) {
	t.Helper()
	if !got.LastAcceptedAt.Equal(want) {
		t.Fatalf("%s: cooldown last accepted at %v, want %v", what, got.LastAcceptedAt, want)
	}
}

func testCooldownStartsOnAccept(t *testing.T, h *harness) {
	sp := spec{project: "p", pipeline: "deploy", branch: "main"}
	key := keyOf(sp)
	at := func(min int) time.Time { return base.Add(time.Duration(min)*time.Minute + 7) }

	sp.status, sp.at = tollgate.Refused, at(0)
	seen, _ := decideWith(t, h.store, key, sp)
	assertCooldown(t, "first decision", seen, time.Time{})

	sp.status, sp.at = tollgate.Accepted, at(1)
	seen, _ = decideWith(t, h.store, key, sp)
	assertCooldown(t, "after a refusal only", seen, time.Time{})

	sp.status, sp.at = tollgate.Refused, at(2)
	seen, _ = decideWith(t, h.store, key, sp)
	assertCooldown(t, "after an acceptance", seen, at(1))

	sp.status, sp.at = tollgate.Accepted, at(40)
	seen, _ = decideWith(t, h.store, key, sp)
	assertCooldown(t, "a refusal does not move the cooldown", seen, at(1))

	sp.status, sp.at = tollgate.Refused, at(41)
	seen, _ = decideWith(t, h.store, key, sp)
	assertCooldown(t, "a second acceptance moves it", seen, at(40))

	cd, err := h.store.Cooldown(t.Context(), *key)
	if err != nil {
		t.Fatalf("Cooldown: %v", err)
	}
	assertCooldown(t, "Cooldown", cd, at(40))

	if page := list(t, h.store, tollgate.DecisionFilter{}); len(page.Records) != 5 {
		t.Fatalf("%d records, want all 5 decisions", len(page.Records))
	}
}

func testCooldownKeysIndependent(t *testing.T, h *harness) {
	sp := spec{project: "p", pipeline: "deploy", branch: "main", at: base}
	decideWith(t, h.store, keyOf(sp), sp)
	for _, other := range []spec{
		{project: "q", pipeline: "deploy", branch: "main"},
		{project: "p", pipeline: "hotfix", branch: "main"},
		{project: "p", pipeline: "deploy", branch: "dev"},
	} {
		seen, _ := decideWith(t, h.store, keyOf(other), spec{project: other.project, pipeline: other.pipeline, branch: other.branch, status: tollgate.Refused})
		assertCooldown(t, fmt.Sprintf("key %+v", *keyOf(other)), seen, time.Time{})
		cd, err := h.store.Cooldown(t.Context(), *keyOf(other))
		if err != nil {
			t.Fatalf("Cooldown: %v", err)
		}
		assertCooldown(t, fmt.Sprintf("Cooldown(%+v)", *keyOf(other)), cd, time.Time{})
	}
	seen, _ := decideWith(t, h.store, keyOf(sp), sp)
	assertCooldown(t, "the accepted key", seen, base)
}

func testNilKey(t *testing.T, h *harness) {
	sp := spec{project: "p", pipeline: "deploy", branch: "main", status: tollgate.Accepted}
	seen, _ := decideWith(t, h.store, nil, sp)
	assertCooldown(t, "nil key", seen, time.Time{})
	// Accepted without a key: no cooldown starts, even for the record's own
	// project, pipeline and branch.
	seen, _ = decideWith(t, h.store, keyOf(sp), spec{project: "p", pipeline: "deploy", branch: "main", status: tollgate.Refused})
	assertCooldown(t, "after an accepted nil-key decision", seen, time.Time{})
}

func testDecideError(t *testing.T, h *harness) {
	sp := spec{project: "p", pipeline: "deploy", branch: "main"}
	boom := errors.New("policy exploded")
	_, err := h.store.Decide(t.Context(), keyOf(sp), func(tollgate.Cooldown) (tollgate.Record, error) {
		return sp.record(), boom // an accepted record with the error: still nothing recorded
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Decide returned %v, want decide's error", err)
	}
	if page := list(t, h.store, tollgate.DecisionFilter{}); len(page.Records) != 0 {
		t.Fatalf("%d records after a failed decide, want none", len(page.Records))
	}
	seen, _ := decideWith(t, h.store, keyOf(sp), spec{project: "p", pipeline: "deploy", branch: "main"})
	assertCooldown(t, "after a failed decide", seen, time.Time{})
}

func testInvalidRecord(t *testing.T, h *harness) {
	sp := spec{project: "p", pipeline: "deploy", branch: "main"}
	noID := sp.record()
	noID.Decision.ID = ""
	if _, err := h.store.Decide(t.Context(), keyOf(sp), fixed(noID)); err == nil {
		t.Fatal("Decide recorded a decision without an ID")
	}

	first := sp.record()
	put(t, h.store, first)
	dup := spec{project: "p", pipeline: "deploy", branch: "main", status: tollgate.Accepted, at: base.Add(time.Hour)}.record()
	dup.Decision.ID = first.Decision.ID
	if _, err := h.store.Decide(t.Context(), keyOf(sp), fixed(dup)); err == nil {
		t.Fatal("Decide recorded a second decision with the same ID")
	}
	got, err := h.store.Decision(t.Context(), first.Decision.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, "the first record after a duplicate", got, first)
	if page := list(t, h.store, tollgate.DecisionFilter{}); len(page.Records) != 1 {
		t.Fatalf("%d records, want only the first", len(page.Records))
	}
	cd, err := h.store.Cooldown(t.Context(), *keyOf(sp))
	if err != nil {
		t.Fatal(err)
	}
	assertCooldown(t, "after refused writes", cd, time.Time{})
}

// testConcurrentSameKey is the cooldown race: 20 requests for one pipeline at
// once, with a policy that accepts only when no cooldown runs. Exactly one may
// pass.
func testConcurrentSameKey(t *testing.T, h *harness) {
	const n = 20
	sp := spec{project: "p", pipeline: "deploy", branch: "main"}
	key := keyOf(sp)
	type result struct {
		seen tollgate.Cooldown
		rec  tollgate.Record
		err  error
	}
	results := make([]result, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-ready
			r := &results[i]
			r.rec, r.err = h.store.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
				r.seen = c
				s := sp
				s.at = base.Add(time.Duration(i) * time.Nanosecond)
				s.cooldown = c
				s.status = tollgate.Accepted
				if !c.LastAcceptedAt.IsZero() {
					s.status = tollgate.Refused
				}
				return s.record(), nil
			})
		})
	}
	close(ready)
	wg.Wait()

	var accepted []tollgate.Record
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Decide %d: %v", i, r.err)
		}
		if r.rec.Decision.Status == tollgate.Accepted {
			accepted = append(accepted, r.rec)
		}
	}
	if len(accepted) != 1 {
		t.Fatalf("%d of %d simultaneous decisions passed the cooldown, want exactly 1", len(accepted), n)
	}
	for i, r := range results {
		if r.rec.Decision.Status == tollgate.Refused {
			assertCooldown(t, fmt.Sprintf("refused decision %d", i), r.seen, accepted[0].Decision.EvaluatedAt)
		}
	}
	if all := listAll(t, h.store, tollgate.DecisionFilter{Project: "p"}); len(all) != n {
		t.Fatalf("%d records, want %d", len(all), n)
	}
}

func testConcurrentDistinctKeys(t *testing.T, h *harness) {
	const n = 20
	specs := make([]spec, n)
	for i := range specs {
		specs[i] = spec{project: "p", pipeline: "deploy", branch: fmt.Sprintf("release/%d", i), at: base.Add(time.Duration(i))}
	}
	recs := make([]tollgate.Record, n)
	errs := make([]error, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-ready
			recs[i], errs[i] = h.store.Decide(t.Context(), keyOf(specs[i]), func(c tollgate.Cooldown) (tollgate.Record, error) {
				s := specs[i]
				if !c.LastAcceptedAt.IsZero() {
					s.status = tollgate.Refused
				}
				return s.record(), nil
			})
		})
	}
	close(ready)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Decide %d: %v", i, errs[i])
		}
		if recs[i].Decision.Status != tollgate.Accepted {
			t.Errorf("key %d was refused: another key's cooldown leaked into it", i)
		}
		cd, err := h.store.Cooldown(t.Context(), *keyOf(specs[i]))
		if err != nil {
			t.Fatal(err)
		}
		assertCooldown(t, fmt.Sprintf("key %d", i), cd, specs[i].at)
	}
}

// testDistinctKeysParallel fails a store that serialises all Decides behind
// one lock: a's decide waits for b's to run.
func testDistinctKeysParallel(t *testing.T, h *harness) {
	a := spec{project: "p", pipeline: "deploy", branch: "a"}
	b := spec{project: "p", pipeline: "deploy", branch: "b"}
	bRan := make(chan struct{})
	errA := make(chan error, 1)
	go func() {
		_, err := h.store.Decide(t.Context(), keyOf(a), func(tollgate.Cooldown) (tollgate.Record, error) {
			select {
			case <-bRan:
				return a.record(), nil
			case <-time.After(10 * time.Second):
				return tollgate.Record{}, errors.New("b's Decide did not run while a's held its key")
			}
		})
		errA <- err
	}()
	// Give a's Decide a head start so that it usually holds its key first.
	time.Sleep(20 * time.Millisecond)
	if _, err := h.store.Decide(t.Context(), keyOf(b), func(tollgate.Cooldown) (tollgate.Record, error) {
		close(bRan)
		return b.record(), nil
	}); err != nil {
		t.Fatalf("Decide b: %v", err)
	}
	if err := <-errA; err != nil {
		t.Fatalf("Decide a: %v", err)
	}
}

func testConcurrentNilKeys(t *testing.T, h *harness) {
	recs := putParallel(t, h.store, 200, 50)
	for _, r := range recs[:10] {
		got, err := h.store.Decision(t.Context(), r.Decision.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertSame(t, "Decision", got, r)
	}
	got := ids(listAll(t, h.store, tollgate.DecisionFilter{Limit: 37}))
	want := ids(recs)
	slices.Sort(want)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d records, want each of the %d once, newest first", len(got), len(want))
	}
}

func testCanceledContext(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sp := spec{project: "p", pipeline: "deploy", branch: "main"}
	for _, key := range []*tollgate.CooldownKey{nil, keyOf(sp)} {
		_, err := h.store.Decide(ctx, key, fixed(sp.record()))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Decide with a canceled context (key %v): %v, want context.Canceled", key, err)
		}
	}
	if page := list(t, h.store, tollgate.DecisionFilter{}); len(page.Records) != 0 {
		t.Fatalf("%d records after canceled Decides, want none", len(page.Records))
	}
}

// testCancelWhileWaitingForKey: a request waiting for a busy key gives up when
// its context ends, without running decide and without breaking the lock.
func testCancelWhileWaiting(t *testing.T, h *harness) {
	sp := spec{project: "p", pipeline: "deploy", branch: "main"}
	key := keyOf(sp)
	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan tollgate.Record, 1)
	go func() {
		rec, err := h.store.Decide(t.Context(), key, func(tollgate.Cooldown) (tollgate.Record, error) {
			close(holding)
			<-release
			return sp.record(), nil
		})
		if err != nil {
			t.Errorf("first Decide: %v", err)
		}
		first <- rec
	}()
	<-holding

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := h.store.Decide(ctx, key, func(tollgate.Cooldown) (tollgate.Record, error) {
		t.Error("decide ran while another Decide held the key")
		return sp.record(), nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Decide: %v, want context.DeadlineExceeded", err)
	}

	close(release)
	accepted := <-first
	seen, _ := decideWith(t, h.store, key, spec{project: "p", pipeline: "deploy", branch: "main", status: tollgate.Refused})
	assertCooldown(t, "after the held decision", seen, accepted.Decision.EvaluatedAt)
}

func testDurable(t *testing.T, h *harness) {
	var keyed []spec
	for i := range 5 {
		keyed = append(keyed, spec{project: "p", pipeline: "deploy", branch: fmt.Sprintf("b%d", i), at: base.Add(time.Duration(i) * time.Second)})
	}
	var recs []tollgate.Record
	for _, sp := range keyed {
		_, rec := decideWith(t, h.store, keyOf(sp), sp)
		recs = append(recs, rec)
	}
	recs = append(recs, putParallel(t, h.store, 40, 8)...)

	h.reopen()

	for _, r := range recs {
		got, err := h.store.Decision(t.Context(), r.Decision.ID)
		if err != nil {
			t.Fatalf("after reopen, Decision(%s): %v", r.Decision.ID, err)
		}
		assertSame(t, "after reopen", got, r)
	}
	if all := listAll(t, h.store, tollgate.DecisionFilter{}); len(all) != len(recs) {
		t.Fatalf("after reopen, %d records, want %d", len(all), len(recs))
	}
	for _, sp := range keyed {
		cd, err := h.store.Cooldown(t.Context(), *keyOf(sp))
		if err != nil {
			t.Fatal(err)
		}
		assertCooldown(t, "after reopen", cd, sp.at)
	}
	put(t, h.store, spec{}.record()) // and it still records
}

// testCloseFlushes closes the store while decisions are being recorded: every
// Decide that returned nil must find its record after a reopen, and the
// others must have failed as unavailable.
func testCloseFlushes(t *testing.T, h *harness) {
	const n = 100
	recs := make([]tollgate.Record, n)
	for i := range recs {
		recs[i] = spec{at: base.Add(time.Duration(i))}.record()
	}
	errs := make([]error, n)
	firstDone := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = h.store.Decide(t.Context(), nil, fixed(recs[i]))
			once.Do(func() { close(firstDone) })
		})
	}
	<-firstDone
	h.close()
	wg.Wait()

	h.reopen()
	acknowledged := 0
	for i, err := range errs {
		if err != nil {
			if code := tollgate.ErrorCode(err); code != tollgate.EUnavailable {
				t.Errorf("Decide during Close: %v (code %s), want an %s error", err, code, tollgate.EUnavailable)
			}
			continue
		}
		acknowledged++
		if _, err := h.store.Decision(t.Context(), recs[i].Decision.ID); err != nil {
			t.Errorf("decision %s was acknowledged before Close but is gone: %v", recs[i].Decision.ID, err)
		}
	}
	t.Logf("%d of %d decisions acknowledged before Close", acknowledged, n)
}

func testClosed(t *testing.T, h *harness) {
	h.close()
	_, err := h.store.Decide(t.Context(), nil, func(tollgate.Cooldown) (tollgate.Record, error) {
		return spec{}.record(), nil
	})
	assertCode(t, "Decide after Close", err, tollgate.EUnavailable)
	if err := h.store.Ping(t.Context()); err == nil {
		t.Fatal("Ping after Close: no error")
	}
}

func testPing(t *testing.T, h *harness) {
	if err := h.store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// MustOpen returns the store open opens, failing t if it cannot.
func MustOpen[S any](t testing.TB, open func() (S, error)) S {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// OpenClosing is MustOpen, and closes the store when t ends, failing t if
// Close fails.
func OpenClosing[S interface{ Close() error }](t testing.TB, open func() (S, error)) S {
	t.Helper()
	s := MustOpen(t, open)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
