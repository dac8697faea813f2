package rego

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/util"
)

// SignaturesFile is the file of a bundle directory that holds its signature,
// in OPA's bundle signing format: {"signatures": ["<JWT>"]}, the JWT's
// payload listing every file of the bundle with its SHA-256 hash.
const SignaturesFile = ".signatures.json"

// manifestFile is OPA's bundle manifest; signed like any other file.
const manifestFile = ".manifest"

// DefaultKeyID names the verification key when none is given. With one
// key, as OPA does with a configured keyid, the key is used whatever the
// JWT's own "kid" says: an attacker cannot pick another key.
const DefaultKeyID = "default"

// Verification accepts only bundles signed with one key. It wraps OPA's
// bundle.VerificationConfig, so that a bundle signed by `opa sign` or
// `opa build --signing-key` verifies here as it would in OPA, and the
// checks (JWT signature, key, scope, each file's hash, every signed file
// present, no unsigned file) are OPA's own.
type Verification struct {
	config *bundle.VerificationConfig
	keyID  string
	alg    string
}

// NewVerification reads a PEM public key (PKIX "PUBLIC KEY", PKCS#1 "RSA
// PUBLIC KEY" or a "CERTIFICATE") of RSA or ECDSA. alg is the JWT algorithm
// the signature must use; "" derives it from the key: RS256 for RSA (the
// default of `opa sign`), ES256/ES384/ES512 for the P-256/P-384/P-521
// curves. keyID "" is DefaultKeyID; scope must equal the signature's
// "scope" claim ("" for none, as `opa sign` writes).
func NewVerification(publicKeyPEM []byte, keyID, alg, scope string) (*Verification, error) {
	pub, err := parsePublicKey(publicKeyPEM)
	if err != nil {
		return nil, err
	}
	if alg, err = keyAlgorithm(pub, alg); err != nil {
		return nil, err
	}
	if keyID == "" {
		keyID = DefaultKeyID
	}
	keys := map[string]*bundle.KeyConfig{keyID: {Key: string(publicKeyPEM), Algorithm: alg}}
	return &Verification{
		config: bundle.NewVerificationConfig(keys, keyID, scope, nil),
		keyID:  keyID,
		alg:    alg,
	}, nil
}

// LoadVerification is NewVerification on the key in a file.
func LoadVerification(path, keyID, alg, scope string) (*Verification, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle verification key: %w", err)
	}
	v, err := NewVerification(data, keyID, alg, scope)
	if err != nil {
		return nil, fmt.Errorf("bundle verification key %s: %w", path, err)
	}
	return v, nil
}

// Algorithm is the JWT algorithm signatures must use.
func (v *Verification) Algorithm() string { return v.alg }

// KeyID is the key's name.
func (v *Verification) KeyID() string { return v.keyID }

// verify checks the signature of the bundle in dir with OPA's bundle
// reader and returns the bundle as the reader read it: its modules and data
// are what the signature covers. Any file the reader sees (everything but
// the dot-files LoadBundle skips) must be signed with the right hash, and
// every signed file must be there.
func (v *Verification) verify(dir string) (*bundle.Bundle, error) {
	if _, err := os.Stat(filepath.Join(dir, SignaturesFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bundle %s is not signed: no %s (sign it with `tollgate bundle sign --signing-key KEY %s`)", dir, SignaturesFile, dir)
	}
	root, err := loaderRoot(dir)
	if err != nil {
		return nil, err
	}
	loader := bundle.NewDirectoryLoader(root).
		WithFilter(signedFilter(root)).
		WithFollowSymlinks(true)
	b, err := bundle.NewCustomReader(loader).
		WithBundleVerificationConfig(v.config).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(bundle.DefaultSizeLimitBytes).
		Read()
	if err != nil {
		return nil, fmt.Errorf("bundle %s failed signature verification with key %q (%s): %w", dir, v.keyID, v.alg, err)
	}
	return &b, nil
}

// matchesSigned checks that what LoadBundle loaded is exactly what the
// signature covers: the same modules with the same bytes and the same
// data. A file changed between the two reads fails it, so the bundle that
// is compiled is always the bundle that was verified.
func matchesSigned(dir string, signed *bundle.Bundle, modules map[string][]byte, data map[string]any) error {
	want := make(map[string][]byte, len(signed.Modules))
	for _, m := range signed.Modules {
		want[strings.TrimPrefix(filepath.ToSlash(m.Path), "/")] = m.Raw
	}
	for name, raw := range modules {
		w, ok := want[name]
		if !ok {
			return fmt.Errorf("bundle %s: %s is loaded but not part of the signed bundle", dir, name)
		}
		if !bytes.Equal(w, raw) {
			return fmt.Errorf("bundle %s: %s changed while the bundle was read; the next reload retries", dir, name)
		}
	}
	if len(want) != len(modules) {
		return fmt.Errorf("bundle %s: the signed bundle has %d modules, %d loaded", dir, len(want), len(modules))
	}
	got, err := json.Marshal(data) // map keys sorted: canonical
	if err != nil {
		return err
	}
	exp, err := json.Marshal(signed.Data)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, exp) {
		return fmt.Errorf("bundle %s: its data differs from the signed data (a data file that is not named data.json, data.yaml or data.yml, or one changed while the bundle was read)", dir)
	}
	return nil
}

// loaderRoot is dir made absolute for OPA's directory loader, which names
// files relative to its root by cutting the root off their path: with the
// root "." that also cuts the dot of ".signatures.json".
func loaderRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("bundle %s: %w", dir, err)
	}
	return abs, nil
}

// signedFilter is what the signature covers: every file LoadBundle reads
// plus OPA's .manifest, and the signatures file itself (which the reader
// takes out). Other dot-files (editor backups, .git) are skipped, as
// LoadBundle skips them: they cannot change the policy.
func signedFilter(root string) func(string, fs.FileInfo, int) bool {
	root = filepath.Clean(root)
	return func(path string, info fs.FileInfo, _ int) bool {
		if filepath.Clean(filepath.FromSlash(path)) == root {
			return false
		}
		name := info.Name()
		return strings.HasPrefix(name, ".") && !signedDotFile(name)
	}
}

// SignBundle writes dir/.signatures.json in OPA's bundle signing format,
// as `opa sign --bundle` run in dir writes it: one JWT whose "files" claim
// lists each file's path relative to dir and its SHA-256 (of the bytes,
// or of the canonical JSON of data.json/data.yaml and .manifest files).
// alg "" derives the algorithm from the key (RS256 for RSA, ES256/384/512
// for ECDSA); keyID, when set, goes in the JWT's "kid" header and "keyid"
// claim. It returns the names of the files signed.
func SignBundle(dir string, privateKeyPEM []byte, keyID, alg string) ([]string, error) {
	key, err := parsePrivateKey(privateKeyPEM)
	if err != nil {
		return nil, err
	}
	if alg, err = keyAlgorithm(key.Public(), alg); err != nil {
		return nil, err
	}
	hasher, err := bundle.NewSignatureHasher(bundle.SHA256)
	if err != nil {
		return nil, err
	}
	root, err := loaderRoot(dir)
	if err != nil {
		return nil, err
	}
	loader := bundle.NewDirectoryLoader(root).WithFilter(signedFilter(root)).WithFollowSymlinks(true)
	var files []bundle.FileInfo
	var names []string
	for {
		f, err := loader.NextFile()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("sign bundle %s: %w", dir, err)
		}
		name := strings.TrimPrefix(filepath.ToSlash(f.Path()), "/")
		if bundle.IsSignaturesFile(name) {
			f.Close()
			continue
		}
		var buf bytes.Buffer
		_, err = f.Read(&buf, bundle.DefaultSizeLimitBytes+1)
		f.Close()
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("sign bundle %s: read %s: %w", dir, name, err)
		}
		if buf.Len() > bundle.DefaultSizeLimitBytes {
			return nil, fmt.Errorf("sign bundle %s: %s is larger than %d bytes", dir, name, bundle.DefaultSizeLimitBytes)
		}
		var value any = buf.Bytes()
		if bundle.IsStructuredDoc(name) {
			if err := util.Unmarshal(buf.Bytes(), &value); err != nil {
				return nil, fmt.Errorf("sign bundle %s: %s: %w", dir, name, err)
			}
		}
		sum, err := hasher.HashFile(value)
		if err != nil {
			return nil, fmt.Errorf("sign bundle %s: hash %s: %w", dir, name, err)
		}
		files = append(files, bundle.NewFile(name, hex.EncodeToString(sum), string(bundle.SHA256)))
		names = append(names, name)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("sign bundle %s: no files to sign", dir)
	}
	token, err := bundle.GenerateSignedToken(files, bundle.NewSigningConfig(string(privateKeyPEM), alg, ""), keyID)
	if err != nil {
		return nil, fmt.Errorf("sign bundle %s: %w", dir, err)
	}
	out, err := json.MarshalIndent(bundle.SignaturesConfig{Signatures: []string{token}}, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, SignaturesFile), append(out, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("sign bundle %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// LoadSigningKey reads a PEM private key file for SignBundle.
func LoadSigningKey(path string) ([]byte, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if _, err := parsePrivateKey(data); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return data, nil
}

// maxKeySize bounds a key file read: a PEM key is a few KiB.
const maxKeySize = 1 << 20

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxKeySize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a PEM key", path, maxKeySize)
	}
	return data, nil
}

// parsePublicKey accepts the PEM public keys OPA's verifier accepts, and
// refuses a private key given by mistake (the server must not hold it).
func parsePublicKey(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM: want a public key (-----BEGIN PUBLIC KEY-----)")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("this is a private key (%s): give the server the public key only, and keep the private key with the bundle authors", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q: want a PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return pub, nil
}

func parsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM: want a private key (-----BEGIN PRIVATE KEY-----)")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("a %T key: bundles are signed with RSA or ECDSA keys", key)
	}
}

// keyAlgorithm checks alg against the key's type, or derives it.
func keyAlgorithm(pub any, alg string) (string, error) {
	var allowed []string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("an RSA key of %d bits is too small: use at least 2048", k.N.BitLen())
		}
		allowed = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			allowed = []string{"ES256"}
		case elliptic.P384():
			allowed = []string{"ES384"}
		case elliptic.P521():
			allowed = []string{"ES512"}
		default:
			return "", fmt.Errorf("ECDSA curve %s is not supported: use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	default:
		return "", fmt.Errorf("a %T key: bundles are signed with RSA or ECDSA keys", pub)
	}
	if alg == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, alg) {
		return "", fmt.Errorf("algorithm %s does not fit this key: use one of %s", alg, strings.Join(allowed, ", "))
	}
	return alg, nil
}
