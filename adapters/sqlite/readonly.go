package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"modernc.org/sqlite"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"
)

// OpenReadOnly opens the store in dataDir read-only, for the commands that
// only read: the file is opened with SQLite's mode=ro and query_only,
// nothing is created, migrated or chained, and writes are refused. A directory without a
// store is an ENotFound error; a store whose schema is not the one this
// tollgate writes, EInvalid.
func OpenReadOnly(ctx context.Context, dataDir string) (*storekit.ReadOnly, error) {
	path, err := filepath.Abs(filepath.Join(dataDir, FileName))
	if err != nil {
		return nil, fmt.Errorf("sqlite: data directory %s: %w", dataDir, err)
	}
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
		return nil, tollgate.Errorf(tollgate.ENotFound,
			"sqlite: no tollgate store in %s (no %s there): give the --data-dir that tollgate serve uses", dataDir, FileName)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "query_only(1)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	connector, err := sqlite.NewConnector(u.String())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	if err := migrations.Check(ctx, db, migrations.SQLite); err != nil {
		db.Close()
		return nil, tollgate.Errorf(tollgate.EInvalid, "sqlite: %s: %v", path, err)
	}
	s := &Store{path: path, db: db} // only its readers: no writer connection, no statements
	s.Core = storekit.NewCore(s.dialect(), storekit.Batching{})
	return storekit.NewReadOnly(s, "sqlite: "+path, s.db.Close), nil
}
