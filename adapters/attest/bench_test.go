package attest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate"
)

// BenchmarkSign is what a server started with --attestation-signing-key
// adds to each evaluate reply: encode the decision, its digest and the
// record's ledger digest (RFC 8785 and SHA-256 each), the statement, and
// an Ed25519 signature over its DSSE PAE.
//
//	go test -run '^$' -bench . ./adapters/attest/
func BenchmarkSign(b *testing.B) {
	_, s := newKey(b)
	rec := record(tollgate.Refused)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is `tollgate verify-decision`'s check, for scale.
func BenchmarkVerify(b *testing.B) {
	pub, s := newKey(b)
	env, err := s.Sign(context.Background(), record(tollgate.Refused))
	if err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, data, pub); err != nil {
			b.Fatal(err)
		}
	}
}
