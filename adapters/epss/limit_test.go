package epss

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// A file past the limit once decompressed (a gzip bomb, a wrong file, an
// endless upload) is refused when the limit is reached, not after it has all
// been read, and not imported as the part that fitted.
func TestParseLimit(t *testing.T) {
	const limit = 4 << 10
	var csv bytes.Buffer
	csv.WriteString("#model_version:v1,score_date:2025-03-30\ncve,epss,percentile\n")
	for i := 0; csv.Len() <= 4*limit; i++ {
		fmt.Fprintf(&csv, "CVE-2024-%05d,0.1,0.5\n", i)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(csv.Bytes())
	zw.Close()

	for _, in := range []struct {
		name string
		data []byte
	}{{"csv", csv.Bytes()}, {"gzip", gz.Bytes()}} {
		t.Run(in.name, func(t *testing.T) {
			if _, err := parseLimit(bytes.NewReader(in.data), int64(csv.Len())); err != nil {
				t.Fatalf("at exactly the limit: %v", err)
			}
			_, err := parseLimit(bytes.NewReader(in.data), limit)
			if code := tollgate.ErrorCode(err); code != tollgate.EInvalid || err == nil || !strings.Contains(err.Error(), "larger than 64 MiB uncompressed") {
				t.Errorf("parseLimit = %v (%s); want %s, larger than 64 MiB", err, code, tollgate.EInvalid)
			}
		})
	}
}
