// Package ledger makes the decision history tamper-evident: a hash chain
// over the records a store keeps (tollgate.LedgerStore), its verification,
// and exports whose chain head is signed with Ed25519 so that anyone can
// check them offline.
//
// What is hashed, so that it can be recomputed without tollgate:
//
//	digest(record) = SHA-256( JCS(record) )
//	hash(n)        = SHA-256( hash(n-1) || digest(record n) )
//
// JCS is the JSON Canonicalization Scheme of RFC 8785 (keys sorted, no
// spaces, numbers and strings in one canonical form): the stored record
// hashes the same whichever way a database re-encodes it (PostgreSQL's
// JSONB reorders keys). hash(0), before the first record, is 32 zero bytes;
// after pruning, the chain starts at its anchor: the seq and hash of the
// last pruned record. Hashing the digest rather than the record lets an
// export leave a record out (one a filter does not select) and still prove
// the chain: it gives the record's digest instead.
package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/tollgate/tollgate"
)

// HashSize is the size of a digest and of a chain hash.
const HashSize = sha256.Size

// Genesis is hash(0): the prev_hash of the first record ever recorded.
func Genesis() []byte { return make([]byte, HashSize) }

// Digest is SHA-256 of the record's RFC 8785 canonical form.
func Digest(record []byte) ([]byte, error) {
	var sum [HashSize]byte
	err := canonical(record, func(canon []byte) { sum = sha256.Sum256(canon) })
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "canonicalise the record for the ledger: %v", err)
	}
	return sum[:], nil
}

// Link is the chain hash of a record whose digest is digest, after the
// record whose chain hash is prev.
func Link(prev, digest []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(digest)
	return h.Sum(nil)
}

// Hex is how hashes are written in exports and messages.
func Hex(b []byte) string { return hex.EncodeToString(b) }

// Break is the first place a chain does not hold.
type Break struct {
	Seq    int64  // the seq of the record at fault (or missing)
	ID     string // its decision ID, when there is a record
	Reason string
}

func (b *Break) Error() string {
	if b.Seq == 0 && b.ID == "" { // not at a record: a cooldown
		return b.Reason
	}
	if b.ID != "" {
		return fmt.Sprintf("record seq %d (decision %s): %s", b.Seq, b.ID, b.Reason)
	}
	return fmt.Sprintf("record seq %d: %s", b.Seq, b.Reason)
}

// chain checks entries one after the other.
type chain struct {
	seq  int64
	hash []byte
}

// next checks e, the entry after c, and moves c on to it; the digest of
// e's record is returned for exports.
func (c *chain) next(e tollgate.LedgerEntry) ([]byte, *Break) {
	switch {
	case e.Seq > c.seq+1:
		return nil, &Break{Seq: c.seq + 1, Reason: fmt.Sprintf(
			"missing: the chain goes from seq %d to seq %d (decision %s); the record was deleted", c.seq, e.Seq, e.ID)}
	case e.Seq != c.seq+1:
		return nil, &Break{Seq: e.Seq, ID: e.ID, Reason: fmt.Sprintf("out of order after seq %d", c.seq)}
	case !bytes.Equal(e.PrevHash, c.hash):
		return nil, &Break{Seq: e.Seq, ID: e.ID, Reason: fmt.Sprintf(
			"its prev_hash %s is not the hash of seq %d (%s): the record before it was replaced, or this one was moved",
			Hex(e.PrevHash), c.seq, Hex(c.hash))}
	}
	digest, err := Digest(e.Record)
	if err != nil {
		return nil, &Break{Seq: e.Seq, ID: e.ID, Reason: "the stored record is not valid JSON: " + err.Error()}
	}
	if !bytes.Equal(Link(c.hash, digest), e.Hash) {
		return nil, &Break{Seq: e.Seq, ID: e.ID, Reason: "the stored record does not match its hash: it was altered after it was recorded"}
	}
	c.seq, c.hash = e.Seq, e.Hash
	return digest, nil
}
