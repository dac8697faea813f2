package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tollgate/tollgate"
)

// ExportSummary is what VerifyExport found in a sound export.
type ExportSummary struct {
	Format           string // Format, or FormatV1 for an export made before it
	StartSeq, EndSeq int64
	EndHash          []byte
	Filter           Filter // the filters it states (none in a v1 export)
	Records, Links   int64
	ExportedAt       string
	Key              string // KeyID of the key that signed it; empty if unsigned
}

// VerifyExport reads an export from r and checks it: the format, that each
// line follows the one before it in the chain, that every record hashes to
// its line's hash and is one the stated filters select, that the end line
// closes the chain with the counts and selection digest of the lines
// before it, and, with pub, that the end line is signed by pub: the
// signature covers the filters, the counts and which seqs are whole
// records (SignedMessage), so that a record turned into a link, with the
// counts adjusted, fails. Without pub the signature is not checked (an
// unsigned export proves only its own consistency).
//
// A tollgate.ledger.v1 export (FormatV1, made before the signature covered
// the selection) is still checked, chain and signature, for the archives
// made then: its summary says so, and its signature proves the chain's
// ends only, not which records were left out as links.
//
// It returns the first break; the error is for a reader that failed.
func VerifyExport(r io.Reader, pub ed25519.PublicKey) (ExportSummary, *Break, error) {
	dec := json.NewDecoder(r)
	var sum ExportSummary
	next := func() (line, *Break, error) {
		// Each line is read exactly (tollgate.CheckJSON): a key twice, or
		// in another case, would let encoding/json read one value where
		// another JSON reader, an auditor's jq, reads another.
		var raw json.RawMessage
		var l line
		err := dec.Decode(&raw)
		if err == nil {
			if err = tollgate.CheckJSON(raw, &l); err != nil {
				return l, &Break{Seq: sum.EndSeq + 1, Reason: "a line that JSON readers could read differently: " + err.Error()}, nil
			}
			err = json.Unmarshal(raw, &l)
		}
		switch {
		case errors.Is(err, io.EOF):
			return l, &Break{Seq: sum.EndSeq + 1, Reason: "the export ends without an end line: it was cut short"}, nil
		case err != nil:
			var syntax *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if errors.As(err, &syntax) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) {
				return l, &Break{Seq: sum.EndSeq + 1, Reason: "not a line of a tollgate ledger export: " + err.Error()}, nil
			}
			return l, nil, err
		}
		return l, nil, nil
	}

	first, brk, err := next()
	if brk != nil || err != nil {
		return sum, brk, err
	}
	startHash, ok := decodeHash(first.Hash)
	if first.Type != "start" || (first.Format != Format && first.Format != FormatV1) || !ok {
		return sum, &Break{Reason: fmt.Sprintf("not a tollgate ledger export: the first line must be {\"type\":\"start\",\"format\":%q,…}", Format)}, nil
	}
	sum.Format = first.Format
	var filter tollgate.DecisionFilter
	if first.Format == Format {
		dec := json.NewDecoder(bytes.NewReader(first.Filter))
		dec.DisallowUnknownFields()
		err := dec.Decode(&sum.Filter)
		if err == nil {
			filter, err = sum.Filter.decisionFilter()
		}
		if err != nil {
			return sum, &Break{Reason: fmt.Sprintf("the start line's filter is not one tollgate writes: %v", err)}, nil
		}
	}
	c := chain{seq: first.Seq, hash: startHash}
	sel := newSelection()
	sum.StartSeq, sum.EndSeq, sum.EndHash = first.Seq, first.Seq, startHash
	for {
		l, brk, err := next()
		if brk != nil || err != nil {
			return sum, brk, err
		}
		switch l.Type {
		case "record":
			prev, okPrev := decodeHash(l.PrevHash)
			hash, okHash := decodeHash(l.Hash)
			if !okPrev || !okHash || len(l.Record) == 0 {
				return sum, &Break{Seq: l.Seq, Reason: "a record line needs prev_hash, hash (hex SHA-256) and record"}, nil
			}
			if _, brk := c.next(tollgate.LedgerEntry{Seq: l.Seq, PrevHash: prev, Hash: hash, Record: l.Record, ID: recordID(l.Record)}); brk != nil {
				return sum, brk, nil
			}
			if brk := selected(filter, l); brk != nil {
				return sum, brk, nil
			}
			sum.Records++
			sel.add(l.Seq)
		case "link":
			digest, okDigest := decodeHash(l.Digest)
			hash, okHash := decodeHash(l.Hash)
			switch {
			case !okDigest || !okHash:
				return sum, &Break{Seq: l.Seq, Reason: "a link line needs digest and hash (hex SHA-256)"}, nil
			case l.Seq != c.seq+1:
				return sum, &Break{Seq: c.seq + 1, Reason: fmt.Sprintf("missing: the export goes from seq %d to seq %d", c.seq, l.Seq)}, nil
			case !bytes.Equal(Link(c.hash, digest), hash):
				return sum, &Break{Seq: l.Seq, Reason: "the link's hash does not follow from the hash before it and its digest"}, nil
			}
			c.seq, c.hash = l.Seq, hash
			sum.Links++
		case "end":
			if brk := checkEnd(&sum, l, c, first, sel.hex(), pub); brk != nil {
				return sum, brk, nil
			}
			brk, err := nothingAfter(dec, c.seq)
			return sum, brk, err
		case "error":
			return sum, &Break{Seq: c.seq + 1, Reason: "the export stopped: " + l.Message}, nil
		default:
			return sum, &Break{Seq: c.seq + 1, Reason: fmt.Sprintf("unknown line type %q", l.Type)}, nil
		}
		sum.EndSeq, sum.EndHash = c.seq, c.hash
	}
}

// selected checks that the record of line l is one filter selects, as
// the export's start line states it: an export cannot pass off a record
// its filters would not have written whole.
func selected(filter tollgate.DecisionFilter, l line) *Break {
	rec, err := decodeServed(l.Record)
	if err != nil {
		return &Break{Seq: l.Seq, Reason: "the record is not a decision record: " + err.Error()}
	}
	e := tollgate.LedgerEntry{Project: rec.Decision.Project, Pipeline: rec.Decision.Pipeline, Branch: rec.Decision.Branch,
		Status: rec.Decision.Status, EvaluatedAt: rec.Decision.EvaluatedAt}
	if !selects(filter, e) {
		return &Break{Seq: l.Seq, ID: rec.Decision.ID, Reason: "the export's filters do not select this record, yet it is written whole"}
	}
	return nil
}

// checkEnd checks the end line l, after the chain position c, with the
// selection digest of the records before it.
func checkEnd(sum *ExportSummary, l line, c chain, start line, selection string, pub ed25519.PublicKey) *Break {
	hash, ok := decodeHash(l.Hash)
	switch {
	case !ok || l.Seq != c.seq || !bytes.Equal(hash, c.hash):
		return &Break{Seq: c.seq, Reason: fmt.Sprintf("the end line (seq %d, hash %s) is not where the chain ends (seq %d, hash %s)", l.Seq, l.Hash, c.seq, Hex(c.hash))}
	case l.Records == nil || *l.Records != sum.Records:
		return &Break{Seq: c.seq, Reason: fmt.Sprintf("the end line counts %v records; the export holds %d", l.Records, sum.Records)}
	case sum.Format == Format && (l.Links == nil || *l.Links != sum.Links):
		return &Break{Seq: c.seq, Reason: fmt.Sprintf("the end line counts %v links; the export holds %d", l.Links, sum.Links)}
	case sum.Format == Format && l.Selection != selection:
		return &Break{Seq: c.seq, Reason: fmt.Sprintf("the end line's selection %q is not the digest of the seqs written whole (%s)", l.Selection, selection)}
	}
	sum.ExportedAt = l.ExportedAt
	if pub == nil {
		return nil
	}
	switch {
	case len(l.Signature) == 0:
		return &Break{Seq: c.seq, Reason: "the export is not signed: export from a server started with --ledger-signing-key (or pass it to tollgate ledger export)"}
	case l.Key != KeyID(pub):
		return &Break{Seq: c.seq, Reason: fmt.Sprintf("the export was signed by key %s, not by the key given (%s)", l.Key, KeyID(pub))}
	case !ed25519.Verify(pub, signedBy(sum, start, l), l.Signature):
		return &Break{Seq: c.seq, Reason: "the signature of the end line is not valid: the export was altered"}
	}
	sum.Key = l.Key
	return nil
}

// signedBy is the message the end line l of an export signs.
func signedBy(sum *ExportSummary, start, l line) []byte {
	if sum.Format == FormatV1 {
		return signedMessageV1(start.Seq, start.Hash, l.Seq, l.Hash, l.ExportedAt)
	}
	return SignedMessage(Signed{StartSeq: start.Seq, StartHash: start.Hash, EndSeq: l.Seq, EndHash: l.Hash,
		Filter: sum.Filter, Records: sum.Records, Links: sum.Links, Selection: l.Selection, ExportedAt: l.ExportedAt})
}

// nothingAfter checks that the export ends with its end line: lines after
// it are outside the signature and the counts, and a reader that takes
// the file as a whole would take them for part of the export. Blank space
// may follow. The error is for a reader that failed.
func nothingAfter(dec *json.Decoder, end int64) (*Break, error) {
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err == nil, errors.As(err, new(*json.SyntaxError)), errors.Is(err, io.ErrUnexpectedEOF):
		return &Break{Seq: end, Reason: "the export goes on after the end line: what follows it is not covered by its counts or signature"}, nil
	default:
		return nil, err
	}
}

func decodeHash(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	return b, err == nil && len(b) == HashSize
}

// recordID is the decision ID of a record, for messages; "" if it has none.
func recordID(record []byte) string {
	var r struct {
		Decision struct {
			ID string `json:"decision_id"`
		} `json:"decision"`
	}
	json.Unmarshal(record, &r)
	return r.Decision.ID
}
