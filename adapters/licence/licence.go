// Package licence issues and verifies tollgate licences.
//
// A licence is a JWT signed RS256 or PS256 with the vendor's RSA private key.
// tollgate holds only the public key. The claims are sub (the customer),
// edition (must be "pro"), iat, exp and optionally nbf.
//
// A Verifier checks the signature, structure and edition once, when it is
// built, because the token does not change and an RSA verification is too
// slow to repeat on every decision. Only the time window is judged per
// evaluation, by Check, at the evaluation's own time, so that a simulation
// "at" a past or future instant sees the licence as it was or will be then.
package licence

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate"
)

// RequiredEdition is the only edition that lets tollgate evaluate.
const RequiredEdition = "pro"

// minKeyBits is the smallest RSA modulus accepted for licence keys.
const minKeyBits = 2048

// maxFileSize bounds what NewVerifierFromFiles reads: a licence or a key is a
// few KiB, and a wrong path (a log, /dev/zero) must not exhaust memory.
const maxFileSize = 1 << 20

// Claims are the contents of a licence, as given to Issue.
type Claims struct {
	Subject   string    // the customer
	Edition   string    // "pro" for a licence that lets tollgate evaluate
	IssuedAt  time.Time // required
	ExpiresAt time.Time // required, after IssuedAt; exclusive
	NotBefore time.Time // optional: zero means from IssuedAt
}

// tokenClaims is the JWT payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	Edition string `json:"edition,omitempty"`
}

// GenerateKey returns a new RSA key pair for signing licences: the private key
// PEM-encoded as PKCS#8 "PRIVATE KEY", the public key as PKIX "PUBLIC KEY".
func GenerateKey(bits int) (privatePEM, publicPEM []byte, err error) {
	if bits < minKeyBits {
		return nil, nil, fmt.Errorf("generate licence key: %d bits is too small; use at least %d", bits, minKeyBits)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate licence key: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode licence private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encode licence public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}

// The PEM parsers below are written by hand rather than taken from jwt's
// ParseRSA*KeyFromPEM helpers because those answer every mistake with the same
// generic message; an operator who passed the wrong file needs to be told
// which file it looks like and what was expected instead.

// ParsePrivateKey parses a PEM-encoded RSA private key, PKCS#8 ("PRIVATE
// KEY") or PKCS#1 ("RSA PRIVATE KEY"), unencrypted.
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	const want = `want an unencrypted PEM RSA private key ("PRIVATE KEY" or "RSA PRIVATE KEY")`
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block found; %s", want)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return nil, fmt.Errorf("found a public key (PEM %q); %s", block.Type, want)
	default:
		return nil, fmt.Errorf("found PEM %q; %s", block.Type, want)
	}
	if err != nil {
		return nil, fmt.Errorf("decode PEM %q: %w; %s", block.Type, err, want)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("found a %T private key; %s", key, want)
	}
	if n := rsaKey.N.BitLen(); n < minKeyBits {
		return nil, fmt.Errorf("RSA key is %d bits; want at least %d", n, minKeyBits)
	}
	return rsaKey, nil
}

// ParsePublicKey parses a PEM-encoded RSA public key, PKIX ("PUBLIC KEY") or
// PKCS#1 ("RSA PUBLIC KEY").
func ParsePublicKey(data []byte) (*rsa.PublicKey, error) {
	const want = `want a PEM RSA public key ("PUBLIC KEY" or "RSA PUBLIC KEY")`
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block found; %s", want)
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("found a private key (PEM %q); %s: tollgate needs only the vendor's public key", block.Type, want)
	default:
		return nil, fmt.Errorf("found PEM %q; %s", block.Type, want)
	}
	if err != nil {
		return nil, fmt.Errorf("decode PEM %q: %w; %s", block.Type, err, want)
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("found a %T public key; %s", key, want)
	}
	if n := rsaKey.N.BitLen(); n < minKeyBits {
		return nil, fmt.Errorf("RSA key is %d bits; want at least %d", n, minKeyBits)
	}
	return rsaKey, nil
}

// Issue signs a licence with RS256. Times are truncated to whole seconds, the
// precision of JWT dates.
func Issue(key *rsa.PrivateKey, c Claims) (string, error) {
	if key == nil {
		return "", errors.New("issue licence: no private key")
	}
	iat := c.IssuedAt.Truncate(time.Second)
	exp := c.ExpiresAt.Truncate(time.Second)
	nbf := c.NotBefore.Truncate(time.Second)
	switch {
	case strings.TrimSpace(c.Subject) == "":
		return "", errors.New("issue licence: subject (the customer) is required")
	case strings.TrimSpace(c.Edition) == "":
		return "", fmt.Errorf("issue licence: edition is required (%q for a working licence)", RequiredEdition)
	case c.IssuedAt.IsZero():
		return "", errors.New("issue licence: issue time is required")
	case c.ExpiresAt.IsZero():
		return "", errors.New("issue licence: expiry time is required")
	case !exp.After(iat):
		return "", fmt.Errorf("issue licence: expiry %s is not after issue time %s", rfc3339(exp), rfc3339(iat))
	case !nbf.IsZero() && !exp.After(nbf):
		return "", fmt.Errorf("issue licence: expiry %s is not after not-before %s", rfc3339(exp), rfc3339(nbf))
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Edition: c.Edition,
	}
	if !nbf.IsZero() {
		claims.NotBefore = jwt.NewNumericDate(nbf)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("issue licence: sign: %w", err)
	}
	return token, nil
}

// Verifier holds the outcome of verifying one licence token against one
// public key. It is immutable and safe for concurrent use.
type Verifier struct {
	// result is what Check returns inside the validity window; it is
	// LicenceInvalid, and returned as is, when verification failed.
	result    tollgate.Licence
	validFrom time.Time // max(iat, nbf)
	expiresAt time.Time // exp, exclusive
	// Prepared here so that Check never formats, hence never allocates.
	notYetDetail  string
	expiredDetail string
}

// NewVerifier verifies token (surrounding whitespace ignored) against pub:
// signature (RS256 or PS256 only), structure, required claims and edition.
// It never fails: a bad licence gives a Verifier whose Check reports
// LicenceInvalid with the reason, so tollgate can start and refuse.
func NewVerifier(pub *rsa.PublicKey, token string) *Verifier {
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return invalid("no licence configured")
	case pub == nil:
		return invalid("no licence public key configured")
	}

	var claims tokenClaims
	parser := jwt.NewParser(
		// Only RSA signatures. Everything else is refused, "none" and HMAC
		// especially: an HS256 token "signed" with the public key as the
		// shared secret is the classic key-confusion forgery.
		jwt.WithValidMethods([]string{"RS256", "PS256"}),
		jwt.WithStrictDecoding(),
		// Time is judged by Check at the evaluation time, with no leeway.
		jwt.WithoutClaimsValidation(),
	)
	parsed, err := parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return pub, nil })

	v := &Verifier{}
	// The claims were decoded unless the token was malformed; report what
	// they say even when the signature is bad, to help identify the file.
	if err == nil || !errors.Is(err, jwt.ErrTokenMalformed) {
		v.result.Subject = claims.Subject
		v.result.Edition = claims.Edition
		if claims.ExpiresAt != nil {
			v.result.ExpiresAt = claims.ExpiresAt.UTC()
		}
	}
	if err != nil {
		v.result.Status = tollgate.LicenceInvalid
		v.result.Detail = parseFailure(parsed, err)
		return v
	}

	v.result.Status = tollgate.LicenceInvalid
	switch {
	case claims.Subject == "":
		v.result.Detail = `licence has no "sub" claim`
		return v
	case claims.IssuedAt == nil:
		v.result.Detail = `licence has no "iat" claim`
		return v
	case claims.ExpiresAt == nil:
		v.result.Detail = `licence has no "exp" claim`
		return v
	case claims.Edition == "":
		v.result.Detail = fmt.Sprintf(`licence has no "edition" claim; want %q`, RequiredEdition)
		return v
	case claims.Edition != RequiredEdition:
		v.result.Detail = fmt.Sprintf("edition %q is not %q", claims.Edition, RequiredEdition)
		return v
	}

	v.result.Status = tollgate.LicenceValid
	v.validFrom = claims.IssuedAt.UTC()
	if claims.NotBefore != nil && claims.NotBefore.After(v.validFrom) {
		v.validFrom = claims.NotBefore.UTC()
	}
	v.expiresAt = v.result.ExpiresAt
	v.notYetDetail = "not valid before " + rfc3339(v.validFrom)
	v.expiredDetail = "expired at " + rfc3339(v.expiresAt)
	return v
}

// parseFailure turns a jwt parse error into a short explanation.
func parseFailure(token *jwt.Token, err error) string {
	if token != nil && token.Header != nil {
		alg, ok := token.Header["alg"].(string)
		if !ok {
			return `licence header has no "alg"`
		}
		if alg != "RS256" && alg != "PS256" {
			return fmt.Sprintf("signing algorithm %q is not accepted; want RS256 or PS256", alg)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "licence is not a well-formed JWT"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature does not match the configured public key"
	default:
		return err.Error()
	}
}

func invalid(detail string) *Verifier {
	return &Verifier{result: tollgate.Licence{Status: tollgate.LicenceInvalid, Detail: detail}}
}

// NewVerifierFromFiles reads the vendor's public key and the licence token.
// An unreadable or unusable public key is an error: the operator must fix the
// installation. An unreadable licence is not: the Verifier reports
// LicenceInvalid, naming the file, so tollgate starts and refuses with
// licence_invalid until the licence is fixed.
func NewVerifierFromFiles(publicKeyPath, licencePath string) (*Verifier, error) {
	data, err := readFile(publicKeyPath)
	if err != nil {
		return nil, fmt.Errorf("read licence public key: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("licence public key %s: %w", publicKeyPath, err)
	}
	if licencePath == "" {
		return invalid("no licence configured"), nil
	}
	token, err := readFile(licencePath)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err // the path is already in the detail
		}
		return invalid(fmt.Sprintf("cannot read licence file %s: %v", licencePath, err)), nil
	}
	if len(strings.TrimSpace(string(token))) == 0 {
		return invalid(fmt.Sprintf("licence file %s is empty", licencePath)), nil
	}
	return NewVerifier(pub, string(token)), nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err // an *fs.PathError from *os.File
	}
	if len(data) > maxFileSize {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", maxFileSize)}
	}
	return data, nil
}

// Check reports the licence at time at: LicenceValid when it verified and
// iat/nbf <= at < exp, LicenceExpired when it verified but at is outside that
// window, LicenceInvalid otherwise. It does no cryptography and does not
// allocate. A nil Verifier reports no licence.
func (v *Verifier) Check(at time.Time) tollgate.Licence {
	if v == nil {
		return tollgate.Licence{Status: tollgate.LicenceInvalid, Detail: "no licence configured"}
	}
	l := v.result
	if l.Status != tollgate.LicenceValid {
		return l
	}
	switch {
	case at.Before(v.validFrom):
		l.Status, l.Detail = tollgate.LicenceExpired, v.notYetDetail
	case !at.Before(v.expiresAt):
		l.Status, l.Detail = tollgate.LicenceExpired, v.expiredDetail
	}
	return l
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
