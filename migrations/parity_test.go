package migrations_test

import (
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/migrations"
)

// A schema as the code sees it: tables, their columns and their indexes.
// Types are compared by class, since the dialects spell them differently
// (INTEGER / BIGINT, TEXT / JSONB), and so is nullability.
type schema struct {
	columns map[string]string // "table.column" → "class null|not null"
	indexes map[string]string // "table.index" → "unique? (col, col, …)"
}

func (s schema) lines() []string {
	var out []string
	for k, v := range s.columns {
		out = append(out, "column "+k+" "+v)
	}
	for k, v := range s.indexes {
		out = append(out, "index "+k+" "+v)
	}
	slices.Sort(out)
	return out
}

// typeClass maps a dialect's type name to what the code reads it as.
func typeClass(t string) string {
	switch t = strings.ToLower(t); {
	case strings.Contains(t, "int"):
		return "integer"
	case t == "text", strings.HasPrefix(t, "character varying"), t == "json", t == "jsonb":
		return "text"
	case t == "blob", t == "bytea":
		return "bytes"
	case t == "real", strings.HasPrefix(t, "double"), t == "numeric":
		return "real"
	case t == "boolean":
		return "integer" // SQLite has no boolean: 0/1
	}
	return t
}

func nullable(notNull bool) string {
	if notNull {
		return "not null"
	}
	return "null"
}

func sqliteSchema(t *testing.T) schema {
	t.Helper()
	connector, err := sqlite.NewConnector(filepath.Join(t.TempDir(), "parity.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if _, err := migrations.Apply(t.Context(), db, migrations.SQLite); err != nil {
		t.Fatal(err)
	}
	s := schema{columns: map[string]string{}, indexes: map[string]string{}}
	tables := queryStrings(t, db, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`)
	for _, table := range tables {
		rows, err := db.Query(`SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ string
			var notNull, pk int
			if err := rows.Scan(&name, &typ, &notNull, &pk); err != nil {
				t.Fatal(err)
			}
			// A primary key column is NOT NULL in PostgreSQL whatever it says.
			s.columns[table+"."+name] = typeClass(typ) + " " + nullable(notNull == 1 || pk > 0)
		}
		rows.Close()
		// Named indexes only: the automatic ones of a PRIMARY KEY or UNIQUE
		// constraint are named differently in each dialect.
		for _, index := range queryStrings(t, db, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, table) {
			var unique int
			if err := db.QueryRow(`SELECT "unique" FROM pragma_index_list(?) WHERE name = ?`, table, index).Scan(&unique); err != nil {
				t.Fatal(err)
			}
			cols := queryStrings(t, db, `SELECT coalesce(name, '<expression>') FROM pragma_index_info(?) ORDER BY seqno`, index)
			s.indexes[table+"."+index] = indexShape(unique == 1, cols)
		}
	}
	return s
}

func postgresSchema(t *testing.T) schema {
	t.Helper()
	url := pgtest.Start(t).NewDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrations.Apply(t.Context(), db, migrations.Postgres); err != nil {
		t.Fatal(err)
	}
	s := schema{columns: map[string]string{}, indexes: map[string]string{}}
	rows, err := db.Query(`SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name, typ, isNullable string
		if err := rows.Scan(&table, &name, &typ, &isNullable); err != nil {
			t.Fatal(err)
		}
		s.columns[table+"."+name] = typeClass(typ) + " " + nullable(isNullable == "NO")
	}
	rows.Close()
	// Indexes that no constraint owns (the constraints' own are named
	// differently in each dialect), with their key columns in order.
	rows, err = db.Query(`
		SELECT t.relname, i.relname, x.indisunique,
		       array_to_string(array(SELECT coalesce(a.attname, '<expression>')
		                             FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
		                             LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum AND k.attnum > 0
		                             ORDER BY k.n), ',')
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = current_schema() AND t.relname <> 'goose_db_version'
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, index, cols string
		var unique bool
		if err := rows.Scan(&table, &index, &unique, &cols); err != nil {
			t.Fatal(err)
		}
		s.indexes[table+"."+index] = indexShape(unique, strings.Split(cols, ","))
	}
	rows.Close()
	return s
}

func indexShape(unique bool, cols []string) string {
	shape := "(" + strings.Join(cols, ", ") + ")"
	if unique {
		return "unique " + shape
	}
	return shape
}

func queryStrings(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dialectOnly lists what exists in one dialect only, and why.
var dialectOnly = map[string]string{
	"column ledger.prev_hash": "PostgreSQL's chain head keeps the hash before it, so that the one UPDATE … RETURNING " +
		"that takes the head (and orders replicas) also gives the new record its prev_hash; SQLite's single writer reads the head first",
}

// The two dialects' migrations must give the same tables, columns (by type
// class and nullability) and named indexes (by columns and uniqueness): the
// stores share their queries, and a column or index made on one side only
// is a query that works on one database and not the other.
func TestSchemasAreTheSame(t *testing.T) {
	lite, pg := sqliteSchema(t), postgresSchema(t)
	if len(lite.columns) == 0 || len(lite.indexes) == 0 {
		t.Fatalf("the SQLite schema read has %d columns and %d indexes: the query is wrong", len(lite.columns), len(lite.indexes))
	}
	var diff []string
	for _, kind := range []struct {
		name     string
		lite, pg map[string]string
	}{{"column", lite.columns, pg.columns}, {"index", lite.indexes, pg.indexes}} {
		keys := slices.Sorted(maps.Keys(kind.lite))
		for k := range kind.pg {
			if _, ok := kind.lite[k]; !ok {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			l, lok := kind.lite[k]
			p, pok := kind.pg[k]
			if _, ok := dialectOnly[kind.name+" "+k]; ok && lok != pok {
				continue
			}
			switch {
			case !pok:
				diff = append(diff, fmt.Sprintf("%s %s: only in sqlite (%s)", kind.name, k, l))
			case !lok:
				diff = append(diff, fmt.Sprintf("%s %s: only in postgres (%s)", kind.name, k, p))
			case l != p:
				diff = append(diff, fmt.Sprintf("%s %s: sqlite %s, postgres %s", kind.name, k, l, p))
			}
		}
	}
	if len(diff) > 0 {
		t.Fatalf("the migrations of the two dialects differ:\n  %s", strings.Join(diff, "\n  "))
	}
	t.Logf("%d columns and %d indexes, the same in both", len(lite.columns), len(lite.indexes))
}

var _ = stdlib.GetDefaultDriver // registers the "pgx" database/sql driver
