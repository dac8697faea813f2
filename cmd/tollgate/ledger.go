package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// Key file names written by ledger keygen.
const (
	ledgerPrivateKeyFile = "ledger-private.pem"
	ledgerPublicKeyFile  = "ledger-public.pem"
)

const ledgerUsage = `usage: tollgate ledger <command> [flags]

The decision history is a hash chain: each record holds the hash of the one
before it (SHA-256 over the previous hash and the SHA-256 of the record's
RFC 8785 canonical JSON), so that a record altered, deleted or inserted
around tollgate breaks the chain. The store flags are serve's:
[--data-dir DIR | --database-url URL].

Commands:
  verify          check the chain, the columns served beside it and the
                  cooldowns, read-only; exit 0 sound, 1 broken (names the
                  first broken record), 2 could not check
  export          stream the chain as NDJSON, filtered as GET /v1/decisions,
                  its end signed with --ledger-signing-key
  verify-export   check an export offline: --key PUBLIC.pem FILE
  keygen          write a new Ed25519 key pair for signing exports: --out DIR
  archive         export the records older than --before into --out FILE,
                  then delete them from the store; the rest stays verifiable

Run "tollgate ledger <command> -h" for the flags of each.
`

func runLedger(ctx context.Context, c *cli, args []string) int {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "verify":
		return runLedgerVerify(ctx, c, args)
	case "export":
		return runLedgerExport(ctx, c, args)
	case "verify-export":
		return runLedgerVerifyExport(c, args)
	case "keygen":
		return runLedgerKeygen(c, args)
	case "archive":
		return runLedgerArchive(ctx, c, args)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, ledgerUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "tollgate ledger: want a subcommand: verify, export, verify-export, keygen or archive\n%s", ledgerUsage)
	return exitError
}

// progress prints how far a long walk has got on stderr.
func progress(c *cli, verb string) ledger.Progress {
	return func(done, total int64) {
		fmt.Fprintf(c.stderr, "%s %d of %d records\n", verb, done, total)
	}
}

func runLedgerVerify(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "ledger verify", "ledger verify [--data-dir DIR | --database-url URL] [--against EXPORT --key PUBLIC.pem] [--quiet]",
		`Checks the store's hash chain from its anchor (the last archived record, or
the start) to its head: every record in order, none missing, none without
its place in the chain, each one's hash recomputed from the record as
stored; every column the API, the history page and exports select records
by (id, status, project, pipeline, branch, environment, bundle_revision,
evaluated_at) equal to the record's; and every cooldown equal to what the
accepted records imply. With --against, the chain must also still be what
a signed export (or archive) made earlier says it was at the export's end:
a chain rewritten and re-hashed as a whole holds on its own, not against
an export signed before. The store is opened read-only: nothing is
written, created or migrated. Prints the first break and exits 1 if the
ledger does not hold, 0 if it does, 2 if the store could not be read
(or does not exist). Progress goes to stderr every 10,000 records.`)
	store := addStoreFlags(f)
	against := f.String("against", "", "also check the chain against this signed export or archive `FILE`")
	keyPath := f.String("key", "", "the Ed25519 public key `FILE` (PEM) that signed --against")
	quiet := f.Bool("quiet", false, "print no progress")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if (*against == "") != (*keyPath == "") {
		return f.usageError("--against and --key go together: an export proves what the chain was only under its signature")
	}
	var exported ledger.ExportSummary
	if *against != "" {
		pub, err := ledger.LoadPublicKey(*keyPath)
		if err != nil {
			return f.fail("%v", err)
		}
		sum, brk, err := verifyExportFile(c, *against, pub)
		switch {
		case err != nil:
			return f.fail("%v", err)
		case brk != nil:
			return f.fail("%s does not verify, so the store cannot be checked against it: %v", *against, brk)
		}
		exported = sum
	}
	s, err := openReader(ctx, *store.dataDir, *store.databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	defer s.Close()
	var p ledger.Progress
	if !*quiet {
		p = progress(c, "verified")
	}
	sum, brk, err := ledger.Verify(ctx, s, p)
	if err == nil && brk == nil && *against != "" {
		brk, err = ledger.Against(ctx, s, exported)
	}
	switch {
	case err != nil:
		return f.fail("%v", err)
	case brk != nil:
		fmt.Fprintf(c.stdout, "ledger broken: %v\n", brk)
		return exitNo
	}
	if sum.Records == 0 {
		fmt.Fprintf(c.stdout, "ledger ok: no records after seq %d, head %s\n", sum.From-1, ledger.Hex(sum.Hash))
	} else {
		fmt.Fprintf(c.stdout, "ledger ok: %d records, seq %d to %d, head %s\n", sum.Records, sum.From, sum.Through, ledger.Hex(sum.Hash))
	}
	if *against != "" {
		fmt.Fprintf(c.stdout, "matches %s at seq %d (exported at %s, signed by key %s)\n", *against, exported.EndSeq, exported.ExportedAt, exported.Key)
	}
	return exitOK
}

// verifyExportFile checks the export at path ("-": stdin) with pub.
func verifyExportFile(c *cli, path string, pub ed25519.PublicKey) (ledger.ExportSummary, *ledger.Break, error) {
	var r io.Reader = c.stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return ledger.ExportSummary{}, nil, err
		}
		defer file.Close()
		r = file
	}
	return ledger.VerifyExport(r, pub)
}

// filterFlags are the filters of GET /v1/decisions, as flags.
type filterFlags struct {
	project, pipeline, branch, status, since, until *string
}

func addFilterFlags(f *flags) filterFlags {
	return filterFlags{
		project:  f.String("project", "", "only the records of project `NAME` in full"),
		pipeline: f.String("pipeline", "", "only the records of pipeline `NAME` in full"),
		branch:   f.String("branch", "", "only the records of `BRANCH` in full"),
		status:   f.String("status", "", "only accepted or refused records in full (`STATUS`)"),
		since:    f.String("since", "", "start with the first record evaluated at or after `RFC3339`"),
		until:    f.String("until", "", "only the records evaluated before `RFC3339` in full"),
	}
}

func (ff filterFlags) filter() (tollgate.DecisionFilter, error) {
	fl := tollgate.DecisionFilter{Project: *ff.project, Pipeline: *ff.pipeline, Branch: *ff.branch, Status: tollgate.Status(*ff.status)}
	if fl.Status != "" && fl.Status != tollgate.Accepted && fl.Status != tollgate.Refused {
		return fl, fmt.Errorf("--status must be accepted or refused, got %q", fl.Status)
	}
	for _, t := range []struct {
		name, value string
		dst         *time.Time
	}{{"since", *ff.since, &fl.Since}, {"until", *ff.until, &fl.Until}} {
		if t.value == "" {
			continue
		}
		parsed, err := time.Parse(time.RFC3339Nano, t.value)
		if err != nil {
			return fl, fmt.Errorf("--%s must be an RFC3339 time such as 2026-03-01T00:00:00Z, got %q", t.name, t.value)
		}
		*t.dst = parsed
	}
	return fl, nil
}

// loadSigner reads the signing key at path; nil for no path.
func loadSigner(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	return ledger.LoadPrivateKey(path)
}

func runLedgerExport(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "ledger export",
		"ledger export [--out FILE] [--ledger-signing-key FILE] [--project P] [--pipeline P] [--branch B] [--status S] [--since T] [--until T] [--data-dir DIR | --database-url URL]",
		`Streams the store's hash chain as NDJSON (to stdout unless --out): the
records the filters select in full, the others as their digest, so that the
chain can be checked from start to end; the end line is signed with the
Ed25519 key of --ledger-signing-key (from `+"`tollgate ledger keygen`"+`).
--since starts the export at the first record evaluated at or after it.
Check it with `+"`tollgate ledger verify-export --key ledger-public.pem FILE`"+`.
Exit 1 if the chain is broken (the export ends with an error line), 2 on
any other failure.`)
	store := addStoreFlags(f)
	ff := addFilterFlags(f)
	out := f.String("out", "", "write the export to `FILE` (created; never replaced) instead of stdout")
	keyPath := f.String("ledger-signing-key", "", "the Ed25519 private key `FILE` (PEM PKCS#8) that signs the export")
	quiet := f.Bool("quiet", false, "print no progress")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	filter, err := ff.filter()
	if err != nil {
		return f.usageError("%v", err)
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return f.fail("%v", err)
	}
	// An export only reads: the store is opened as verify opens it.
	s, err := openReader(ctx, *store.dataDir, *store.databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	defer s.Close()
	w, finish, err := output(c, *out)
	if err != nil {
		return f.fail("%v", err)
	}
	o := ledger.ExportOptions{Filter: filter, Signer: signer, Now: c.now}
	if !*quiet {
		o.Progress = progress(c, "exported")
	}
	sum, err := ledger.Export(ctx, w, s, o)
	if err = finish(err); err != nil {
		var brk *ledger.Break
		if errors.As(err, &brk) {
			c.errorf("ledger export", "the chain is broken: %v", brk)
			return exitNo
		}
		return f.fail("%v", err)
	}
	if *out != "" {
		fmt.Fprintf(c.stdout, "exported %d records (seq %d to %d) to %s\n", sum.Records, sum.From, sum.Through, *out)
	}
	return exitOK
}

// output is stdout, or a new file at path. finish closes it after the
// writer's result err: a file is synced, and removed if err is not nil.
func output(c *cli, path string) (io.Writer, func(err error) error, error) {
	if path == "" {
		return c.stdout, func(err error) error { return err }, nil
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, nil, fmt.Errorf("%s already exists: choose another file (an export is never replaced)", path)
	}
	if err != nil {
		return nil, nil, err
	}
	return file, func(err error) error {
		if err == nil {
			err = file.Sync()
		}
		if closeErr := file.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			os.Remove(path)
		}
		return err
	}, nil
}

func runLedgerVerifyExport(c *cli, args []string) int {
	f := newFlags(c, "ledger verify-export", "ledger verify-export [--key PUBLIC.pem] FILE",
		`Checks an export offline (FILE, or - for stdin): every line follows the one
before it in the chain, every record hashes to its line's hash and is one
the filters of the start line select, and the end line closes the chain,
counts the records and links, and is signed by --key (the PEM public key
from `+"`tollgate ledger keygen`"+`): the signature covers the filters, the
counts and which seqs are whole records. Without --key the signature is
not checked.
Exit 0 sound, 1 broken or not signed by --key (names the first broken
line), 2 could not read.`)
	keyPath := f.String("key", "", "the Ed25519 public key `FILE` (PEM) the export must be signed with")
	rest, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	if len(rest) != 1 {
		return f.usageError("want one export FILE (or - for stdin)")
	}
	var pub ed25519.PublicKey
	if *keyPath != "" {
		if pub, err = ledger.LoadPublicKey(*keyPath); err != nil {
			return f.fail("%v", err)
		}
	}
	sum, brk, err := verifyExportFile(c, rest[0], pub)
	switch {
	case err != nil:
		return f.fail("%v", err)
	case brk != nil:
		fmt.Fprintf(c.stdout, "export broken: %v\n", brk)
		return exitNo
	}
	signed := "signature not checked (no --key)"
	if sum.Key != "" {
		signed = "signed by key " + sum.Key
	}
	fmt.Fprintf(c.stdout, "export ok: %d records and %d links, seq %d to %d, end hash %s, exported at %s, %s\n",
		sum.Records, sum.Links, sum.StartSeq+1, sum.EndSeq, ledger.Hex(sum.EndHash), sum.ExportedAt, signed)
	if sum.Format == ledger.FormatV1 {
		fmt.Fprintf(c.stdout, "note: a %s export: its signature covers the chain's ends, not its filters nor which records are whole\n", ledger.FormatV1)
	}
	return exitOK
}

func runLedgerKeygen(c *cli, args []string) int {
	f := newFlags(c, "ledger keygen", "ledger keygen --out DIR [--force]",
		`Writes a new Ed25519 key pair for signing ledger exports: DIR/`+ledgerPrivateKeyFile+`
(PEM PKCS#8, mode 0600: give it to tollgate serve --ledger-signing-key) and
DIR/`+ledgerPublicKeyFile+` (PEM PKIX, 0644: give it to auditors, who check
exports with it). Existing files are kept unless --force. A pair made the
same way signs decision attestations (serve --attestation-signing-key;
checked by `+"`tollgate verify-decision --key`"+`).`)
	out := f.String("out", "", "write the key files into `DIR` (created if missing)")
	force := f.Bool("force", false, "replace existing key files")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *out == "" {
		return f.usageError("--out is required: the directory to write %s and %s into", ledgerPrivateKeyFile, ledgerPublicKeyFile)
	}
	privatePath, publicPath := filepath.Join(*out, ledgerPrivateKeyFile), filepath.Join(*out, ledgerPublicKeyFile)
	if !*force {
		for _, path := range []string{privatePath, publicPath} {
			if _, err := os.Lstat(path); err == nil {
				return f.fail("%s already exists: keep it (exports it signed stay verifiable with its public key) or pass --force to replace the key pair", path)
			}
		}
	}
	privatePEM, publicPEM, err := ledger.GenerateKey()
	if err != nil {
		return f.fail("%v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return f.fail("%v", err)
	}
	if err := writeKeyFile(privatePath, privatePEM, 0o600, *force); err != nil {
		return f.fail("%v", err)
	}
	if err := writeKeyFile(publicPath, publicPEM, 0o644, *force); err != nil {
		return f.fail("%v", err)
	}
	fmt.Fprintf(c.stdout, "wrote %s (keep it secret: it signs exports; tollgate serve --ledger-signing-key)\n", privatePath)
	fmt.Fprintf(c.stdout, "wrote %s (give it to auditors: tollgate ledger verify-export --key)\n", publicPath)
	return exitOK
}

func runLedgerArchive(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "ledger archive",
		"ledger archive --before RFC3339 --out FILE [--ledger-signing-key FILE] [--data-dir DIR | --database-url URL]",
		`Archives the oldest records: exports, as `+"`ledger export`"+` does, every record
from the chain's anchor up to the last one before the first record
evaluated at or after --before, into FILE (created, synced; never
replaced), checks the file, then deletes those records from the store and
makes the last of them the chain's new anchor, so that `+"`ledger verify`"+` of
the rest still holds. Keep FILE: it is the only copy of those records.
Cooldowns outlive the records that started them. Exit 1 if the chain is
broken (nothing is deleted), 2 on any other failure.`)
	store := addStoreFlags(f)
	beforeFlag := f.String("before", "", "archive the records evaluated before this `RFC3339` time (required)")
	out := f.String("out", "", "the archive `FILE` to write (required)")
	keyPath := f.String("ledger-signing-key", "", "the Ed25519 private key `FILE` (PEM PKCS#8) that signs the archive")
	quiet := f.Bool("quiet", false, "print no progress")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *beforeFlag == "" || *out == "" {
		return f.usageError("--before and --out are required")
	}
	before, err := time.Parse(time.RFC3339Nano, *beforeFlag)
	if err != nil {
		return f.usageError("--before must be an RFC3339 time such as 2026-01-01T00:00:00Z, got %q", *beforeFlag)
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return f.fail("%v", err)
	}
	s, err := store.open(ctx)
	if err != nil {
		return f.fail("%v", err)
	}
	defer s.Close()

	head, err := s.LedgerHead(ctx)
	if err != nil {
		return f.fail("%v", err)
	}
	// The chain is pruned from its start only: up to the record before the
	// first one at or after --before (records are chained in commit order,
	// which clocks may not follow exactly).
	through := head.Seq
	if first, ok, err := s.LedgerSeqSince(ctx, before); err != nil {
		return f.fail("%v", err)
	} else if ok {
		through = first - 1
	}
	if through <= head.AnchorSeq {
		fmt.Fprintf(c.stdout, "nothing to archive: no record before %s after the chain's anchor (seq %d)\n", *beforeFlag, head.AnchorSeq)
		return exitOK
	}
	w, finish, err := output(c, *out)
	if err != nil {
		return f.fail("%v", err)
	}
	o := ledger.ExportOptions{Through: through, Signer: signer, Now: c.now}
	if !*quiet {
		o.Progress = progress(c, "archived")
	}
	sum, err := ledger.Export(ctx, w, s, o)
	if err = finish(err); err != nil {
		var brk *ledger.Break
		if errors.As(err, &brk) {
			c.errorf("ledger archive", "the chain is broken, nothing was deleted: %v", brk)
			return exitNo
		}
		return f.fail("nothing was deleted: %v", err)
	}
	if err := checkArchive(*out, signer, through, sum.Hash); err != nil {
		return f.fail("nothing was deleted: %v", err)
	}
	deleted, err := s.PruneLedger(ctx, through, sum.Hash)
	if err != nil {
		return f.fail("%s is written; pruning stopped after %d records: %v (run the same command again with another --out to finish)", *out, deleted, err)
	}
	fmt.Fprintf(c.stdout, "archived %d records (seq %d to %d) to %s and deleted them; the chain now starts after seq %d, hash %s\n",
		sum.Records, sum.From, sum.Through, *out, through, ledger.Hex(sum.Hash))
	return exitOK
}

// checkArchive reads the archive back before anything is deleted: it must
// verify, end at through with hash, and carry the signature of signer.
func checkArchive(path string, signer ed25519.PrivateKey, through int64, hash []byte) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	var pub ed25519.PublicKey
	if signer != nil {
		pub = signer.Public().(ed25519.PublicKey)
	}
	sum, brk, err := ledger.VerifyExport(file, pub)
	switch {
	case err != nil:
		return fmt.Errorf("read back %s: %w", path, err)
	case brk != nil:
		return fmt.Errorf("%s does not verify: %v", path, brk)
	case sum.EndSeq != through || ledger.Hex(sum.EndHash) != ledger.Hex(hash):
		return fmt.Errorf("%s ends at seq %d, not %d", path, sum.EndSeq, through)
	}
	return nil
}
