package ledger

import (
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/gowebpki/jcs"
)

// BenchmarkDigest is what chaining adds to each recorded decision, in its
// caller's goroutine: RFC 8785 canonicalisation and SHA-256 of a record
// (the chain hash itself is one more SHA-256 of 64 bytes), for a refusal
// and for a release with a scan; "reference" is the same digest through
// jcs.Transform, which Digest used before canonical.
//
//	go test -run '^$' -bench Digest -benchmem ./adapters/ledger/
func BenchmarkDigest(b *testing.B) {
	for _, rc := range []struct {
		name string
		scan bool
	}{{"refusal", false}, {"scan", true}} {
		data, err := json.Marshal(sampleRecord(rc.scan))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(rc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Digest(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(rc.name+"/reference", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				canon, err := jcs.Transform(data)
				if err != nil {
					b.Fatal(err)
				}
				sha256.Sum256(canon)
			}
		})
	}
}
