// Command tollgate is the deployment gate's one binary: `tollgate help`
// lists its subcommands, one file each in this directory.
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Exit codes shared by every subcommand.
const (
	exitOK    = 0 // accepted, tests passed, licence valid
	exitNo    = 1 // a definite "no": refused, a test failed, licence not valid
	exitError = 2 // could not answer: bad usage, bad input, bad bundle
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &cli{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		lookupEnv: os.LookupEnv,
		now:       time.Now,
	})
	stop()
	os.Exit(code)
}

// cli is what a subcommand takes from the process, passed explicitly so
// that nothing reads the environment or the clock behind its back.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	now            func() time.Time
}

// errorf prints a message for the user on stderr, prefixed by the command.
func (c *cli) errorf(command, format string, args ...any) {
	fmt.Fprintf(c.stderr, "tollgate %s: %s\n", command, fmt.Sprintf(format, args...))
}

func run(ctx context.Context, args []string, c *cli) int {
	if len(args) == 0 {
		usage(c.stderr)
		return exitError
	}
	command, args := args[0], args[1:]
	if runCommand, ok := commands[command]; ok {
		return runCommand(ctx, c, args)
	}
	switch command {
	case "--version", "-version":
		return runVersion(c, args)
	case "help", "-h", "-help", "--help":
		if len(args) > 0 && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
			return run(ctx, []string{args[0], "-h"}, c)
		}
		usage(c.stdout)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "tollgate: unknown command %q%s\nrun `tollgate help` for the list\n", command,
		didYouMean(command, slices.Collect(maps.Keys(commands)), ""))
	return exitError
}

// commands are the subcommands, one file each.
var commands = map[string]func(context.Context, *cli, []string) int{
	"serve":           runServe,
	"eval":            runEval,
	"check":           runCheck,
	"migrate":         runMigrate,
	"cvss":            runCVSS,
	"epss":            runEPSS,
	"test":            runTest,
	"license":         runLicense,
	"exception":       runException,
	"freeze":          runFreeze,
	"incident":        runIncident,
	"token":           runToken,
	"bundle":          runBundle,
	"ledger":          runLedger,
	"replay":          runReplay,
	"verify-decision": runVerifyDecision,
	"impact":          runImpact,
	"version":         func(_ context.Context, c *cli, args []string) int { return runVersion(c, args) },
}

func usage(w io.Writer) {
	fmt.Fprint(w, `tollgate is a policy-as-code deployment gate: may this pipeline run now?

Usage: tollgate <command> [flags] [arguments]

Commands:
  serve     serve the HTTP API: evaluate, simulate, history, bundle status, metrics
  check     the CI client: ask a server whether a pipeline may run now
  verify-decision
            check a decision the server signed (check --attestation-out) before deploying
  eval      decide on one request (JSON from --input or stdin) and print the decision
  test      run a bundle's own Rego tests in-process, with coverage
  migrate   bring the PostgreSQL schema up to date
  cvss      print the version and base score of a CVSS v3.x or v4.0 vector
  epss      import FIRST's daily EPSS scores into the decision store
  license   keygen, issue and verify licences
  exception request, approve, reject, revoke and list exceptions; break-glass
  freeze    create, lift and list emergency freezes
  incident  start, end and list incident mode
  token     create, list and revoke API tokens
  bundle    sign a bundle, verify a signed bundle
  ledger    verify, export, archive the tamper-evident decision history
  replay    re-evaluate a recorded decision with its bundle and context: is it the same?
  impact    how a candidate bundle would have changed the recorded decisions
  version   the release, commit, build date, Go and OPA versions (also --version)

Every flag can also be set with an environment variable TOLLGATE_<FLAG>, upper
case with dashes as underscores: --license-key is TOLLGATE_LICENSE_KEY. A flag
given on the command line wins.

Exit codes: 0 accepted / passed / valid, 1 refused / failed / invalid, 2 error.
Run "tollgate help <command>" for the flags of a command.
`)
}
