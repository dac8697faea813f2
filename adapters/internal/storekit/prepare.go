package storekit

import (
	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// Prepared is a record ready for either store's SQL: checked and encoded
// once, in the caller's goroutine, so that the writer does nothing but SQL.
type Prepared struct {
	Rec      tollgate.Record
	At       int64  // Rec.Decision.EvaluatedAt in unix nanoseconds
	Data     string // Rec as JSON, a string for SQLite's STRICT TEXT column
	Baseline string // the drift baseline Rec sets, as JSON; "" when it sets none
	Digest   []byte // Rec's ledger digest
	Key      *tollgate.CooldownKey
	Accept   bool // starts Key's cooldown
}

// Prepare checks and encodes rec, decided under key (nil: no cooldown).
// The key is written into the record (Record.CooldownKey), so that the
// ledger covers which cooldown each accepted record started.
func Prepare(rec tollgate.Record, key *tollgate.CooldownKey) (Prepared, error) {
	rec.CooldownKey = nil
	if key != nil {
		k := *key
		rec.CooldownKey = &k
	}
	data, err := EncodeRecord(rec)
	if err != nil {
		return Prepared{}, err
	}
	baseline, err := BaselineOf(rec)
	if err != nil {
		return Prepared{}, err
	}
	digest, err := ledger.Digest(data)
	if err != nil {
		return Prepared{}, err
	}
	d := rec.Decision
	return Prepared{Rec: rec, At: d.EvaluatedAt.UnixNano(), Data: string(data), Baseline: string(baseline), Digest: digest,
		Key: key, Accept: key != nil && d.Status == tollgate.Accepted}, nil
}
