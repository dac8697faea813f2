package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/attest"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// maxAttestation bounds what verify-decision reads: an attestation is a
// few kilobytes.
const maxAttestation = 4 << 20

func runVerifyDecision(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "verify-decision",
		"verify-decision --key PUBLIC.pem [--repository R] [--branch B] [--pipeline P] [--run-id ID] [--environment E] [--max-age DURATION] FILE|-",
		`Checks a decision attestation before deploying: FILE (or - for stdin) is the
DSSE envelope that `+"`tollgate check --attestation-out FILE`"+` writes, from a server
started with --attestation-signing-key. It checks the Ed25519 signature
with --key (the public key of `+"`tollgate ledger keygen`"+`), the in-toto statement,
that its subject is the digest of the decision it carries, and the
expectations given, then prints one line: the status, the decision ID,
repository, branch, pipeline, environment, when it was decided, the key.

Exit 0 if the attestation is valid, the decision accepted and every
expectation holds; 1 if it is valid but the decision was refused, or an
expectation fails (each is named); 2 if it is not valid (not signed by
--key, altered, malformed: the reason is given) or on a usage error. A
deploy step should go ahead on 0 only.`)
	keyPath := f.String("key", "", "the Ed25519 public key `FILE` (PEM PKIX) the attestation must be signed with (required)")
	repository := f.String("repository", "", "require the decision to be for this `REPOSITORY`, such as org/service-api")
	branch := f.String("branch", "", "require the decision to be for this `BRANCH`")
	pipeline := f.String("pipeline", "", "require the decision to be for this `PIPELINE`")
	runID := f.String("run-id", "", "require the decision to be for this CI run `ID`")
	environment := f.String("environment", "", "require the decision to be for this `ENVIRONMENT`")
	maxAge := f.Duration("max-age", 0, "require the decision to be at most this `DURATION` old, such as 15m; 0 accepts any age")
	rest, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	switch {
	case len(rest) != 1:
		return f.usageError("want one attestation FILE (or - for stdin)")
	case *keyPath == "":
		return f.usageError("--key is required: the public key whose private half the server signs with (--attestation-signing-key)")
	case *maxAge < 0:
		return f.usageError("--max-age %v: want a positive duration, such as 15m, or 0 for any age", *maxAge)
	}
	pub, err := ledger.LoadPublicKey(*keyPath)
	if err != nil {
		return f.fail("--key: %v", err)
	}
	data, err := readAttestation(c.stdin, rest[0])
	if err != nil {
		return f.fail("%v", err)
	}
	a, err := attest.Verify(ctx, data, pub)
	var invalid *attest.Invalid
	switch {
	case errors.As(err, &invalid):
		return f.fail("invalid attestation, do not deploy: %v", invalid)
	case err != nil:
		return f.fail("%v", err)
	}

	d := a.Decision
	fmt.Fprintf(c.stdout, "%s: decision %s for %s, branch %s, pipeline %s, environment %s, decided at %s, signed by key %s\n",
		d.Status, d.ID, a.Request.Repository, d.Branch, d.Pipeline, d.Environment,
		d.EvaluatedAt.UTC().Format(time.RFC3339Nano), a.KeyID)
	for _, r := range d.Reasons {
		fmt.Fprintf(c.stdout, "  reason  %s: %s\n", r.Code, r.Message)
	}
	mismatches := a.Mismatches(attest.Expect{Repository: *repository, Branch: *branch, Pipeline: *pipeline,
		RunID: *runID, Environment: *environment, MaxAge: *maxAge}, c.now())
	for _, m := range mismatches {
		fmt.Fprintf(c.stdout, "  does not match %s\n", m)
	}
	if d.Status != tollgate.Accepted || len(mismatches) > 0 {
		return exitNo
	}
	return exitOK
}

// readAttestation reads path, or stdin for "-".
func readAttestation(stdin io.Reader, path string) ([]byte, error) {
	r := stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		r = file
	}
	data, err := io.ReadAll(io.LimitReader(r, maxAttestation+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxAttestation {
		return nil, fmt.Errorf("%s is larger than %d MiB: not an attestation", path, maxAttestation>>20)
	}
	return data, nil
}

// loadAttestor reads the attestation signing key at path; nil for no path.
func loadAttestor(path string) (*attest.Signer, error) {
	key, err := loadSigner(path)
	if key == nil || err != nil {
		return nil, err
	}
	return attest.NewSigner(key)
}

// writeAttestation writes the attestation of the evaluate reply raw to
// path; an error if the server gave none.
func writeAttestation(path string, raw []byte) error {
	var reply struct {
		ID          string          `json:"decision_id"`
		Attestation json.RawMessage `json:"attestation"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return fmt.Errorf("--attestation-out: %v", err)
	}
	if len(reply.Attestation) == 0 || string(reply.Attestation) == "null" {
		return fmt.Errorf("--attestation-out: the server returned no attestation for decision %s: start tollgate serve with --attestation-signing-key FILE (a key from `tollgate ledger keygen`) to have every decision signed", reply.ID)
	}
	if err := os.WriteFile(path, append(reply.Attestation, '\n'), 0o644); err != nil {
		return fmt.Errorf("--attestation-out: %w", err)
	}
	return nil
}
