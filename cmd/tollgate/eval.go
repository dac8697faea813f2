package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/licence"
	"github.com/tollgate/tollgate/rego"
)

// maxRequestSize bounds the request read from --input or stdin, as the HTTP
// API bounds its bodies: a gate request is a few hundred bytes.
const maxRequestSize = 1 << 20

func runEval(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "eval",
		"eval --license FILE --license-key FILE [--bundle DIR] [--at RFC3339] [--lang L] [--input FILE]",
		`Decides on one request, read as JSON from --input or stdin, and prints the
decision as JSON. The licence is checked at the evaluation time, as the
server does; there is no decision store, hence no cooldown history.
Exit 0 accepted, 1 refused, 2 error (bad input, bundle or key).`)
	bundleDir := f.String("bundle", "bundles/tollgate", "the policy bundle `DIR`")
	licencePath := f.String("license", "", "the licence `FILE` (a JWT); a missing or bad licence refuses every request with licence_invalid")
	keyPath := f.String("license-key", "", "the PEM public key `FILE` that verifies the licence (required)")
	atValue := f.String("at", "", "evaluate at this `RFC3339` time instead of now")
	inputPath := f.String("input", "", "read the request from `FILE` instead of stdin (- is stdin)")
	lang := f.String("lang", "", langUsage)
	evalTimeout := f.Duration("eval-timeout", rego.DefaultEvalTimeout, "time budget of the policy evaluation (a `DURATION`): past it the request is refused with policy_error")
	verification := addVerificationFlags(f)
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	fail := f.fail
	if *evalTimeout <= 0 {
		return f.usageError("--eval-timeout %v: want a positive duration, such as 1s", *evalTimeout)
	}
	bundleKey, err := verification()
	if err != nil {
		return f.usageError("%v", err)
	}
	languages, err := messageLanguages(*lang, c.lookupEnv)
	if err != nil {
		return f.usageError("%v", err)
	}
	if *keyPath == "" {
		return fail("--license-key is required: the PEM public key that verifies the licence (see `tollgate license keygen`)")
	}
	now := c.now()
	if *atValue != "" {
		if now, err = parseTime("at", *atValue); err != nil {
			return fail("%v", err)
		}
		if err := tollgate.CheckEvaluableTime("--at", now); err != nil {
			return fail("%v", err)
		}
	}
	now = now.UTC()

	verifier, err := licence.NewVerifierFromFiles(*keyPath, *licencePath)
	if err != nil {
		return fail("%v", err)
	}

	data, err := readRequest(c.stdin, *inputPath)
	if err != nil {
		return fail("%v", err)
	}
	request, err := tollgate.DecodeRequest(data)
	if err != nil {
		return fail("invalid request: %v", err)
	}

	load := rego.LoadBundle
	if bundleKey != nil {
		load = bundleKey.LoadBundle
	}
	bundle, err := load(*bundleDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail("%v\n  --bundle (or TOLLGATE_BUNDLE) must name a bundle directory, such as bundles/tollgate", err)
		}
		return fail("%v", err)
	}
	policy, err := rego.Compile(ctx, bundle)
	if err != nil {
		return fail("%v", err)
	}
	policy = policy.WithEvalTimeout(*evalTimeout)

	langs, _ := rego.ParseAcceptLanguage(languages) // checked above
	decision := policy.Evaluate(ctx, request, tollgate.Context{Now: now, Licence: verifier.Check(now), Language: policy.Language(request, langs)})
	out, err := json.MarshalIndent(decision, "", "  ")
	if err != nil {
		return fail("encode decision: %v", err)
	}
	if _, err := fmt.Fprintf(c.stdout, "%s\n", out); err != nil {
		return fail("write decision: %v", err)
	}
	if decision.Status != tollgate.Accepted {
		return exitNo
	}
	return exitOK
}

// readRequest reads the request from path, or from stdin when path is "" or "-".
func readRequest(stdin io.Reader, path string) ([]byte, error) {
	r, name := stdin, "stdin"
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, maxRequestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read request from %s: %w", name, err)
	}
	if len(data) > maxRequestSize {
		return nil, fmt.Errorf("read request from %s: larger than %d bytes", name, maxRequestSize)
	}
	return data, nil
}
