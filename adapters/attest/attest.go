// Package attest signs recorded decisions so that a later step — the
// deploy job, an auditor — can check offline, with the public key alone,
// that tollgate made a decision and what it was (`tollgate verify-decision`).
//
// An attestation is a DSSE envelope (github.com/secure-systems-lab/dsse)
// carrying an in-toto Statement v1, signed with Ed25519:
//
//	{"payloadType": "application/vnd.in-toto+json",
//	 "payload": base64(statement),
//	 "signatures": [{"keyid": ledger.KeyID(public key), "sig": base64(Ed25519(PAE(payloadType, statement)))}]}
//
//	statement = {"_type": "https://in-toto.io/Statement/v1",
//	  "subject": [{"name": "tollgate-decision:<decision id>", "digest": {"sha256": SHA-256(JCS(predicate.decision))}}],
//	  "predicateType": "https://tollgate.dev/decision/v1",
//	  "predicate": {"decision": {…}, "request": {…}, "identity": "…", "record_digest": "…"}}
//
// predicate.decision is the decision as recorded (the evaluate reply's
// fields), predicate.request the CI payload, identity the API token that
// asked, and record_digest the ledger digest of the whole record
// (SHA-256 of its RFC 8785 form, as the ledger chains it), which names the
// record in `tollgate ledger export`. The subject digest is the same
// recipe applied to the decision alone, so that a verifier recomputes it
// from the statement, and an auditor from the record's "decision" member.
package attest

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// The names an attestation is made of.
const (
	PayloadType   = "application/vnd.in-toto+json"
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://tollgate.dev/decision/v1"
	// SubjectPrefix, then the decision ID, is the subject's name.
	SubjectPrefix = "tollgate-decision:"
)

// Envelope is a DSSE envelope, as the evaluate reply carries it.
type Envelope = dsse.Envelope

// statement is an in-toto Statement v1. The in-toto packages' own types
// come with protobuf; these four fields are all a statement is.
type statement struct {
	Type          string    `json:"_type"`
	Subject       []subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     predicate `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// predicate is what tollgate states: the decision, the request it answers
// and who asked, and where the record sits in the ledger.
type predicate struct {
	Decision     json.RawMessage  `json:"decision"`
	Request      tollgate.Request `json:"request"`
	Identity     string           `json:"identity"`
	RecordDigest string           `json:"record_digest"`
}

// Signer signs decisions with an Ed25519 key.
type Signer struct {
	keyID    string
	envelope *dsse.EnvelopeSigner
}

// NewSigner signs with key (from ledger.LoadPrivateKey).
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	k := &key25519{pub: key.Public().(ed25519.PublicKey), priv: key}
	k.id = ledger.KeyID(k.pub)
	env, err := dsse.NewEnvelopeSigner(k)
	if err != nil {
		return nil, fmt.Errorf("attestation signer: %w", err)
	}
	return &Signer{keyID: k.id, envelope: env}, nil
}

// KeyID names the signer's public key: ledger.KeyID.
func (s *Signer) KeyID() string { return s.keyID }

// Sign makes the attestation of rec, a record the store has made durable:
// sign only what the history holds.
func (s *Signer) Sign(ctx context.Context, rec tollgate.Record) (*Envelope, error) {
	decision, err := json.Marshal(rec.Decision)
	if err != nil {
		return nil, fmt.Errorf("attest decision %s: %w", rec.Decision.ID, err)
	}
	digest, err := ledger.Digest(decision)
	if err != nil {
		return nil, err
	}
	// The record as the store encodes it, so that record_digest is the
	// digest the ledger chains.
	data, err := storekit.EncodeRecord(rec)
	if err != nil {
		return nil, err
	}
	recordDigest, err := ledger.Digest(data)
	if err != nil {
		return nil, err
	}
	return s.sign(ctx, statement{
		Type:          StatementType,
		Subject:       []subject{{Name: SubjectPrefix + rec.Decision.ID, Digest: map[string]string{"sha256": ledger.Hex(digest)}}},
		PredicateType: PredicateType,
		Predicate: predicate{Decision: decision, Request: rec.Request, Identity: rec.Identity,
			RecordDigest: ledger.Hex(recordDigest)},
	})
}

func (s *Signer) sign(ctx context.Context, st statement) (*Envelope, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("attest: encode the statement: %w", err)
	}
	return s.envelope.SignPayload(ctx, PayloadType, payload)
}

// key25519 is an Ed25519 key as DSSE's Signer and Verifier.
type key25519 struct {
	id   string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey // nil for a verifier
}

func (k *key25519) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(k.priv, data), nil
}

func (k *key25519) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(k.pub, data, sig) {
		return errors.New("ed25519: invalid signature")
	}
	return nil
}

func (k *key25519) KeyID() (string, error)   { return k.id, nil }
func (k *key25519) Public() crypto.PublicKey { return k.pub }

// Attestation is what a sound attestation states.
type Attestation struct {
	Decision     tollgate.Decision
	Request      tollgate.Request
	Identity     string
	RecordDigest string // hex; the record's ledger digest
	Digest       string // hex; the subject's: SHA-256(JCS(decision))
	KeyID        string // the key that signed it
}

// Invalid is why an attestation does not verify: not well-formed, not
// signed by the key, or altered.
type Invalid struct{ Reason string }

func (e *Invalid) Error() string { return e.Reason }

func invalid(format string, args ...any) *Invalid {
	return &Invalid{Reason: fmt.Sprintf(format, args...)}
}

// Verify checks the attestation in data (a DSSE envelope as JSON) against
// pub: the envelope, its signature by pub, the statement's shape, and that
// the subject is the decision it carries. Any fault is an *Invalid.
func Verify(ctx context.Context, data []byte, pub ed25519.PublicKey) (Attestation, error) {
	var env struct {
		Envelope
		Attestation json.RawMessage `json:"attestation"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return Attestation{}, invalid("not a DSSE envelope (JSON): %v", err)
	}
	switch {
	case env.PayloadType == "" && env.Payload == "" && len(env.Attestation) > 0:
		return Attestation{}, invalid("this is an evaluate reply, not an attestation: its \"attestation\" member is (tollgate check --attestation-out FILE writes it)")
	case env.PayloadType == "" || env.Payload == "":
		return Attestation{}, invalid("not a DSSE envelope: payloadType and payload are required")
	case env.PayloadType != PayloadType:
		return Attestation{}, invalid("payloadType is %q, not %q: not a tollgate decision attestation", env.PayloadType, PayloadType)
	case len(env.Signatures) == 0:
		return Attestation{}, invalid("the envelope is not signed: it has no signatures")
	}
	keyID := ledger.KeyID(pub)
	var ids []string
	for _, s := range env.Signatures {
		ids = append(ids, s.KeyID)
	}
	if !slices.Contains(ids, keyID) {
		return Attestation{}, invalid("signed by key %s, not by the key given (%s)", strings.Join(ids, ", "), keyID)
	}
	if _, err := env.DecodeB64Payload(); err != nil {
		return Attestation{}, invalid("the payload is not base64: %v", err)
	}
	verifier, err := dsse.NewEnvelopeVerifier(&key25519{id: keyID, pub: pub})
	if err != nil {
		return Attestation{}, err
	}
	_, payload, err := verifier.VerifyAndDecode(ctx, &env.Envelope)
	if err != nil {
		return Attestation{}, invalid("the signature of key %s is not valid: the attestation was altered after it was signed", keyID)
	}
	a, err := parseStatement(payload)
	if err != nil {
		return Attestation{}, err
	}
	a.KeyID = keyID
	return a, nil
}

// parseStatement checks a signed statement's shape and its subject.
func parseStatement(payload []byte) (Attestation, error) {
	var st statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return Attestation{}, invalid("the payload is not an in-toto statement: %v", err)
	}
	switch {
	case st.Type != StatementType:
		return Attestation{}, invalid("the statement's _type is %q, not %q", st.Type, StatementType)
	case st.PredicateType != PredicateType:
		return Attestation{}, invalid("the statement's predicateType is %q, not %q", st.PredicateType, PredicateType)
	case len(st.Subject) != 1:
		return Attestation{}, invalid("the statement has %d subjects; a decision attestation has one", len(st.Subject))
	case len(st.Predicate.Decision) == 0 || string(st.Predicate.Decision) == "null":
		return Attestation{}, invalid("the statement's predicate has no decision")
	}
	sub := st.Subject[0]
	want, ok := sub.Digest["sha256"]
	if _, err := hex.DecodeString(want); !ok || err != nil || len(want) != 2*ledger.HashSize {
		return Attestation{}, invalid("the subject has no sha256 digest (64 hex digits)")
	}
	got, err := ledger.Digest(st.Predicate.Decision)
	if err != nil {
		return Attestation{}, invalid("the predicate's decision: %v", err)
	}
	if ledger.Hex(got) != strings.ToLower(want) {
		return Attestation{}, invalid("the subject digest %s is not the digest of the decision in the predicate (%s)", want, ledger.Hex(got))
	}
	var d tollgate.Decision
	if err := json.Unmarshal(st.Predicate.Decision, &d); err != nil {
		return Attestation{}, invalid("the predicate's decision: %v", err)
	}
	switch {
	case d.ID == "" || sub.Name != SubjectPrefix+d.ID:
		return Attestation{}, invalid("the subject %q does not name the decision in the predicate (%q)", sub.Name, SubjectPrefix+d.ID)
	case d.Status != tollgate.Accepted && d.Status != tollgate.Refused:
		return Attestation{}, invalid("the decision's status is %q, neither accepted nor refused", d.Status)
	case d.EvaluatedAt.IsZero():
		return Attestation{}, invalid("the decision has no evaluated_at")
	}
	return Attestation{Decision: d, Request: st.Predicate.Request, Identity: st.Predicate.Identity,
		RecordDigest: st.Predicate.RecordDigest, Digest: ledger.Hex(got)}, nil
}
