package licence_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/licence"
)

// FuzzVerifier: any licence file either fails verification (invalid) or is
// one this run signed with the vendor key: a changed token never passes the
// signature check, whatever the change. Nothing panics. (Committed seeds
// were signed by other runs' keys: they exercise the parser only.)
func FuzzVerifier(f *testing.F) {
	k := keys(f)
	genuine := map[string]bool{}
	add := func(token string) {
		genuine[token] = true
		f.Add(token)
	}
	add(issue(f, proClaims()))
	add(issue(f, licence.Claims{Subject: "acme", Edition: "community", IssuedAt: iat, ExpiresAt: exp}))
	add(issue(f, licence.Claims{Subject: "acme", Edition: "pro", IssuedAt: iat, ExpiresAt: exp, NotBefore: nbf}))
	add(sign(f, jwt.SigningMethodPS256, k.vendor, mapClaims()))
	add(sign(f, jwt.SigningMethodRS256, k.vendor, mapClaims("exp")))
	f.Add(sign(f, jwt.SigningMethodRS256, k.other, mapClaims()))
	f.Add(sign(f, jwt.SigningMethodHS256, k.pubPEM, mapClaims()))
	f.Add(tamper(f, issue(f, proClaims()), func(p map[string]any) { p["edition"] = "pro " }))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhY21lIn0.")
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		v := licence.NewVerifier(k.pub, token)
		for _, at := range []time.Time{iat.Add(-time.Hour), mid, exp} {
			l := v.Check(at)
			switch l.Status {
			case tollgate.LicenceInvalid:
				if l.Detail == "" {
					t.Fatalf("invalid without a detail: %+v", l)
				}
			case tollgate.LicenceValid, tollgate.LicenceExpired:
				if !genuine[strings.TrimSpace(token)] {
					t.Fatalf("a token this run did not sign verified as %s: %q", l.Status, token)
				}
			default:
				t.Fatalf("status %q", l.Status)
			}
		}
	})
}

// FuzzParseKeys: any file given as a key either parses to an RSA key of
// at least 2048 bits or is refused with a message; nothing panics.
func FuzzParseKeys(f *testing.F) {
	k := keys(f)
	f.Add(k.pubPEM)
	f.Add(k.privPEM)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		if pub, err := licence.ParsePublicKey(data); err == nil {
			if pub == nil || pub.N.BitLen() < 2048 {
				t.Fatalf("accepted public key %v", pub)
			}
		} else if err.Error() == "" {
			t.Fatal("refused without a message")
		}
		if key, err := licence.ParsePrivateKey(data); err == nil {
			if key == nil || key.N.BitLen() < 2048 {
				t.Fatalf("accepted private key of %d bits", key.N.BitLen())
			}
		} else if err.Error() == "" {
			t.Fatal("refused without a message")
		}
	})
}
