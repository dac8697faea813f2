package attest

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

var decidedAt = time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)

func record(status tollgate.Status) tollgate.Record {
	d := tollgate.Decision{ID: "019ab1c2-3d4e-7f00-8a1b-2c3d4e5f6a7b", Status: status, Reasons: []tollgate.Reason{},
		Warnings: []tollgate.Reason{}, Project: "service-api", Pipeline: "deploy-prod", Branch: "main",
		Environment: "production", BundleRevision: "sha256:8d889ad99e87ae90", EvaluatedAt: decidedAt}
	if status == tollgate.Refused {
		d.Reasons = []tollgate.Reason{{Code: tollgate.CodeCooldown, Message: "An accepted deployment less than 30 minutes ago."}}
		d.Waived = []tollgate.Reason{{Code: tollgate.CodeFreezeActive, Message: "Black Friday <&> freeze."}}
	}
	return tollgate.Record{
		Decision: d,
		Request: tollgate.Request{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod",
			Metadata: tollgate.Metadata{Initiator: "jane", RunID: "run-42", Environment: "production"}},
		Context:  tollgate.Context{Now: decidedAt, Licence: tollgate.Licence{Status: tollgate.LicenceValid}},
		Identity: "ci",
	}
}

func newKey(t testing.TB) (ed25519.PublicKey, *Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pub, s
}

func encode(t *testing.T, env *Envelope) []byte {
	t.Helper()
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// wantInvalid verifies data with pub and wants an *Invalid saying want.
func wantInvalid(t *testing.T, data []byte, pub ed25519.PublicKey, want string) {
	t.Helper()
	a, err := Verify(context.Background(), data, pub)
	var inv *Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("Verify = %+v, %v; want an *Invalid", a, err)
	}
	if !strings.Contains(inv.Reason, want) {
		t.Fatalf("Verify: %q; want it to say %q", inv.Reason, want)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, status := range []tollgate.Status{tollgate.Accepted, tollgate.Refused} {
		t.Run(string(status), func(t *testing.T) {
			pub, s := newKey(t)
			rec := record(status)
			env, err := s.Sign(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if env.PayloadType != PayloadType || len(env.Signatures) != 1 || env.Signatures[0].KeyID != ledger.KeyID(pub) || s.KeyID() != ledger.KeyID(pub) {
				t.Fatalf("envelope %+v", env)
			}
			a, err := Verify(context.Background(), encode(t, env), pub)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(a.Decision)
			want, _ := json.Marshal(rec.Decision)
			if string(got) != string(want) || a.Request != rec.Request || a.Identity != "ci" || a.KeyID != ledger.KeyID(pub) {
				t.Fatalf("verified %+v\n decision %s\n want     %s", a, got, want)
			}
			digest, _ := ledger.Digest(want)
			if a.Digest != ledger.Hex(digest) {
				t.Errorf("subject digest %s; want SHA-256(JCS(decision)) %s", a.Digest, ledger.Hex(digest))
			}
		})
	}
}

// The statement is the in-toto Statement v1 the package comment shows,
// readable by any in-toto tool.
func TestStatementShape(t *testing.T) {
	_, s := newKey(t)
	env, err := s.Sign(context.Background(), record(tollgate.Accepted))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	subject := st["subject"].([]any)[0].(map[string]any)
	predicate := st["predicate"].(map[string]any)
	if st["_type"] != StatementType || st["predicateType"] != PredicateType ||
		subject["name"] != "tollgate-decision:019ab1c2-3d4e-7f00-8a1b-2c3d4e5f6a7b" ||
		len(subject["digest"].(map[string]any)["sha256"].(string)) != 64 ||
		predicate["decision"].(map[string]any)["status"] != "accepted" ||
		predicate["request"].(map[string]any)["repository"] != "org/service-api" ||
		predicate["identity"] != "ci" || len(predicate["record_digest"].(string)) != 64 {
		t.Fatalf("statement %s", payload)
	}
}

// record_digest is the digest the ledger chains for the record: a real
// store records the decision, and the attestation names that record.
func TestRecordDigestIsTheLedgers(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := store.Decide(ctx, nil, func(tollgate.Cooldown) (tollgate.Record, error) { return record(tollgate.Refused), nil })
	if err != nil {
		t.Fatal(err)
	}
	pub, s := newKey(t)
	env, err := s.Sign(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Verify(ctx, encode(t, env), pub)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := store.LedgerEntries(ctx, 1, 1, func(e tollgate.LedgerEntry) error { stored = e.Record; return nil }); err != nil {
		t.Fatal(err)
	}
	digest, err := ledger.Digest(stored)
	if err != nil {
		t.Fatal(err)
	}
	if a.RecordDigest != ledger.Hex(digest) {
		t.Fatalf("record_digest %s; the ledger's digest of the stored record is %s", a.RecordDigest, ledger.Hex(digest))
	}
}

func TestTamperedPayloadIsInvalid(t *testing.T) {
	pub, s := newKey(t)
	env, err := s.Sign(context.Background(), record(tollgate.Refused))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	// Turn the refusal into an acceptance, keeping the statement consistent
	// except for its signature.
	forged := strings.Replace(string(payload), `"status":"refused"`, `"status":"accepted"`, 1)
	if forged == string(payload) {
		t.Fatalf("no status in %s", payload)
	}
	env.Payload = base64.StdEncoding.EncodeToString([]byte(forged))
	wantInvalid(t, encode(t, env), pub, "not valid: the attestation was altered")

	env.Payload = "%%% not base64 %%%"
	wantInvalid(t, encode(t, env), pub, "payload is not base64")
}

func TestBadSignatureIsInvalid(t *testing.T) {
	pub, s := newKey(t)
	env, err := s.Sign(context.Background(), record(tollgate.Accepted))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	sig[0] ^= 1
	env.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
	wantInvalid(t, encode(t, env), pub, "not valid")

	env.Signatures = nil
	wantInvalid(t, encode(t, env), pub, "not signed")
}

func TestWrongKeyIsInvalid(t *testing.T) {
	_, s := newKey(t)
	other, _ := newKey(t)
	env, err := s.Sign(context.Background(), record(tollgate.Accepted))
	if err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, encode(t, env), other, "signed by key "+s.KeyID()+", not by the key given ("+ledger.KeyID(other)+")")

	// A signature that claims the other key's ID is still checked with it.
	env.Signatures[0].KeyID = ledger.KeyID(other)
	wantInvalid(t, encode(t, env), other, "not valid")
}

func TestWrongPayloadTypeIsInvalid(t *testing.T) {
	pub, s := newKey(t)
	payload, _ := json.Marshal(map[string]any{"_type": StatementType})
	// Signed by the right key, but as another kind of payload.
	env, err := s.envelope.SignPayload(context.Background(), "application/json", payload)
	if err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, encode(t, env), pub, `payloadType is "application/json"`)
}

// Statements signed by the right key but not well formed: a signer's bug
// must not pass.
func TestMalformedStatementsAreInvalid(t *testing.T) {
	pub, s := newKey(t)
	good := func() statement {
		rec := record(tollgate.Accepted)
		decision, _ := json.Marshal(rec.Decision)
		digest, _ := ledger.Digest(decision)
		return statement{Type: StatementType, PredicateType: PredicateType,
			Subject:   []subject{{Name: SubjectPrefix + rec.Decision.ID, Digest: map[string]string{"sha256": ledger.Hex(digest)}}},
			Predicate: predicate{Decision: decision, Request: rec.Request}}
	}
	for _, c := range []struct {
		name   string
		change func(*statement)
		want   string
	}{
		{"subject digest mismatch", func(st *statement) { st.Subject[0].Digest["sha256"] = strings.Repeat("ab", 32) },
			"is not the digest of the decision in the predicate"},
		{"decision changed under its digest", func(st *statement) {
			st.Predicate.Decision = json.RawMessage(strings.Replace(string(st.Predicate.Decision), `"main"`, `"feature/x"`, 1))
		}, "is not the digest of the decision in the predicate"},
		{"no sha256", func(st *statement) { st.Subject[0].Digest = map[string]string{"sha512": "00"} }, "no sha256 digest"},
		{"subject names another decision", func(st *statement) { st.Subject[0].Name = SubjectPrefix + "other" }, "does not name the decision"},
		{"two subjects", func(st *statement) { st.Subject = append(st.Subject, st.Subject[0]) }, "2 subjects"},
		{"wrong _type", func(st *statement) { st.Type = "https://in-toto.io/Statement/v0.1" }, "_type"},
		{"wrong predicateType", func(st *statement) { st.PredicateType = "https://slsa.dev/provenance/v1" }, "predicateType"},
		{"no decision", func(st *statement) { st.Predicate.Decision = nil }, "no decision"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := good()
			c.change(&st)
			env, err := s.sign(context.Background(), st)
			if err != nil {
				t.Fatal(err)
			}
			wantInvalid(t, encode(t, env), pub, c.want)
		})
	}
	env, err := s.sign(context.Background(), good())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), encode(t, env), pub); err != nil {
		t.Fatalf("the unchanged statement: %v", err)
	}
}

func TestNotAnEnvelopeIsInvalid(t *testing.T) {
	pub, s := newKey(t)
	wantInvalid(t, []byte(`{"payloadType":`), pub, "not a DSSE envelope (JSON)")
	wantInvalid(t, []byte(`{}`), pub, "payloadType and payload are required")
	env, err := s.Sign(context.Background(), record(tollgate.Accepted))
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := json.Marshal(map[string]any{"decision_id": "x", "status": "accepted", "attestation": env})
	wantInvalid(t, reply, pub, "this is an evaluate reply")
}

func TestMismatches(t *testing.T) {
	pub, s := newKey(t)
	env, err := s.Sign(context.Background(), record(tollgate.Accepted))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Verify(context.Background(), encode(t, env), pub)
	if err != nil {
		t.Fatal(err)
	}
	now := decidedAt.Add(10 * time.Minute)
	all := Expect{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod", RunID: "run-42",
		Environment: "production", MaxAge: 15 * time.Minute}
	if m := a.Mismatches(all, now); len(m) != 0 {
		t.Fatalf("every expectation holds, got %q", m)
	}
	if m := a.Mismatches(Expect{}, now.Add(1000*time.Hour)); len(m) != 0 {
		t.Fatalf("no expectation, got %q", m)
	}
	for _, c := range []struct {
		change func(*Expect)
		want   string
	}{
		{func(e *Expect) { e.Repository = "org/other" }, `--repository org/other: the decision is for repository "org/service-api"`},
		{func(e *Expect) { e.Branch = "release/1" }, `--branch release/1: the decision is for branch "main"`},
		{func(e *Expect) { e.Pipeline = "hotfix-prod" }, `--pipeline hotfix-prod: the decision is for pipeline "deploy-prod"`},
		{func(e *Expect) { e.RunID = "run-43" }, `--run-id run-43: the decision is for run ID "run-42"`},
		{func(e *Expect) { e.Environment = "staging" }, `--environment staging: the decision is for environment "production"`},
		{func(e *Expect) { e.MaxAge = 5 * time.Minute }, "--max-age 5m0s: the decision was made 10m0s ago, at 2026-11-23T09:00:00Z"},
	} {
		e := all
		c.change(&e)
		if m := a.Mismatches(e, now); len(m) != 1 || m[0] != c.want {
			t.Errorf("Mismatches = %q; want [%q]", m, c.want)
		}
	}
	two := all
	two.Branch, two.Environment = "x", "y"
	if m := a.Mismatches(two, now); len(m) != 2 {
		t.Errorf("two expectations fail, got %q", m)
	}
}
