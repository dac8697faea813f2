package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/tollgate/tollgate/rego"
)

func runBundle(_ context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		bundleUsage(c.stderr)
		return exitError
	}
	command, args := args[0], args[1:]
	switch command {
	case "sign":
		return runBundleSign(c, args)
	case "verify":
		return runBundleVerify(c, args)
	case "help", "-h", "-help", "--help":
		bundleUsage(c.stdout)
		return exitOK
	default:
		fmt.Fprintf(c.stderr, "tollgate bundle: unknown command %q; want sign or verify\n", command)
		return exitError
	}
}

func bundleUsage(w io.Writer) {
	fmt.Fprint(w, `usage: tollgate bundle <command> [flags] DIR

Bundles are signed in OPA's format: DIR/.signatures.json holds one JWT that
lists every file of the bundle with its SHA-256. `+"`opa sign --bundle .`"+` run in
DIR writes the same file. A server started with --bundle-verification-key
serves only bundles whose signature verifies.

Commands:
  sign     --signing-key PRIVATE.pem [--key-id ID] DIR
                                     write DIR/.signatures.json
  verify   --bundle-verification-key PUBLIC.pem DIR
                                     check DIR as the server would; exit 0 valid

Run "tollgate bundle <command> -h" for all the flags of a command.
`)
}

func runBundleSign(c *cli, args []string) int {
	f := newFlags(c, "bundle sign", "bundle sign --signing-key PRIVATE.pem [--key-id ID] [--signing-alg ALG] DIR",
		`Signs the bundle in DIR: writes DIR/.signatures.json in OPA's bundle signing
format, covering every file of the bundle (dot-files such as editor backups
excluded), named relative to DIR. Sign after the last change: any later
change, added or removed file makes the signature fail on the server, which
then keeps serving the bundle it has.`)
	keyPath := f.String("signing-key", "", "the PEM private key `FILE` (RSA or ECDSA) that signs; keep it with the bundle authors, never on the server")
	keyID := f.String("key-id", "", "put this key `ID` in the signature (the JWT's kid and keyid claim)")
	alg := f.String("signing-alg", "", "the JWT algorithm `ALG`: RS256 (default for RSA), RS384, RS512, PS256, PS384, PS512, or ES256/ES384/ES512 (from the ECDSA curve)")
	dir, code, ok := parseBundleDir(f, args)
	if !ok {
		return code
	}
	if *keyPath == "" {
		return f.usageError("--signing-key is required: the PEM private key that signs the bundle")
	}
	key, err := rego.LoadSigningKey(*keyPath)
	if err != nil {
		return f.fail("%v", err)
	}
	files, err := rego.SignBundle(dir, key, *keyID, *alg)
	if err != nil {
		return f.fail("%v", err)
	}
	fmt.Fprintf(c.stdout, "signed %d files of %s into %s\n", len(files), dir, filepath.Join(dir, rego.SignaturesFile))
	return exitOK
}

func runBundleVerify(c *cli, args []string) int {
	f := newFlags(c, "bundle verify", "bundle verify --bundle-verification-key PUBLIC.pem DIR",
		`Checks the bundle in DIR as `+"`serve --bundle-verification-key`"+` would: the
signature verifies with the key, every file is signed with its hash, no
signed file is missing, and the bundle loads. Exit 0 when it does, 2 with the
reason otherwise.`)
	verification := addVerificationFlags(f)
	dir, code, ok := parseBundleDir(f, args)
	if !ok {
		return code
	}
	v, err := verification()
	if err != nil {
		return f.fail("%v", err)
	}
	if v == nil {
		return f.usageError("--bundle-verification-key is required: the PEM public key that verifies the bundle")
	}
	b, err := v.LoadBundle(dir)
	if err != nil {
		return f.fail("%v", err)
	}
	fmt.Fprintf(c.stdout, "%s: signature verified with key %q (%s), revision %s\n", dir, v.KeyID(), v.Algorithm(), b.Revision)
	return exitOK
}

// parseBundleDir parses the flags and the one DIR argument.
func parseBundleDir(f *flags, args []string) (dir string, code int, ok bool) {
	rest, err := f.parse(args)
	if err != nil {
		return "", exitCode(err), false
	}
	if len(rest) != 1 {
		return "", f.usageError("want one bundle directory, got %d arguments", len(rest)), false
	}
	return rest[0], exitOK, true
}

// addVerificationFlags adds the flags of bundle signature verification and
// returns what builds it once they are parsed: nil without a key.
func addVerificationFlags(f *flags) func() (*rego.Verification, error) {
	key := f.String("bundle-verification-key", "", "serve only bundles signed with the private key of this PEM public key `FILE` (RSA or ECDSA); see `tollgate bundle sign`")
	keyID := f.String("bundle-verification-key-id", rego.DefaultKeyID, "the verification key's `ID`; the key is used whatever kid the signature names")
	alg := f.String("bundle-verification-alg", "", "the JWT algorithm `ALG` signatures must use (default: RS256 for an RSA key, ES256/384/512 from the ECDSA curve)")
	scope := f.String("bundle-verification-scope", "", "the `SCOPE` claim signatures must carry (default none, as `opa sign` writes)")
	return func() (*rego.Verification, error) {
		if *key == "" {
			for name, v := range map[string]string{"bundle-verification-alg": *alg, "bundle-verification-scope": *scope} {
				if v != "" {
					return nil, fmt.Errorf("--%s needs --bundle-verification-key", name)
				}
			}
			return nil, nil
		}
		return rego.LoadVerification(*key, *keyID, *alg, *scope)
	}
}
