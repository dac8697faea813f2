package ledger

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// TestHashIsTheDocumentedRecipe pins what is hashed, as the package comment
// and the README give it to auditors: SHA-256 of the RFC 8785 form, then
// SHA-256 of the previous hash and that digest.
func TestHashIsTheDocumentedRecipe(t *testing.T) {
	stored := []byte(`{ "b": 1.0, "a": "\u00e9\u0041", "c": [true, null], "d": 1e-7 }`)
	canonical := `{"a":"éA","b":1,"c":[true,null],"d":1e-7}`
	digest, err := Digest(stored)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(canonical))
	if !bytes.Equal(digest, want[:]) {
		t.Fatalf("Digest = %x; want SHA-256 of %s = %x", digest, canonical, want)
	}
	prev := bytes.Repeat([]byte{0xab}, HashSize)
	link := sha256.Sum256(append(append([]byte{}, prev...), digest...))
	if got := Link(prev, digest); !bytes.Equal(got, link[:]) {
		t.Fatalf("Link = %x; want %x", got, link)
	}
	if _, err := Digest([]byte(`{"a":`)); err == nil {
		t.Fatal("Digest of invalid JSON: no error")
	}
}

// TestSignedMessageIsTheDocumentedText pins what an export's signature
// covers, as the README gives it to auditors: eight lines, the filters as
// the start line writes them, the counts and the selection digest (the
// SHA-256 of the whole records' seqs, one a line).
func TestSignedMessageIsTheDocumentedText(t *testing.T) {
	sel := newSelection()
	sel.add(18)
	sel.add(20)
	sum := sha256.Sum256([]byte("18\n20\n"))
	if sel.hex() != Hex(sum[:]) {
		t.Fatalf("selection of 18, 20 = %s; want SHA-256 of \"18\\n20\\n\" = %x", sel.hex(), sum)
	}
	got := string(SignedMessage(Signed{StartSeq: 17, StartHash: "aa", EndSeq: 20, EndHash: "bb",
		Filter: Filter{Project: "service-api", Since: "2026-11-01T00:00:00Z"}, Records: 2, Links: 1,
		Selection: sel.hex(), ExportedAt: "2026-12-01T00:00:00Z"}))
	want := "tollgate.ledger.v2\nstart 17 aa\nend 20 bb\n" +
		`filter {"project":"service-api","since":"2026-11-01T00:00:00Z"}` + "\n" +
		"records 2\nlinks 1\nselection " + Hex(sum[:]) + "\nexported_at 2026-12-01T00:00:00Z\n"
	if got != want {
		t.Fatalf("SignedMessage =\n%s\nwant\n%s", got, want)
	}
}
