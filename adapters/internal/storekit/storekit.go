// Package storekit is the decision store, written once for both dialects:
// Core (core.go) implements every call of the store interfaces on a
// Querier, through the Dialect each of adapters/sqlite and
// adapters/postgres gives it (querier.go says how the two are bridged and
// how a new table is added). Beside it: the per-key lock of the cooldown,
// the history cursor and page size, time and record encoding, and the
// checks and transitions of controls (one Control.Transition for both
// stores).
package storekit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate"
)

// KeyLocks serialises the Decide calls of one process per cooldown key,
// while different keys run in parallel. Entries are reference counted so
// that the map holds only the keys in use, not every key ever seen.
//
// Written by hand: the standard library has no keyed lock, and a lock a
// waiting request can give up on when its context ends (a channel, not a
// sync.Mutex) is what a server needs; the libraries that do this are small
// and less kept than these thirty lines.
type KeyLocks struct {
	mu    sync.Mutex
	locks map[tollgate.CooldownKey]*keyLock
}

type keyLock struct {
	held chan struct{} // a token in the channel: locked
	refs int           // holders and waiters; guarded by KeyLocks.mu
}

// Await waits for the answer of a write handed to a store's writer. If ctx
// ends first, it returns ctx.Err() at once and passes the key lock *held,
// if any, to a goroutine that releases it once the answer comes: the write
// is settled (committed whole or not at all) before the next Decide for the
// key reads the cooldown.
func Await(ctx context.Context, done <-chan error, held *func()) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if held != nil && *held != nil {
			unlock := *held
			*held = nil
			go func() {
				<-done
				unlock()
			}()
		}
		return ctx.Err()
	}
}

// NewKeyLocks returns an empty set of key locks.
func NewKeyLocks() *KeyLocks {
	return &KeyLocks{locks: make(map[tollgate.CooldownKey]*keyLock)}
}

// Lock waits until key is free, or ctx ends, and returns the function that
// frees it again. That function must be called exactly once.
func (k *KeyLocks) Lock(ctx context.Context, key tollgate.CooldownKey) (unlock func(), err error) {
	k.mu.Lock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.held <- struct{}{}:
		return func() {
			<-l.held
			k.release(key, l)
		}, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *KeyLocks) release(key tollgate.CooldownKey, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}

// Len reports how many keys are locked or waited for.
func (k *KeyLocks) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}

// Cursors are opaque to clients: base64 of a version tag and the last ID of
// the page. The tag lets a later version change the shape and reject (not
// misread) an old cursor, and makes a made-up string very unlikely to pass.
const cursorTag = "d1:"

// EncodeCursor is the cursor of the page after the one ending at lastID.
func EncodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorTag + lastID))
}

// DecodeCursor returns the last ID of the previous page, or an EInvalid
// error for anything that is not a cursor these stores made.
func DecodeCursor(cursor string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	id, ok := strings.CutPrefix(string(raw), cursorTag)
	if err != nil || !ok || id == "" || strings.ContainsRune(id, 0) {
		return "", tollgate.Errorf(tollgate.EInvalid,
			"invalid cursor %q: pass the next_cursor of the previous page unchanged, or no cursor for the first page", cursor)
	}
	return id, nil
}

// PageSize is the page size for a filter's Limit: the default when unset,
// capped at the maximum.
func PageSize(limit int) int {
	switch {
	case limit <= 0:
		return tollgate.DefaultPageSize
	case limit > tollgate.MaxPageSize:
		return tollgate.MaxPageSize
	}
	return limit
}

// UnixNano is t in unix nanoseconds, clamped to what int64 holds (years 1678
// to 2262), so that a far-off since or until still filters correctly.
func UnixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// EncodeRecord checks what both stores need of a record (an ID, a status,
// an evaluation time int64 nanoseconds can hold) and encodes it as JSON.
// A record that fails is a bug of the caller: EInternal.
func EncodeRecord(rec tollgate.Record) ([]byte, error) {
	d := rec.Decision
	switch {
	case d.ID == "":
		return nil, tollgate.Errorf(tollgate.EInternal, "record decision: the decision has no ID")
	case d.Status != tollgate.Accepted && d.Status != tollgate.Refused:
		return nil, tollgate.Errorf(tollgate.EInternal, "record decision %s: status %q is neither %q nor %q", d.ID, d.Status, tollgate.Accepted, tollgate.Refused)
	case d.EvaluatedAt.IsZero(),
		d.EvaluatedAt.Before(time.Unix(0, math.MinInt64)),
		d.EvaluatedAt.After(time.Unix(0, math.MaxInt64)):
		return nil, tollgate.Errorf(tollgate.EInternal, "record decision %s: evaluation time %s is missing or out of range", d.ID, d.EvaluatedAt)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInternal, "record decision %s: encode: %v", d.ID, err)
	}
	return data, nil
}

// DecodeRecord decodes the stored record of decision id.
func DecodeRecord(id string, data []byte) (tollgate.Record, error) {
	var rec tollgate.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return tollgate.Record{}, tollgate.Errorf(tollgate.EInternal, "decision %s: stored record is not valid JSON: %v", id, err)
	}
	return rec, nil
}

// ServedRecord decodes the record stored in the row whose id column is id,
// found by the filter f, and checks that the record itself (what the
// ledger hashes) is decision id and is selected by f. The columns a query
// matched are copies of the record's fields; one edited around tollgate
// would otherwise make the API list a refused decision under
// status=accepted, or return another decision than the one asked for.
// A mismatch is EInternal: nothing is served from a store that disagrees
// with its ledger, and `tollgate ledger verify` names the row. (A row a
// tampered column hides from a filter cannot be seen here: verify finds
// that.)
func ServedRecord(id string, data []byte, f tollgate.DecisionFilter) (tollgate.Record, error) {
	rec, err := DecodeRecord(id, data)
	if err != nil {
		return rec, err
	}
	d := rec.Decision
	var column string
	switch {
	case d.ID != id:
		column = "id"
	case f.Project != "" && d.Project != f.Project:
		column = "project"
	case f.Pipeline != "" && d.Pipeline != f.Pipeline:
		column = "pipeline"
	case f.Branch != "" && d.Branch != f.Branch:
		column = "branch"
	case f.Status != "" && d.Status != f.Status:
		column = "status"
	case !f.Since.IsZero() && d.EvaluatedAt.Before(f.Since),
		!f.Until.IsZero() && !d.EvaluatedAt.Before(f.Until):
		column = "evaluated_at"
	default:
		return rec, nil
	}
	return tollgate.Record{}, tollgate.Errorf(tollgate.EInternal,
		"decision %s: the stored %s column does not match the recorded decision (%s): the store was edited around tollgate; run `tollgate ledger verify`",
		id, column, d.ID)
}

// TokenColumns are the columns of the tokens table, in the order of
// TokenRow.Dest and TokenArgs.
const TokenColumns = "id, name, scopes, secret_hash, created_at, expires_at, revoked_at"

// TokenRow is one row of the tokens table as both stores scan it.
type TokenRow struct {
	ID, Name, Scopes     string
	Hash                 []byte
	CreatedAt            int64
	ExpiresAt, RevokedAt *int64 // NULL: never, not revoked
}

// Dest is the scan destination of TokenColumns.
func (r *TokenRow) Dest() []any {
	return []any{&r.ID, &r.Name, &r.Scopes, &r.Hash, &r.CreatedAt, &r.ExpiresAt, &r.RevokedAt}
}

// Token decodes the row.
func (r *TokenRow) Token() (tollgate.Token, error) {
	scopes, err := tollgate.ParseScopes(r.Scopes)
	if err != nil {
		return tollgate.Token{}, tollgate.Errorf(tollgate.EInternal, "token %s: stored scopes %q: %v", r.ID, r.Scopes, err)
	}
	t := tollgate.Token{ID: r.ID, Name: r.Name, Scopes: scopes, CreatedAt: time.Unix(0, r.CreatedAt).UTC()}
	if r.ExpiresAt != nil {
		t.ExpiresAt = time.Unix(0, *r.ExpiresAt).UTC()
	}
	if r.RevokedAt != nil {
		t.RevokedAt = time.Unix(0, *r.RevokedAt).UTC()
	}
	return t, nil
}

// TokenArgs checks a new token and returns the values of TokenColumns.
// A token that fails is a bug of the caller (tollgate.NewToken makes good
// ones): EInternal, but for a name or scopes a user typed: EInvalid.
func TokenArgs(t tollgate.Token, hash []byte) ([]any, error) {
	if err := tollgate.CheckTokenName(t.Name); err != nil {
		return nil, err
	}
	scopes, err := tollgate.CheckScopes(t.Scopes)
	if err != nil {
		return nil, err
	}
	if t.ID == "" || len(hash) != 32 || t.CreatedAt.IsZero() || !t.RevokedAt.IsZero() {
		return nil, tollgate.Errorf(tollgate.EInternal, "create token %q: not a token made by tollgate.NewToken", t.Name)
	}
	var expires *int64
	if !t.ExpiresAt.IsZero() {
		e := UnixNano(t.ExpiresAt)
		expires = &e
	}
	return []any{t.ID, t.Name, tollgate.FormatScopes(scopes, ","), hash, UnixNano(t.CreatedAt), expires, nil}, nil
}
