package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/licence"
)

// Key file names written by keygen, as the contract names them.
const (
	privateKeyFile = "license-private.pem"
	publicKeyFile  = "license-public.pem"
)

func runLicense(_ context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		licenseUsage(c.stderr)
		return exitError
	}
	command, args := args[0], args[1:]
	switch command {
	case "keygen":
		return runLicenseKeygen(c, args)
	case "issue":
		return runLicenseIssue(c, args)
	case "verify":
		return runLicenseVerify(c, args)
	case "help", "-h", "-help", "--help":
		licenseUsage(c.stdout)
		return exitOK
	default:
		fmt.Fprintf(c.stderr, "tollgate license: unknown command %q; want keygen, issue or verify\n", command)
		return exitError
	}
}

func licenseUsage(w io.Writer) {
	fmt.Fprint(w, `usage: tollgate license <command> [flags]

Licences are JWTs signed RS256 with the vendor's RSA private key; tollgate
holds only the public key (--license-key).

Commands:
  keygen   --out DIR                     write a new key pair into DIR
  issue    --key PRIVATE.pem --subject NAME --expires RFC3339
                                         print a signed licence
  verify   --key PUBLIC.pem FILE         check a licence; exit 0 valid, 1 not valid

Run "tollgate license <command> -h" for all the flags of a command.
`)
}

func runLicenseKeygen(c *cli, args []string) int {
	f := newFlags(c, "license keygen", "license keygen --out DIR [--force] [--bits N]",
		`Writes a new RSA key pair for signing licences: DIR/`+privateKeyFile+` (mode
0600: the vendor's secret, it signs licences) and DIR/`+publicKeyFile+` (0644:
given to tollgate with --license-key). Existing files are kept unless --force:
replacing the key invalidates every licence the old one signed.`)
	out := f.String("out", "", "write the key files into `DIR` (created if missing)")
	force := f.Bool("force", false, "replace existing key files")
	bits := f.Int("bits", 3072, "RSA key size in `BITS` (2048 at least)")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	fail := f.fail
	if *out == "" {
		return fail("--out is required: the directory to write %s and %s into", privateKeyFile, publicKeyFile)
	}
	privatePath, publicPath := filepath.Join(*out, privateKeyFile), filepath.Join(*out, publicKeyFile)
	if !*force {
		for _, path := range []string{privatePath, publicPath} {
			if _, err := os.Lstat(path); err == nil {
				return fail("%s already exists: keep it (licences it verifies stay valid) or pass --force to replace the key pair", path)
			}
		}
	}
	privatePEM, publicPEM, err := licence.GenerateKey(*bits)
	if err != nil {
		return fail("%v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fail("%v", err)
	}
	if err := writeKeyFile(privatePath, privatePEM, 0o600, *force); err != nil {
		return fail("%v", err)
	}
	if err := writeKeyFile(publicPath, publicPEM, 0o644, *force); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(c.stdout, "wrote %s (keep it secret: it signs licences)\n", privatePath)
	fmt.Fprintf(c.stdout, "wrote %s (give it to tollgate: --license-key)\n", publicPath)
	return exitOK
}

// writeKeyFile writes data to path with exactly mode perm, whatever the umask
// or the mode of the file it replaces. Without overwrite it never replaces a
// file, even one created since the check above.
func writeKeyFile(path string, data []byte, perm fs.FileMode, overwrite bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if overwrite {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: pass --force to replace it", path)
	}
	if err != nil {
		return err
	}
	// Set the mode before writing, so that a replaced public file never
	// holds a private key readable by others, even for a moment.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runLicenseIssue(c *cli, args []string) int {
	f := newFlags(c, "license issue",
		"license issue --key PRIVATE.pem --subject NAME (--expires RFC3339 | --valid-for DURATION) [--edition pro] [--not-before RFC3339] [--issued-at RFC3339]",
		`Signs a licence with the vendor's private key and prints it (a JWT) on stdout.
The licence is valid from --issued-at (or --not-before, if later) until
--expires, exclusive.`)
	keyPath := f.String("key", "", "the PEM private key `FILE` that signs licences (from `tollgate license keygen`)")
	subject := f.String("subject", "", "the customer `NAME` (the sub claim)")
	expires := f.String("expires", "", "the `RFC3339` time the licence expires")
	validFor := f.Duration("valid-for", 0, "instead of --expires: how long the licence lasts from its issue time, as a Go `DURATION` such as 8760h")
	edition := f.String("edition", licence.RequiredEdition, "the `EDITION`; only \"pro\" lets tollgate evaluate")
	notBefore := f.String("not-before", "", "the `RFC3339` time the licence starts (default: its issue time)")
	issuedAt := f.String("issued-at", "", "the `RFC3339` issue time (default now)")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	fail := f.fail
	var err error
	switch {
	case *keyPath == "":
		return fail("--key is required: the PEM private key that signs licences (see `tollgate license keygen`)")
	case *subject == "":
		return fail("--subject is required: the customer the licence is for")
	case *expires == "" && *validFor == 0:
		return fail("--expires is required: the RFC 3339 time the licence expires, such as 2027-11-23T00:00:00Z (or --valid-for 8760h)")
	case *expires != "" && *validFor != 0:
		return fail("--expires and --valid-for both set: give one")
	case *validFor < 0:
		return fail("--valid-for %v: want a positive duration", *validFor)
	}
	claims := licence.Claims{Subject: *subject, Edition: *edition, IssuedAt: c.now()}
	if *issuedAt != "" {
		if claims.IssuedAt, err = parseTime("issued-at", *issuedAt); err != nil {
			return fail("%v", err)
		}
	}
	if *notBefore != "" {
		if claims.NotBefore, err = parseTime("not-before", *notBefore); err != nil {
			return fail("%v", err)
		}
	}
	if *expires != "" {
		if claims.ExpiresAt, err = parseTime("expires", *expires); err != nil {
			return fail("%v", err)
		}
	} else {
		claims.ExpiresAt = claims.IssuedAt.Add(*validFor)
	}

	data, err := os.ReadFile(*keyPath)
	if err != nil {
		return fail("read signing key: %v", err)
	}
	key, err := licence.ParsePrivateKey(data)
	if err != nil {
		return fail("signing key %s: %v", *keyPath, err)
	}
	token, err := licence.Issue(key, claims)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(c.stdout, token)
	return exitOK
}

func runLicenseVerify(c *cli, args []string) int {
	f := newFlags(c, "license verify", "license verify --key PUBLIC.pem [--at RFC3339] [--json] FILE",
		`Checks the licence in FILE against the vendor's public key, at --at or now, as
tollgate does on every evaluation. Exit 0 valid, 1 invalid or expired (or not
yet valid), 2 usage error or unusable key.`)
	keyPath := f.String("key", "", "the PEM public key `FILE` that verifies licences (what tollgate gets as --license-key)")
	atValue := f.String("at", "", "check at this `RFC3339` time instead of now")
	asJSON := f.Bool("json", false, "print a JSON object instead of text")
	files, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	if len(files) != 1 {
		return f.usageError("want one licence FILE, got %d arguments", len(files))
	}
	fail := f.fail
	if *keyPath == "" {
		return fail("--key is required: the PEM public key that verifies licences (see `tollgate license keygen`)")
	}
	at := c.now()
	if *atValue != "" {
		if at, err = parseTime("at", *atValue); err != nil {
			return fail("%v", err)
		}
	}
	verifier, err := licence.NewVerifierFromFiles(*keyPath, files[0])
	if err != nil {
		return fail("%v", err)
	}
	l := verifier.Check(at)

	if *asJSON {
		out, err := json.MarshalIndent(licenceReport(l, at), "", "  ")
		if err != nil {
			return fail("encode: %v", err)
		}
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else {
		fmt.Fprintf(c.stdout, "status:  %s\n", l.Status)
		if l.Detail != "" {
			fmt.Fprintf(c.stdout, "detail:  %s\n", l.Detail)
		}
		fmt.Fprintf(c.stdout, "subject: %s\nedition: %s\n", orUnknown(l.Subject), orUnknown(l.Edition))
		if !l.ExpiresAt.IsZero() {
			fmt.Fprintf(c.stdout, "expires: %s\n", l.ExpiresAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(c.stdout, "checked: %s\n", at.UTC().Format(time.RFC3339))
	}
	if l.Status != tollgate.LicenceValid {
		return exitNo
	}
	return exitOK
}

// licenceJSON is what `license verify --json` prints.
type licenceJSON struct {
	Status    tollgate.LicenceState `json:"status"`
	Detail    string                `json:"detail,omitempty"`
	Subject   string                `json:"subject"`
	Edition   string                `json:"edition"`
	ExpiresAt *time.Time            `json:"expires_at,omitempty"`
	CheckedAt time.Time             `json:"checked_at"`
}

func licenceReport(l tollgate.Licence, at time.Time) licenceJSON {
	r := licenceJSON{Status: l.Status, Detail: l.Detail, Subject: l.Subject, Edition: l.Edition, CheckedAt: at.UTC()}
	if !l.ExpiresAt.IsZero() {
		exp := l.ExpiresAt.UTC()
		r.ExpiresAt = &exp
	}
	return r
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
