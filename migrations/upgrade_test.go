package migrations

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// The README's Upgrade section relies on these two facts; if one stops
// holding, the section must change with it.

// An older tollgate restarted on a schema a newer one migrated starts: it
// has nothing to apply, and goose does not object to versions it does not
// know.
func TestAnOlderVersionStartsOnANewerSchema(t *testing.T) {
	all, err := Files(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(all, "*.sql")
	if err != nil || len(names) < 2 {
		t.Fatalf("migrations %q: %v", names, err)
	}
	older := fstest.MapFS{}
	for _, name := range names[:len(names)-1] {
		body, err := fs.ReadFile(all, name)
		if err != nil {
			t.Fatal(err)
		}
		older[name] = &fstest.MapFile{Data: body}
	}
	db := openSQLite(t)
	if _, err := Apply(t.Context(), db, SQLite); err != nil {
		t.Fatal(err)
	}
	applied, err := apply(t.Context(), db, SQLite, older)
	if err != nil || len(applied) != 0 {
		t.Fatalf("the previous version on the newer schema: applied %q, error %v; want nothing and no error", applied, err)
	}
}

// Every migration so far only adds (tables, indexes, columns, rows,
// constraints on new rows), so replicas of the previous version keep
// working while a rolling upgrade runs. A migration that drops, renames or
// retypes something breaks them: say so in the README's Upgrade section,
// then list it here.
func TestMigrationsOnlyAdd(t *testing.T) {
	removes := regexp.MustCompile(`(?i)\b(DROP|RENAME|ALTER\s+COLUMN|SET\s+NOT\s+NULL|TYPE)\b`)
	for _, d := range []Dialect{SQLite, Postgres} {
		fsys, err := Files(d)
		if err != nil {
			t.Fatal(err)
		}
		names, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			body, err := fs.ReadFile(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			up, _, _ := strings.Cut(string(body), "-- +goose Down")
			for _, line := range strings.Split(up, "\n") {
				if code, _, _ := strings.Cut(line, "--"); removes.MatchString(code) {
					t.Errorf("%s/%s: %q changes what the previous version uses (see the README's Upgrade)", d, name, strings.TrimSpace(line))
				}
			}
		}
	}
}
