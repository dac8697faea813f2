package ledger

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// BenchmarkDigest is what chaining adds to each recorded decision, in its
// caller's goroutine: RFC 8785 canonicalisation and SHA-256 of a typical
// record (the chain hash itself is one more SHA-256 of 64 bytes).
//
//	go test -run '^$' -bench Digest ./adapters/ledger/
func BenchmarkDigest(b *testing.B) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	rec := tollgate.Record{
		Decision: tollgate.Decision{ID: "019ab1c2-3d4e-7f00-8a1b-2c3d4e5f6a7b", Status: tollgate.Refused,
			Reasons:  []tollgate.Reason{{Code: tollgate.CodeCooldown, Message: "an accepted deployment less than 30 minutes ago"}},
			Warnings: []tollgate.Reason{}, Project: "service-api", Pipeline: "deploy-prod", Branch: "main",
			Environment: "production", BundleRevision: "sha256:8d889ad99e87ae90", EvaluatedAt: at},
		Request: tollgate.Request{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod",
			Metadata: tollgate.Metadata{Initiator: "jane", RunID: "run-42", Environment: "production"}},
		Context:  tollgate.Context{Now: at},
		Identity: "ci",
	}
	data, err := json.Marshal(rec)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Digest(data); err != nil {
			b.Fatal(err)
		}
	}
}
