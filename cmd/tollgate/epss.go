package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/adapters/epss"
)

func runEPSS(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 || args[0] != "import" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			return runEPSSImport(ctx, c, []string{"-h"})
		}
		fmt.Fprintln(c.stderr, "tollgate epss: want a subcommand: import\nrun `tollgate epss import -h` for usage")
		return exitError
	}
	return runEPSSImport(ctx, c, args[1:])
}

func runEPSSImport(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "epss import",
		"epss import FILE [--data-dir DIR | --database-url URL]",
		`Replaces the EPSS scores in the decision store with those of FILE, FIRST's
daily epss_scores-YYYY-MM-DD.csv.gz (gzipped or not), in one transaction: the
gate reads the previous day's scores until the new ones are all in. The file
is checked whole first; a bad file changes nothing.`)
	dataDir := f.String("data-dir", ".data/tollgate", "the embedded store's `DIR` (not used with --database-url)")
	databaseURL := f.String("database-url", "", "PostgreSQL `URL` instead of the embedded store")
	positional, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	switch {
	case len(positional) == 0:
		return f.usageError("no EPSS file given")
	case len(positional) > 1:
		return f.usageError("unexpected argument %q", positional[1])
	}
	start := c.now()
	parsed, err := epss.ParseFile(positional[0])
	if err != nil {
		return f.fail("%v", err)
	}
	set := parsed.EPSSSet()

	store, err := openCommandStore(ctx, *dataDir, *databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	importErr := store.ImportEPSS(ctx, set)
	if err := store.Close(); importErr == nil && err != nil {
		importErr = err
	}
	if importErr != nil {
		return f.fail("%v", importErr)
	}
	model := set.ModelVersion
	if model == "" {
		model = "unknown"
	}
	fmt.Fprintf(c.stdout, "imported %d scores (model %s, scores of %s) in %s\n",
		len(set.Scores), model, set.ScoreDate.UTC().Format(time.DateOnly), c.now().Sub(start).Round(time.Millisecond))
	return exitOK
}
