package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate"
)

// Progress is told, now and then, how many of total records a long walk
// has checked.
type Progress func(done, total int64)

// progressEvery is how many records pass between two calls of Progress.
const progressEvery = 10000

// Summary is what a verification or an export went through.
type Summary struct {
	From, Through int64  // the seqs walked
	Records       int64  // records checked (or exported in full)
	Hash          []byte // the chain hash at Through
}

// Verify walks the whole chain of s, from its anchor to its head, and
// returns the first break, or nil if the chain holds. Beyond the chain
// itself it checks what the store serves or decides with from outside the
// record: every column copied from a record (checkColumns), and the
// cooldowns and drift baselines, which must be what the accepted records
// imply (derived). The error is for a store that could not be read.
// Verify only reads.
func Verify(ctx context.Context, s tollgate.LedgerStore, progress Progress) (Summary, *Break, error) {
	// The derived state first, then the head: every record it reflects
	// (through its asOf) is in the walk.
	rows, brk, err := readDerived(ctx, s)
	if brk != nil || err != nil {
		return Summary{}, brk, err
	}
	head, err := s.LedgerHead(ctx)
	if err != nil {
		return Summary{}, nil, err
	}
	cds := newDerived(cooldowns, rows.cooldowns, rows.cooldownsAsOf, head.AnchorSeq)
	bls := newDerived(baselines, rows.baselines, rows.baselinesAsOf, head.AnchorSeq)
	sum := Summary{From: head.AnchorSeq + 1, Through: head.Seq, Hash: head.AnchorHash}
	c := chain{seq: head.AnchorSeq, hash: head.AnchorHash}
	total := head.Seq - head.AnchorSeq
	err = s.LedgerEntries(ctx, head.AnchorSeq+1, head.Seq, func(e tollgate.LedgerEntry) error {
		if _, brk = c.next(e); brk != nil {
			return brk
		}
		var rec served
		if rec, brk = checkColumns(e); brk != nil {
			return brk
		}
		if brk = cds.record(e, rec); brk != nil {
			return brk
		}
		if brk = bls.record(e, rec); brk != nil {
			return brk
		}
		sum.Records++
		if progress != nil && sum.Records%progressEvery == 0 {
			progress(sum.Records, total)
		}
		return nil
	})
	sum.Hash = c.hash
	switch {
	case brk != nil:
		return sum, brk, nil
	case err != nil:
		return sum, nil, err
	case c.seq != head.Seq:
		return sum, &Break{Seq: c.seq + 1, Reason: fmt.Sprintf(
			"missing: the chain head is seq %d but the last record is seq %d; the records after it were deleted", head.Seq, c.seq)}, nil
	case !bytes.Equal(c.hash, head.Hash):
		return sum, &Break{Seq: c.seq, Reason: fmt.Sprintf(
			"the chain head's hash %s is not the last record's %s: the head was altered", Hex(head.Hash), Hex(c.hash))}, nil
	case head.Unchained > 0:
		return sum, &Break{Seq: head.Seq, Reason: fmt.Sprintf(
			"%d records have no place in the chain (no seq, or one outside seq %d to %d): they were written around tollgate", head.Unchained, head.AnchorSeq+1, head.Seq)}, nil
	}
	if brk := cds.finish(); brk != nil {
		return sum, brk, nil
	}
	if brk := bls.finish(); brk != nil {
		return sum, brk, nil
	}
	if progress != nil && total >= progressEvery {
		progress(sum.Records, total)
	}
	return sum, nil, nil
}

// asBreak reports whether err is a Break.
func asBreak(err error) (*Break, bool) {
	var b *Break
	ok := errors.As(err, &b)
	return b, ok
}

// Against checks the chain of s against an export that verified (sum): a
// chain rewritten as a whole, and re-hashed from its start, holds on its
// own; it cannot match what an export signed before the rewrite says the
// chain was at the export's end. The store must still hold that position:
// the record at the export's end seq, or its anchor there, with the same
// hash. The error is for a store that could not be read, or one pruned past
// the export's end, which can no longer be compared with it.
func Against(ctx context.Context, s tollgate.LedgerStore, sum ExportSummary) (*Break, error) {
	head, err := s.LedgerHead(ctx)
	if err != nil {
		return nil, err
	}
	end := sum.EndSeq
	switch {
	case end > head.Seq:
		return &Break{Seq: head.Seq + 1, Reason: fmt.Sprintf(
			"missing: the export ends at seq %d, the store's chain at seq %d: records it held were removed", end, head.Seq)}, nil
	case end < head.AnchorSeq:
		return nil, fmt.Errorf("the store was pruned past the export's end (seq %d, anchor seq %d): compare with a later export, or with the archive that ends at the anchor", end, head.AnchorSeq)
	case end == head.AnchorSeq:
		if !bytes.Equal(head.AnchorHash, sum.EndHash) {
			return &Break{Seq: end, Reason: fmt.Sprintf(
				"the store's chain starts after seq %d with hash %s, but the export says the chain had hash %s there: the chain was rewritten",
				end, Hex(head.AnchorHash), Hex(sum.EndHash))}, nil
		}
		return nil, nil
	}
	var brk *Break
	found := false
	err = s.LedgerEntries(ctx, end, end, func(e tollgate.LedgerEntry) error {
		found = true
		if !bytes.Equal(e.Hash, sum.EndHash) {
			brk = &Break{Seq: end, ID: e.ID, Reason: fmt.Sprintf(
				"the store's chain hash here is %s, but the export says %s: the chain was rewritten since the export",
				Hex(e.Hash), Hex(sum.EndHash))}
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return &Break{Seq: end, Reason: "missing: the store does not hold the record the export ends with"}, nil
	}
	return brk, nil
}
