// Package migrations holds the SQL schema of tollgate's stores, one directory
// of versioned goose migrations per database (sqlite/, postgres/), embedded in
// the binary so that a store brings its schema up to date when it opens and
// `tollgate migrate` needs no files beside it.
//
// Both directories describe the same tables and indexes, version for version:
// a change to one is made to the other in a migration of the same number.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Dialect names the database a set of migrations is written for.
type Dialect string

// The databases tollgate stores its history in.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// LedgerMigration is the migration that started the ledger. The records
// made before it are chained once, by the store that applies it, right
// after it: never at any other time, so that records whose chain position
// was removed in SQL are reported by verification, not silently chained
// again.
const LedgerMigration = "00006_ledger.sql"

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Files returns the migration files of d, named NNNNN_description.sql.
func Files(d Dialect) (fs.FS, error) {
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("migrations: unknown dialect %q (want %q or %q)", d, SQLite, Postgres)
	}
	return fs.Sub(files, string(d))
}

// Apply brings the schema of db up to the latest version for dialect d and
// returns the file names of the migrations it applied, in order (none when
// the schema is already current). Each migration runs in its own transaction,
// so a failed one leaves the schema at the previous version; the error names
// it. On PostgreSQL a session advisory lock keeps two tollgate processes
// starting at once from migrating together.
func Apply(ctx context.Context, db *sql.DB, d Dialect) ([]string, error) {
	fsys, err := Files(d)
	if err != nil {
		return nil, err
	}
	return apply(ctx, db, d, fsys)
}

func apply(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) ([]string, error) {
	opts := []goose.ProviderOption{
		// goose's global registry of Go migrations is process-wide state we
		// neither use nor want to pick up from another package.
		goose.WithDisableGlobalRegistry(true),
	}
	dialect := goose.DialectSQLite3
	if d == Postgres {
		dialect = goose.DialectPostgres
		// Probe the lock every second (goose's default is every 5 s), for
		// up to 5 minutes: a replica waiting for another's migrations starts
		// about a second after them.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("migrations: postgres lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: load %s migrations: %w", d, err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return nil, fmt.Errorf("migrations: apply %s migration %s: %w",
				d, path.Base(partial.Failed.Source.Path), partial.Err)
		}
		return nil, fmt.Errorf("migrations: apply %s migrations: %w", d, err)
	}
	applied := make([]string, 0, len(results))
	for _, r := range results {
		applied = append(applied, path.Base(r.Source.Path))
	}
	return applied, nil
}

// Check reports, without changing anything, whether the schema of db is at
// the latest version for dialect d: for commands that must only read
// (`tollgate ledger verify`), which neither create nor migrate a store. A
// database tollgate never migrated, or one left at an older version, is an
// error that says so.
func Check(ctx context.Context, db *sql.DB, d Dialect) error {
	fsys, err := Files(d)
	if err != nil {
		return err
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil || len(names) == 0 {
		return fmt.Errorf("migrations: no %s migrations embedded", d)
	}
	latest, err := goose.NumericComponent(names[len(names)-1])
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	var version sql.NullInt64
	// goose's own table, read directly: goose's provider creates it when
	// it is missing, and this must not.
	if err := db.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil {
		return fmt.Errorf("no tollgate schema found (%w): is this the store tollgate serve uses?", err)
	}
	switch {
	case !version.Valid || version.Int64 == 0:
		return errors.New("no tollgate schema found: the database was never migrated by tollgate")
	case version.Int64 < latest:
		return fmt.Errorf("the schema is at version %d, this tollgate needs %d: run `tollgate migrate` (or start serve) first", version.Int64, latest)
	case version.Int64 > latest:
		return fmt.Errorf("the schema is at version %d, newer than this tollgate knows (%d): use the tollgate that migrated it", version.Int64, latest)
	}
	return nil
}
