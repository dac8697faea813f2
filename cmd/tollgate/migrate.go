package main

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/adapters/postgres"
)

func runMigrate(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "migrate",
		"migrate --database-url URL",
		`Brings the PostgreSQL schema up to date and lists the migrations it applied.
`+"`serve`"+` does the same at start; replicas starting together take turns
(an advisory lock), so running this first is optional. The embedded store
migrates itself when it opens.`)
	databaseURL := f.String("database-url", "", "the PostgreSQL `URL`, such as postgres://tollgate@db/tollgate (required)")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *databaseURL == "" {
		return f.usageError("--database-url is required")
	}
	applied, err := postgres.Migrate(ctx, *databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	if len(applied) == 0 {
		fmt.Fprintln(c.stdout, "the schema is up to date")
	}
	for _, name := range applied {
		fmt.Fprintf(c.stdout, "applied %s\n", name)
	}
	return exitOK
}
