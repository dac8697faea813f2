package tollgate

import (
	"os"
	"testing"
)

// BenchmarkCheckJSON is the exactness pre-pass alone, which DecodeStrict
// adds to encoding/json's decoding (BenchmarkDecodeStrict compares both).
func BenchmarkCheckJSON(b *testing.B) {
	report, err := os.ReadFile("adapters/scans/testdata/grype-image.json")
	if err != nil {
		b.Fatal(err)
	}
	payload := `{"repository":"org/service-api","branch":"main","pipeline":"deploy-prod",
 "metadata":{"initiator":"github-actions","run_id":"123456789","environment":"production"}}`
	var v Request
	for _, in := range []struct{ name, data string }{{"payload", payload}, {"grype-report", string(report)}} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				if err := checkJSON([]byte(in.data), &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
