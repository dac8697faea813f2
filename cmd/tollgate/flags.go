package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// flags is one subcommand's flag set, with the contract's environment
// fallback: every flag also reads TOLLGATE_<FLAG>.
type flags struct {
	*flag.FlagSet
	c        *cli
	synopsis string // "eval --license FILE …", after "usage: tollgate "
	about    string // what the command does, for -h
}

func newFlags(c *cli, name, synopsis, about string) *flags {
	fs := flag.NewFlagSet("tollgate "+name, flag.ContinueOnError)
	// The flag package would print the whole usage after every mistake;
	// parse prints the mistake, a suggestion and a pointer to -h instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{FlagSet: fs, c: c, synopsis: synopsis, about: about}
}

// envName is the environment variable a flag falls back to.
func envName(flagName string) string {
	return "TOLLGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseNoArgs parses args for a command that takes no positional argument.
// When ok is false the command must exit with code: -h was asked, or the
// usage was wrong and has been explained.
func (f *flags) parseNoArgs(args []string) (code int, ok bool) {
	extra, err := f.parse(args)
	switch {
	case err != nil:
		return exitCode(err), false
	case len(extra) > 0:
		return f.usageError("unexpected argument %q", extra[0]), false
	}
	return exitOK, true
}

// fail prints a message for the user and returns the error exit code.
func (f *flags) fail(format string, args ...any) int {
	f.c.errorf(strings.TrimPrefix(f.Name(), "tollgate "), format, args...)
	return exitError
}

// errUsage marks an error whose message has been printed already.
var errUsage = errors.New("usage error")

// parse parses args, flags and positional arguments in any order (everything
// after "--" is positional), then sets each flag not given on the command
// line from its environment variable, if that is set and not empty. It
// returns the positional arguments. On -h it prints the usage on stdout and
// returns flag.ErrHelp; on a mistake it prints it and returns errUsage.
func (f *flags) parse(args []string) ([]string, error) {
	var positional []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.printUsage(f.c.stdout)
			return nil, flag.ErrHelp
		}
		if err != nil {
			fmt.Fprintf(f.c.stderr, "%s: %s\nrun `%s -h` for usage\n", f.Name(), f.explain(err), f.Name())
			return nil, errUsage
		}
		rest := f.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}

	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var err error
	f.VisitAll(func(fl *flag.Flag) {
		if given[fl.Name] || err != nil {
			return
		}
		name := envName(fl.Name)
		if v, ok := f.c.lookupEnv(name); ok && v != "" {
			if setErr := f.Set(fl.Name, v); setErr != nil {
				fmt.Fprintf(f.c.stderr, "%s: invalid value %q in %s (for --%s): %v\n", f.Name(), v, name, fl.Name, setErr)
				err = errUsage
			}
		}
	})
	return positional, err
}

// explain is the flag package's parse error, with the closest flag when
// the one given does not exist: "--data-dri" is most likely --data-dir.
func (f *flags) explain(err error) string {
	unknown, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return err.Error()
	}
	given := strings.TrimLeft(unknown, "-")
	var names []string
	f.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	return "unknown flag --" + given + didYouMean(given, names, "--")
}

// didYouMean is "; did you mean <prefix><name>?" for the name closest to
// given, when given is a slip of it (one letter wrong, missing, extra or
// two swapped; one more per five letters of long names), else "".
func didYouMean(given string, names []string, prefix string) string {
	slices.Sort(names) // ties go to the first in order, the same every run
	best, bestDistance := "", 0
	for _, name := range names {
		if d := editDistance(given, name); best == "" || d < bestDistance {
			best, bestDistance = name, d
		}
	}
	if best == "" || bestDistance > max(1, len(best)/5) {
		return ""
	}
	return "; did you mean " + prefix + best + "?"
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours count one each.
// Written here because the Levenshtein distance (the library OPA brings)
// counts a swap, the commonest slip ("sevre"), as two, as it does an
// unrelated word ("deploy" is two from "replay").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// usageError prints a mistake in the command line and returns exitError.
func (f *flags) usageError(format string, args ...any) int {
	fmt.Fprintf(f.c.stderr, "%s: %s\nrun `%s -h` for usage\n", f.Name(), fmt.Sprintf(format, args...), f.Name())
	return exitError
}

// exitCode is the exit code after parse returned err.
func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitError
}

func (f *flags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: tollgate %s\n\n%s\n", f.synopsis, f.about)
	hasFlags := false
	f.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		return
	}
	fmt.Fprintln(w, "\nFlags (each also read from the environment variable shown):")
	f.VisitAll(func(fl *flag.Flag) {
		kind, help := flag.UnquoteUsage(fl)
		if kind == "" && !isBool(fl) {
			kind = "VALUE"
		}
		fmt.Fprintf(w, "  --%s %s\n        %s", fl.Name, kind, help)
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" && fl.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", fl.DefValue)
		}
		fmt.Fprintf(w, " [%s]\n", envName(fl.Name))
	})
}

func isBool(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseTime reads an RFC 3339 flag value.
func parseTime(flagName, value string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time with an offset, such as 2026-11-23T10:00:00+01:00 or 2026-11-23T09:00:00Z", flagName, value)
	}
	return t, nil
}
