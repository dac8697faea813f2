package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate"
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
		"epss import FILE [--force] [--data-dir DIR | --database-url URL]",
		`Replaces the EPSS scores in the decision store with those of FILE, FIRST's
daily epss_scores-YYYY-MM-DD.csv.gz (gzipped or not), in one transaction: the
gate reads the previous day's scores until the new ones are all in. The file
is checked whole first; a bad file changes nothing. A file cut in the middle
of a line is refused; so, unless --force, is a file whose score_date is
older than the scores in use, or with fewer than 95% of their CVEs.`)
	force := f.Bool("force", false, "import a file older, or much shorter, than the scores in use")
	dataDir := f.String("data-dir", defaultDataDir, "the embedded store's `DIR` (not used with --database-url)")
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
	store, err := openCommandStore(ctx, *dataDir, *databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	importErr := importEPSS(ctx, store, parsed, *force)
	if err := store.Close(); importErr == nil && err != nil {
		importErr = err
	}
	if importErr != nil {
		return f.fail("%v", importErr)
	}
	model := parsed.ModelVersion
	if model == "" {
		model = "unknown"
	}
	fmt.Fprintf(c.stdout, "imported %d scores (model %s, scores of %s) in %s\n",
		len(parsed.Scores), model, parsed.ScoreDate.UTC().Format(time.DateOnly), c.now().Sub(start).Round(time.Millisecond))
	return exitOK
}

// importEPSS replaces the scores in store with parsed, if epss.CheckReplace
// lets it replace those in use.
func importEPSS(ctx context.Context, store tollgate.EPSSStore, parsed *epss.Set, force bool) error {
	_, current, err := store.EPSS(ctx, nil)
	if err != nil {
		return fmt.Errorf("read the EPSS scores in use: %w", err)
	}
	if err := epss.CheckReplace(current, parsed, force, time.Now()); err != nil {
		return err
	}
	return store.ImportEPSS(ctx, parsed.EPSSSet())
}
