package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// GenerateKey returns a new Ed25519 key pair for signing exports: the
// private key PEM-encoded as PKCS#8 "PRIVATE KEY", the public key as PKIX
// "PUBLIC KEY" (what `openssl pkey` reads and writes).
func GenerateKey() (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ledger key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode ledger private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("encode ledger public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// LoadPrivateKey reads the PEM PKCS#8 Ed25519 private key at path.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadPEM(path, "PRIVATE KEY", func(der []byte) (any, error) { return x509.ParsePKCS8PrivateKey(der) })
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ledger signing key %s: found a %T key; want Ed25519 (make one with `tollgate ledger keygen`)", path, key)
	}
	return priv, nil
}

// LoadPublicKey reads the PEM PKIX Ed25519 public key at path.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	key, err := loadPEM(path, "PUBLIC KEY", x509.ParsePKIXPublicKey)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("ledger public key %s: found a %T key; want Ed25519 (ledger-public.pem from `tollgate ledger keygen`)", path, key)
	}
	return pub, nil
}

func loadPEM(path, typ string, parse func([]byte) (any, error)) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("ledger key %s: no PEM block found; want PEM %q", path, typ)
	case block.Type != typ:
		return nil, fmt.Errorf("ledger key %s: found PEM %q; want %q (is it the other key of the pair?)", path, block.Type, typ)
	}
	key, err := parse(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ledger key %s: %w", path, err)
	}
	return key, nil
}

// KeyID names a public key in exports: the hex SHA-256 of its PKIX DER
// encoding (`openssl pkey -pubin -outform DER | sha256sum`).
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // cannot happen for a well-sized key
		return ""
	}
	sum := sha256.Sum256(der)
	return Hex(sum[:])
}
