package licence_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/licence"
)

// testKeys are generated once per test binary: 2048-bit RSA keys take a
// noticeable fraction of a second each.
type testKeys struct {
	privPEM, pubPEM []byte // from GenerateKey
	vendor          *rsa.PrivateKey
	pub             *rsa.PublicKey
	other           *rsa.PrivateKey // someone else's key
}

var keysOnce = sync.OnceValues(func() (testKeys, error) {
	var k testKeys
	var err error
	if k.privPEM, k.pubPEM, err = licence.GenerateKey(2048); err != nil {
		return k, err
	}
	if k.vendor, err = licence.ParsePrivateKey(k.privPEM); err != nil {
		return k, err
	}
	if k.pub, err = licence.ParsePublicKey(k.pubPEM); err != nil {
		return k, err
	}
	k.other, err = rsa.GenerateKey(rand.Reader, 2048)
	return k, err
})

func keys(tb testing.TB) testKeys {
	tb.Helper()
	k, err := keysOnce()
	if err != nil {
		tb.Fatalf("generate test keys: %v", err)
	}
	return k
}

var (
	iat = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nbf = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	exp = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	mid = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
)

func proClaims() licence.Claims {
	return licence.Claims{Subject: "acme", Edition: "pro", IssuedAt: iat, ExpiresAt: exp}
}

func issue(tb testing.TB, c licence.Claims) string {
	tb.Helper()
	tok, err := licence.Issue(keys(tb).vendor, c)
	if err != nil {
		tb.Fatalf("Issue: %v", err)
	}
	return tok
}

// sign builds tokens Issue refuses to make: other algorithms, missing claims.
func sign(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return tok
}

func mapClaims(drop ...string) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "acme", "edition": "pro", "iat": iat.Unix(), "exp": exp.Unix()}
	for _, d := range drop {
		delete(c, d)
	}
	return c
}

// tamper replaces the payload of a signed token, keeping its signature.
func tamper(tb testing.TB, token string, edit func(map[string]any)) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		tb.Fatal(err)
	}
	edit(payload)
	raw, err = json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestVerifierCheck(t *testing.T) {
	k := keys(t)
	valid := issue(t, proClaims())
	withNBF := proClaims()
	withNBF.NotBefore = nbf
	basic := proClaims()
	basic.Edition = "basic"

	tests := []struct {
		name    string
		pub     *rsa.PublicKey // nil: the vendor's
		token   string
		at      time.Time
		status  tollgate.LicenceState
		detail  string // exact
		subject string // checked when not empty
		edition string // checked when not empty
		expires bool   // ExpiresAt must be exp
	}{
		{name: "valid", token: valid, at: mid, status: tollgate.LicenceValid, subject: "acme", edition: "pro", expires: true},
		{name: "valid exactly at iat", token: valid, at: iat, status: tollgate.LicenceValid},
		{name: "valid one second before exp", token: valid, at: exp.Add(-time.Second), status: tollgate.LicenceValid},
		{name: "valid with surrounding whitespace", token: "\n " + valid + "\r\n", at: mid, status: tollgate.LicenceValid},
		{name: "valid in another time zone", token: valid, at: mid.In(time.FixedZone("X", 5*3600)), status: tollgate.LicenceValid},
		{
			name: "expired exactly at exp", token: valid, at: exp,
			status: tollgate.LicenceExpired, detail: "expired at 2027-01-01T00:00:00Z", subject: "acme", edition: "pro", expires: true,
		},
		{name: "expired long after", token: valid, at: exp.AddDate(3, 0, 0), status: tollgate.LicenceExpired, detail: "expired at 2027-01-01T00:00:00Z"},
		{name: "not yet valid before iat", token: valid, at: iat.Add(-time.Second), status: tollgate.LicenceExpired, detail: "not valid before 2026-01-01T00:00:00Z", expires: true},
		{name: "not yet valid before nbf", token: issue(t, withNBF), at: nbf.Add(-time.Second), status: tollgate.LicenceExpired, detail: "not valid before 2026-02-01T00:00:00Z"},
		{name: "valid exactly at nbf", token: issue(t, withNBF), at: nbf, status: tollgate.LicenceValid},
		{name: "PS256 accepted", token: sign(t, jwt.SigningMethodPS256, k.vendor, mapClaims()), at: mid, status: tollgate.LicenceValid, subject: "acme"},
		{name: "PS256 expired", token: sign(t, jwt.SigningMethodPS256, k.vendor, mapClaims()), at: exp, status: tollgate.LicenceExpired, detail: "expired at 2027-01-01T00:00:00Z"},

		{
			name: "wrong edition", token: issue(t, basic), at: mid,
			status: tollgate.LicenceInvalid, detail: `edition "basic" is not "pro"`, subject: "acme", edition: "basic", expires: true,
		},
		{name: "wrong edition stays invalid when expired", token: issue(t, basic), at: exp, status: tollgate.LicenceInvalid, detail: `edition "basic" is not "pro"`},
		{name: "missing edition", token: sign(t, jwt.SigningMethodRS256, k.vendor, mapClaims("edition")), at: mid, status: tollgate.LicenceInvalid, detail: `licence has no "edition" claim; want "pro"`},
		{name: "missing sub", token: sign(t, jwt.SigningMethodRS256, k.vendor, mapClaims("sub")), at: mid, status: tollgate.LicenceInvalid, detail: `licence has no "sub" claim`},
		{name: "missing exp", token: sign(t, jwt.SigningMethodRS256, k.vendor, mapClaims("exp")), at: mid, status: tollgate.LicenceInvalid, detail: `licence has no "exp" claim`},
		{name: "missing iat", token: sign(t, jwt.SigningMethodRS256, k.vendor, mapClaims("iat")), at: mid, status: tollgate.LicenceInvalid, detail: `licence has no "iat" claim`},
		{
			name: "exp is not a number", token: sign(t, jwt.SigningMethodRS256, k.vendor, jwt.MapClaims{"sub": "acme", "edition": "pro", "iat": iat.Unix(), "exp": "never"}),
			at: mid, status: tollgate.LicenceInvalid, detail: "licence is not a well-formed JWT",
		},

		{
			name: "signed by another key", token: sign(t, jwt.SigningMethodRS256, k.other, mapClaims()), at: mid,
			status: tollgate.LicenceInvalid, detail: "signature does not match the configured public key", subject: "acme", expires: true,
		},
		{
			name: "PS256 signed by another key", token: sign(t, jwt.SigningMethodPS256, k.other, mapClaims()), at: mid,
			status: tollgate.LicenceInvalid, detail: "signature does not match the configured public key",
		},
		{
			name: "checked against another public key", pub: &k.other.PublicKey, token: valid, at: mid,
			status: tollgate.LicenceInvalid, detail: "signature does not match the configured public key",
		},
		{
			name: "tampered payload extends exp", at: exp.AddDate(1, 0, 0),
			token:  tamper(t, valid, func(p map[string]any) { p["exp"] = exp.AddDate(10, 0, 0).Unix() }),
			status: tollgate.LicenceInvalid, detail: "signature does not match the configured public key",
		},
		{
			name: "tampered payload changes edition", at: mid,
			token:  tamper(t, issue(t, basic), func(p map[string]any) { p["edition"] = "pro" }),
			status: tollgate.LicenceInvalid, detail: "signature does not match the configured public key",
		},
		{
			name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, mapClaims()), at: mid,
			status: tollgate.LicenceInvalid, detail: `signing algorithm "none" is not accepted; want RS256 or PS256`,
		},
		{
			name: "HS256 with the public key as secret (key confusion)", token: sign(t, jwt.SigningMethodHS256, k.pubPEM, mapClaims()), at: mid,
			status: tollgate.LicenceInvalid, detail: `signing algorithm "HS256" is not accepted; want RS256 or PS256`,
		},
		{
			name: "RS384 by the vendor key", token: sign(t, jwt.SigningMethodRS384, k.vendor, mapClaims()), at: mid,
			status: tollgate.LicenceInvalid, detail: `signing algorithm "RS384" is not accepted; want RS256 or PS256`,
		},
		{
			name: "unknown alg", token: "eyJhbGciOiJYWVoifQ." + strings.Split(valid, ".")[1] + ".c2ln", at: mid,
			status: tollgate.LicenceInvalid, detail: `signing algorithm "XYZ" is not accepted; want RS256 or PS256`,
		},
		{
			name: "no alg", token: "e30." + strings.Split(valid, ".")[1] + ".c2ln", at: mid,
			status: tollgate.LicenceInvalid, detail: `licence header has no "alg"`,
		},

		{name: "empty", token: "", at: mid, status: tollgate.LicenceInvalid, detail: "no licence configured"},
		{name: "blank", token: " \n\t", at: mid, status: tollgate.LicenceInvalid, detail: "no licence configured"},
		{name: "one segment", token: "abc", at: mid, status: tollgate.LicenceInvalid, detail: "licence is not a well-formed JWT"},
		{name: "three junk segments", token: "a.b.c", at: mid, status: tollgate.LicenceInvalid, detail: "licence is not a well-formed JWT"},
		{name: "four segments", token: valid + ".x", at: mid, status: tollgate.LicenceInvalid, detail: "licence is not a well-formed JWT"},
		{name: "signature cut off", token: valid[:strings.LastIndex(valid, ".")+1], at: mid, status: tollgate.LicenceInvalid, detail: "signature does not match the configured public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := tt.pub
			if pub == nil {
				pub = k.pub
			}
			got := licence.NewVerifier(pub, tt.token).Check(tt.at)
			if got.Status != tt.status {
				t.Errorf("Status = %q, want %q (detail %q)", got.Status, tt.status, got.Detail)
			}
			if got.Detail != tt.detail {
				t.Errorf("Detail = %q, want %q", got.Detail, tt.detail)
			}
			if tt.subject != "" && got.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", got.Subject, tt.subject)
			}
			if tt.edition != "" && got.Edition != tt.edition {
				t.Errorf("Edition = %q, want %q", got.Edition, tt.edition)
			}
			if tt.expires && !got.ExpiresAt.Equal(exp) {
				t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, exp)
			}
		})
	}
}

func TestVerifierWithoutKey(t *testing.T) {
	got := licence.NewVerifier(nil, issue(t, proClaims())).Check(mid)
	if got.Status != tollgate.LicenceInvalid || got.Detail != "no licence public key configured" {
		t.Errorf("Check = %+v, want invalid: no licence public key configured", got)
	}
	var v *licence.Verifier
	if got := v.Check(mid); got.Status != tollgate.LicenceInvalid || got.Detail != "no licence configured" {
		t.Errorf("nil Verifier Check = %+v, want invalid: no licence configured", got)
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	v := licence.NewVerifier(keys(t).pub, issue(t, proClaims()))
	for _, at := range []time.Time{mid, exp, iat.Add(-time.Hour)} {
		if n := testing.AllocsPerRun(100, func() { v.Check(at) }); n != 0 {
			t.Errorf("Check(%v) allocates %v times per call, want 0", at, n)
		}
	}
}

func TestIssue(t *testing.T) {
	k := keys(t)
	t.Run("round trip", func(t *testing.T) {
		c := proClaims()
		c.IssuedAt = c.IssuedAt.Add(400 * time.Millisecond) // truncated to the second
		c.NotBefore = nbf
		got := licence.NewVerifier(k.pub, issue(t, c)).Check(nbf)
		want := tollgate.Licence{Status: tollgate.LicenceValid, Subject: "acme", Edition: "pro", ExpiresAt: exp}
		if got != want {
			t.Errorf("Check = %+v, want %+v", got, want)
		}
	})

	tests := []struct {
		name string
		key  *rsa.PrivateKey
		edit func(*licence.Claims)
		want string // in the error
	}{
		{"empty subject", k.vendor, func(c *licence.Claims) { c.Subject = " " }, "subject"},
		{"empty edition", k.vendor, func(c *licence.Claims) { c.Edition = "" }, "edition is required"},
		{"zero issue time", k.vendor, func(c *licence.Claims) { c.IssuedAt = time.Time{} }, "issue time is required"},
		{"zero expiry", k.vendor, func(c *licence.Claims) { c.ExpiresAt = time.Time{} }, "expiry time is required"},
		{"expiry before issue", k.vendor, func(c *licence.Claims) { c.ExpiresAt = iat.Add(-time.Hour) }, "is not after issue time"},
		{"expiry equals issue", k.vendor, func(c *licence.Claims) { c.ExpiresAt = iat }, "is not after issue time"},
		{"expiry not after nbf", k.vendor, func(c *licence.Claims) { c.NotBefore = exp }, "is not after not-before"},
		{"no key", nil, func(*licence.Claims) {}, "no private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := proClaims()
			tt.edit(&c)
			tok, err := licence.Issue(tt.key, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Issue = %q, %v; want an error containing %q", tok, err, tt.want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	k := keys(t)
	if _, _, err := licence.GenerateKey(1024); err == nil || !strings.Contains(err.Error(), "at least 2048") {
		t.Errorf("GenerateKey(1024) error = %v, want refusal", err)
	}
	for pemBytes, want := range map[string]string{string(k.privPEM): "PRIVATE KEY", string(k.pubPEM): "PUBLIC KEY"} {
		block, rest := pem.Decode([]byte(pemBytes))
		if block == nil || block.Type != want || len(strings.TrimSpace(string(rest))) != 0 {
			t.Errorf("PEM block = %v, want a single %q", block, want)
		}
	}
	if !k.vendor.PublicKey.Equal(k.pub) {
		t.Error("the parsed public key does not match the parsed private key")
	}
	if k.vendor.N.BitLen() != 2048 {
		t.Errorf("key is %d bits, want 2048", k.vendor.N.BitLen())
	}
	// Re-encoding what was parsed gives the same bytes.
	der, err := x509.MarshalPKIXPublicKey(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}); string(got) != string(k.pubPEM) {
		t.Error("public key PEM does not round-trip")
	}
}

func TestParseKeys(t *testing.T) {
	k := keys(t)
	pkcs1Pub := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(k.pub)})
	pkcs1Priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.vendor)})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})
	ecDER, err = x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	small, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // testing the refusal
	if err != nil {
		t.Fatal(err)
	}
	smallPub := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&small.PublicKey)})
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")})

	pubTests := []struct {
		name string
		in   []byte
		want string // error substring; "" for success
	}{
		{"PKIX", k.pubPEM, ""},
		{"PKCS#1", pkcs1Pub, ""},
		{"empty", nil, "no PEM block found"},
		{"garbage", []byte("hello"), "no PEM block found"},
		{"private key", k.privPEM, "found a private key"},
		{"EC key", ecPub, "*ecdsa.PublicKey"},
		{"corrupt DER", corrupt, `decode PEM "PUBLIC KEY"`},
		{"certificate request", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}}), `found PEM "CERTIFICATE REQUEST"`},
		{"1024 bits", smallPub, "1024 bits; want at least 2048"},
	}
	for _, tt := range pubTests {
		t.Run("public/"+tt.name, func(t *testing.T) {
			got, err := licence.ParsePublicKey(tt.in)
			checkParse(t, got != nil, err, tt.want)
			if tt.want == "" && !got.Equal(k.pub) {
				t.Error("parsed key differs from the generated one")
			}
		})
	}

	privTests := []struct {
		name string
		in   []byte
		want string
	}{
		{"PKCS#8", k.privPEM, ""},
		{"PKCS#1", pkcs1Priv, ""},
		{"garbage", []byte("-----BEGIN NOTHING"), "no PEM block found"},
		{"public key", k.pubPEM, "found a public key"},
		{"EC key", ecPriv, "*ecdsa.PrivateKey"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "want an unencrypted PEM RSA private key"},
	}
	for _, tt := range privTests {
		t.Run("private/"+tt.name, func(t *testing.T) {
			got, err := licence.ParsePrivateKey(tt.in)
			checkParse(t, got != nil, err, tt.want)
			if tt.want == "" && !got.Equal(k.vendor) {
				t.Error("parsed key differs from the generated one")
			}
		})
	}
}

func checkParse(t *testing.T, gotKey bool, err error, want string) {
	t.Helper()
	switch {
	case want == "" && (err != nil || !gotKey):
		t.Fatalf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
}

func TestNewVerifierFromFiles(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPath := write("public.pem", k.pubPEM)
	goodPath := write("good.jwt", []byte("\n"+issue(t, proClaims())+"\n\n"))
	emptyPath := write("empty.jwt", []byte(" \n"))
	junkPath := write("junk.jwt", []byte("abc"))
	missingPath := filepath.Join(dir, "missing.jwt")

	t.Run("licence files", func(t *testing.T) {
		tests := []struct {
			name, path string
			status     tollgate.LicenceState
			detail     string
		}{
			{"good, whitespace trimmed", goodPath, tollgate.LicenceValid, ""},
			{"missing", missingPath, tollgate.LicenceInvalid, "cannot read licence file " + missingPath + ": no such file or directory"},
			{"a directory", dir, tollgate.LicenceInvalid, "cannot read licence file " + dir + ": is a directory"},
			{"empty", emptyPath, tollgate.LicenceInvalid, "licence file " + emptyPath + " is empty"},
			{"junk", junkPath, tollgate.LicenceInvalid, "licence is not a well-formed JWT"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				v, err := licence.NewVerifierFromFiles(pubPath, tt.path)
				if err != nil {
					t.Fatalf("NewVerifierFromFiles: %v; an unreadable licence must not be an error", err)
				}
				got := v.Check(mid)
				if got.Status != tt.status || got.Detail != tt.detail {
					t.Errorf("Check = %q %q, want %q %q", got.Status, got.Detail, tt.status, tt.detail)
				}
			})
		}
	})

	t.Run("public key files", func(t *testing.T) {
		tests := []struct {
			name, path, want string
		}{
			{"missing", filepath.Join(dir, "nope.pem"), "no such file or directory"},
			{"garbage", write("garbage.pem", []byte("not a key")), "no PEM block found"},
			{"private key instead", write("private.pem", k.privPEM), "found a private key"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				v, err := licence.NewVerifierFromFiles(tt.path, goodPath)
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
					t.Fatalf("NewVerifierFromFiles = %v, %v; want an error naming %s and containing %q", v, err, tt.path, tt.want)
				}
			})
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	v := licence.NewVerifier(keys(b).pub, issue(b, proClaims()))
	for _, bc := range []struct {
		name string
		at   time.Time
	}{{"valid", mid}, {"expired", exp}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = v.Check(bc.at)
			}
		})
	}
}

// BenchmarkNewVerifier shows what Check avoids: the RSA verification.
func BenchmarkNewVerifier(b *testing.B) {
	pub, token := keys(b).pub, issue(b, proClaims())
	b.ReportAllocs()
	for b.Loop() {
		_ = licence.NewVerifier(pub, token)
	}
}
