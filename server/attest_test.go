package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/attest"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// replyFields are the evaluate reply's fields of design §4, there with or
// without an attestation.
var replyFields = []string{"decision_id", "status", "reasons", "warnings", "project", "pipeline",
	"branch", "environment", "bundle_revision", "evaluated_at"}

func TestEvaluateRepliesCarryAVerifiableAttestation(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(c *Config) { c.Dev, c.Attestor = true, signer })

	for _, c := range []struct {
		name, body, status string
	}{
		{"accepted", exampleRequest, "accepted"},
		{"refused", strings.Replace(exampleRequest, `"main"`, `"feature/x"`, 1), "refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, reply := f.post("/v1/evaluate", c.body)
			if code != http.StatusOK || reply["status"] != c.status {
				t.Fatalf("evaluate: %d %v; want 200 %s", code, reply, c.status)
			}
			for _, field := range replyFields {
				if _, ok := reply[field]; !ok {
					t.Errorf("the reply lost %q: %v", field, reply)
				}
			}
			env, err := json.Marshal(reply["attestation"])
			if err != nil {
				t.Fatal(err)
			}
			a, err := attest.Verify(context.Background(), env, pub)
			if err != nil {
				t.Fatalf("the reply's attestation does not verify: %v\n%s", err, env)
			}
			if a.Decision.ID != reply["decision_id"] || string(a.Decision.Status) != c.status ||
				a.Request.Repository != "org/service-api" || a.Request.Metadata.RunID != "123456789" ||
				a.Identity != tollgate.DevIdentity || a.KeyID != ledger.KeyID(pub) {
				t.Fatalf("attested %+v; reply %v", a, reply)
			}
			// What is signed is what the history holds.
			rec, err := f.store.Decision(context.Background(), a.Decision.ID)
			if err != nil {
				t.Fatal(err)
			}
			signed, _ := json.Marshal(a.Decision)
			recorded, _ := json.Marshal(rec.Decision)
			if string(signed) != string(recorded) {
				t.Fatalf("signed decision %s\nrecorded        %s", signed, recorded)
			}
		})
	}
}

func TestEvaluateRepliesCarryNoAttestationWithoutAKey(t *testing.T) {
	f := newFixture(t)
	code, reply := f.post("/v1/evaluate", exampleRequest)
	if code != http.StatusOK || reply["status"] != "accepted" {
		t.Fatalf("evaluate: %d %v", code, reply)
	}
	if _, ok := reply["attestation"]; ok {
		t.Fatalf("a server without an attestation key attested: %v", reply)
	}
	for _, field := range replyFields {
		if _, ok := reply[field]; !ok {
			t.Errorf("the reply lost %q: %v", field, reply)
		}
	}
}
