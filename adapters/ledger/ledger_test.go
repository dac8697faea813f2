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
