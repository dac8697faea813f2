package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/tollgate/tollgate"
)

// Format names the export format, in its first line and in what is signed.
// FormatV1 is the format before the signature covered the filters and the
// selection: still verified, for archives made then (see VerifyExport).
const (
	Format   = "tollgate.ledger.v2"
	FormatV1 = "tollgate.ledger.v1"
)

// An export is NDJSON, one object per line, each with a "type":
//
//	{"type":"start","format":"tollgate.ledger.v2","seq":S,"hash":H,"filter":{…}}
//	    the chain position before the first line: seq S, hash H; and the
//	    filters that chose the records written whole
//	{"type":"record","seq":N,"prev_hash":…,"hash":…,"record":{…}}
//	    a record the filters select, whole
//	{"type":"link","seq":N,"digest":…,"hash":…}
//	    a record they do not select: its digest only
//	{"type":"end","seq":E,"hash":…,"records":R,"links":L,"selection":…,"exported_at":…,"key":…,"signature":…}
//	    the chain position after the last line, the counts, the selection
//	    digest (see selection), signed
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
	Filter     json.RawMessage `json:"filter,omitempty"`
	Record     json.RawMessage `json:"record,omitempty"`
	Records    *int64          `json:"records,omitempty"`
	Links      *int64          `json:"links,omitempty"`
	Selection  string          `json:"selection,omitempty"`
	ExportedAt string          `json:"exported_at,omitempty"`
	Key        string          `json:"key,omitempty"`
	Signature  []byte          `json:"signature,omitempty"`
	Message    string          `json:"message,omitempty"`
}

// Filter is an export's filters as its start line carries them and its
// signature covers them: those of GET /v1/decisions, times in RFC 3339
// (UTC, nanoseconds as needed), absent when not set. Its JSON, with the
// fields in this order, is what is signed.
type Filter struct {
	Project  string `json:"project,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Status   string `json:"status,omitempty"`
	Since    string `json:"since,omitempty"`
	Until    string `json:"until,omitempty"`
}

// exportFilter is f as an export states it.
func exportFilter(f tollgate.DecisionFilter) Filter {
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return Filter{Project: f.Project, Pipeline: f.Pipeline, Branch: f.Branch, Status: string(f.Status), Since: stamp(f.Since), Until: stamp(f.Until)}
}

// decisionFilter is the filter an export states, to check its records by.
func (f Filter) decisionFilter() (tollgate.DecisionFilter, error) {
	df := tollgate.DecisionFilter{Project: f.Project, Pipeline: f.Pipeline, Branch: f.Branch, Status: tollgate.Status(f.Status)}
	if df.Status != "" && df.Status != tollgate.Accepted && df.Status != tollgate.Refused {
		return df, fmt.Errorf("status %q is neither accepted nor refused", f.Status)
	}
	for _, t := range []struct {
		name, value string
		dst         *time.Time
	}{{"since", f.Since, &df.Since}, {"until", f.Until, &df.Until}} {
		if t.value == "" {
			continue
		}
		parsed, err := time.Parse(time.RFC3339Nano, t.value)
		if err != nil {
			return df, fmt.Errorf("%s %q is not an RFC 3339 time", t.name, t.value)
		}
		*t.dst = parsed
	}
	return df, nil
}

// selection is the digest of which records an export carries whole: the
// SHA-256 of their seqs in decimal, in order, each followed by a newline
// (`jq -r 'select(.type=="record").seq' export.ndjson | sha256sum`). With
// the counts, the signature over it says which seqs are records and which
// are links: turning a record into a link changes it.
type selection struct{ h hash.Hash }

func newSelection() selection { return selection{sha256.New()} }

func (s selection) add(seq int64) {
	s.h.Write(strconv.AppendInt(nil, seq, 10))
	s.h.Write([]byte{'\n'})
}

func (s selection) hex() string { return Hex(s.h.Sum(nil)) }

// Signed is what an export's signature covers.
type Signed struct {
	StartSeq       int64
	StartHash      string
	EndSeq         int64
	EndHash        string
	Filter         Filter
	Records, Links int64
	Selection      string
	ExportedAt     string
}

// SignedMessage is the text an export's end line signs, one item a line:
//
//	tollgate.ledger.v2
//	start <seq> <hash>
//	end <seq> <hash>
//	filter <the start line's filter object, as Filter encodes it>
//	records <R>
//	links <L>
//	selection <hex>
//	exported_at <time>
func SignedMessage(s Signed) []byte {
	filter, _ := json.Marshal(s.Filter) // strings only: cannot fail
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nstart %d %s\nend %d %s\nfilter %s\nrecords %d\nlinks %d\nselection %s\nexported_at %s\n",
		Format, s.StartSeq, s.StartHash, s.EndSeq, s.EndHash, filter, s.Records, s.Links, s.Selection, s.ExportedAt)
	return b.Bytes()
}

// signedMessageV1 is what a tollgate.ledger.v1 export signed: its ends
// and time only.
func signedMessageV1(startSeq int64, startHash string, endSeq int64, endHash, exportedAt string) []byte {
	return []byte(FormatV1 + "\n" +
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
	filter := exportFilter(o.Filter)
	filterJSON, err := json.Marshal(filter)
	if err != nil {
		return sum, err
	}
	if err := write(line{Type: "start", Format: Format, Seq: c.seq, Hash: Hex(c.hash), Filter: filterJSON}); err != nil {
		return sum, err
	}
	sel := newSelection()
	var links int64
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
			sel.add(e.Seq)
		} else {
			links++
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
	end := line{Type: "end", Seq: c.seq, Hash: Hex(c.hash), Records: &sum.Records, Links: &links,
		Selection: sel.hex(), ExportedAt: now().UTC().Format(time.RFC3339Nano)}
	if o.Signer != nil {
		end.Key = KeyID(o.Signer.Public().(ed25519.PublicKey))
		end.Signature = ed25519.Sign(o.Signer, SignedMessage(Signed{
			StartSeq: start.seq, StartHash: Hex(start.hash), EndSeq: end.Seq, EndHash: end.Hash,
			Filter: filter, Records: sum.Records, Links: links, Selection: end.Selection, ExportedAt: end.ExportedAt}))
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
