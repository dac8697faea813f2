package ledger

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tollgate/tollgate"
)

// Format names the export format, in its first line and in what is signed.
const Format = "tollgate.ledger.v1"

// An export is NDJSON, one object per line, each with a "type":
//
//	{"type":"start","format":"tollgate.ledger.v1","seq":S,"hash":H}
//	    the chain position before the first line: seq S, hash H
//	{"type":"record","seq":N,"prev_hash":…,"hash":…,"record":{…}}
//	    a record the filters select, whole
//	{"type":"link","seq":N,"digest":…,"hash":…}
//	    a record they do not select: its digest only
//	{"type":"end","seq":E,"hash":…,"records":R,"exported_at":…,"key":…,"signature":…}
//	    the chain position after the last line, signed
//	{"type":"error","message":…}
//	    the export stopped there (a broken chain, a store failure)
//
// Hashes and digests are lowercase hex; the signature is base64 (standard,
// padded) Ed25519 over SignedMessage, and key is KeyID of the public key.
type line struct {
	Type       string          `json:"type"`
	Format     string          `json:"format,omitempty"`
	Seq        int64           `json:"seq"`
	PrevHash   string          `json:"prev_hash,omitempty"`
	Digest     string          `json:"digest,omitempty"`
	Hash       string          `json:"hash,omitempty"`
	Record     json.RawMessage `json:"record,omitempty"`
	Records    *int64          `json:"records,omitempty"`
	ExportedAt string          `json:"exported_at,omitempty"`
	Key        string          `json:"key,omitempty"`
	Signature  []byte          `json:"signature,omitempty"`
	Message    string          `json:"message,omitempty"`
}

// SignedMessage is the text an export's end line signs: the format, the
// chain position the export starts after and the one it ends at, and when
// it was made, one per line.
func SignedMessage(startSeq int64, startHash string, endSeq int64, endHash, exportedAt string) []byte {
	return []byte(Format + "\n" +
		"start " + strconv.FormatInt(startSeq, 10) + " " + startHash + "\n" +
		"end " + strconv.FormatInt(endSeq, 10) + " " + endHash + "\n" +
		"exported_at " + exportedAt + "\n")
}

// ExportOptions says what to export.
type ExportOptions struct {
	// Filter selects the records written whole; the others are written as
	// links. Since also moves the start: the export begins with the first
	// record evaluated at or after it. Limit and Cursor are ignored.
	Filter tollgate.DecisionFilter
	// Through, if not 0, ends the export at that seq instead of the head.
	Through int64
	// Signer signs the end line; nil leaves it unsigned.
	Signer ed25519.PrivateKey
	// Now is the export time (time.Now when nil).
	Now func() time.Time
	// Flush, if set, is called after every page of lines is written out,
	// so that a slow client sees the stream move.
	Flush func()
	// Progress, if set, is told how far the export has got.
	Progress Progress
}

// linesPerFlush is how many lines pass between two flushes.
const linesPerFlush = 500

// Export writes the chain of s, as o says, to w, one line at a time: it
// holds one page of records in memory, never the history. It checks the
// chain as it goes: at a break it writes an error line and returns the
// Break, so that an export never carries a broken chain under a signature.
func Export(ctx context.Context, w io.Writer, s tollgate.LedgerStore, o ExportOptions) (Summary, error) {
	head, err := s.LedgerHead(ctx)
	if err != nil {
		return Summary{}, err
	}
	through := head.Seq
	if o.Through != 0 {
		through = min(o.Through, head.Seq)
	}
	from := head.AnchorSeq + 1
	if !o.Filter.Since.IsZero() {
		seq, ok, err := s.LedgerSeqSince(ctx, o.Filter.Since)
		if err != nil {
			return Summary{}, err
		}
		if !ok {
			seq = through + 1
		}
		from = max(from, min(seq, through+1))
	}
	c := chain{seq: head.AnchorSeq, hash: head.AnchorHash}
	if from-1 > head.AnchorSeq {
		// Start after the record before from, whatever its hash: the chain
		// from there on is what the export proves.
		found := false
		err := s.LedgerEntries(ctx, from-1, from-1, func(e tollgate.LedgerEntry) error {
			c, found = chain{seq: e.Seq, hash: e.Hash}, true
			return nil
		})
		if err != nil {
			return Summary{}, err
		}
		if !found {
			return Summary{}, &Break{Seq: from - 1, Reason: "missing: the record the export would start after was deleted"}
		}
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	sum := Summary{From: from, Through: through}
	lines := 0
	write := func(l line) error {
		if err := enc.Encode(l); err != nil {
			return err
		}
		if lines++; lines%linesPerFlush == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			if o.Flush != nil {
				o.Flush()
			}
		}
		return nil
	}
	start := c
	if err := write(line{Type: "start", Format: Format, Seq: c.seq, Hash: Hex(c.hash)}); err != nil {
		return sum, err
	}
	total, done := through-from+1, int64(0)
	err = s.LedgerEntries(ctx, from, through, func(e tollgate.LedgerEntry) error {
		prev := c.hash
		digest, brk := c.next(e)
		if brk != nil {
			return brk
		}
		// The filters select by the stored columns: never sign an export
		// whose selection rests on a column that is not the record's.
		if _, brk := checkColumns(e); brk != nil {
			return brk
		}
		l := line{Type: "link", Seq: e.Seq, Digest: Hex(digest), Hash: Hex(e.Hash)}
		if selects(o.Filter, e) {
			l = line{Type: "record", Seq: e.Seq, PrevHash: Hex(prev), Hash: Hex(e.Hash), Record: e.Record}
			sum.Records++
		}
		if done++; o.Progress != nil && done%progressEvery == 0 {
			o.Progress(done, total)
		}
		return write(l)
	})
	if err == nil && c.seq != through {
		err = &Break{Seq: c.seq + 1, Reason: fmt.Sprintf("missing: the export should end at seq %d but the last record is seq %d", through, c.seq)}
	}
	if err != nil {
		if _, ok := asBreak(err); ok || ctx.Err() == nil {
			// Tell the reader, who may not see our exit status.
			write(line{Type: "error", Message: err.Error()})
			bw.Flush()
		}
		return sum, err
	}
	sum.Hash = c.hash

	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	end := line{Type: "end", Seq: c.seq, Hash: Hex(c.hash), Records: &sum.Records,
		ExportedAt: now().UTC().Format(time.RFC3339Nano)}
	if o.Signer != nil {
		end.Key = KeyID(o.Signer.Public().(ed25519.PublicKey))
		end.Signature = ed25519.Sign(o.Signer, SignedMessage(start.seq, Hex(start.hash), end.Seq, end.Hash, end.ExportedAt))
	}
	if err := write(end); err != nil {
		return sum, err
	}
	if err := bw.Flush(); err != nil {
		return sum, err
	}
	if o.Progress != nil && total >= progressEvery {
		o.Progress(done, total)
	}
	return sum, nil
}

// selects reports whether f selects e, as GET /v1/decisions filters.
func selects(f tollgate.DecisionFilter, e tollgate.LedgerEntry) bool {
	switch {
	case f.Project != "" && e.Project != f.Project,
		f.Pipeline != "" && e.Pipeline != f.Pipeline,
		f.Branch != "" && e.Branch != f.Branch,
		f.Status != "" && e.Status != f.Status,
		!f.Since.IsZero() && e.EvaluatedAt.Before(f.Since),
		!f.Until.IsZero() && !e.EvaluatedAt.Before(f.Until):
		return false
	}
	return true
}
