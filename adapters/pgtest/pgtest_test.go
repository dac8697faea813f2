package pgtest

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func query(t *testing.T, dbURL, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var out string
	err = conn.QueryRow(ctx, sql).Scan(&out)
	return out, err
}

func TestNewDatabaseIsFreshAndDropped(t *testing.T) {
	s := Shared(t)
	var a, b string
	t.Run("a", func(t *testing.T) {
		a = s.NewDatabase(t)
		if got, err := query(t, a, "SELECT current_database()"); err != nil || !strings.HasPrefix("/"+got, mustParse(t, a).Path) {
			t.Fatalf("current_database() = %q, %v; URL %s", got, err, a)
		}
		if n, err := query(t, a, "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"); err != nil || n != "0" {
			t.Fatalf("tables in a new database: %s, %v; want none", n, err)
		}
		b = s.NewDatabase(t)
		if a == b {
			t.Fatalf("two databases with one URL %s", a)
		}
	})
	// Dropped when the subtest ended.
	name := strings.TrimPrefix(mustParse(t, a).Path, "/")
	n, err := query(t, s.URL(), "SELECT count(*)::text FROM pg_database WHERE datname = '"+name+"'")
	if err != nil || n != "0" {
		t.Fatalf("database %s after its test: count %s, err %v; want dropped", name, n, err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestServerDoesNotRunAsRoot(t *testing.T) {
	s := Shared(t)
	if !s.Local() {
		t.Skipf("%s is set: not our server", EnvURL)
	}
	// The data directory's owner is who the server runs as.
	got, err := query(t, s.URL(), "SELECT pg_catalog.current_setting('data_directory')")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(got)
	if err != nil {
		t.Fatal(err)
	}
	if uid := ownerUID(info); uid == 0 {
		t.Fatalf("data directory %s is owned by root: the server would run as root", got)
	}
	if os.Geteuid() == 0 && s.cluster.cred == nil {
		t.Fatal("running as root without a credential for the server")
	}
}

func TestUnixSocket(t *testing.T) {
	s := Shared(t)
	if !s.Local() {
		t.Skipf("%s is set: no socket of ours", EnvURL)
	}
	dsn := "host=" + s.SocketDir() + " port=" + mustParse(t, s.URL()).Port() + " user=" + Superuser + " dbname=postgres"
	if got, err := query(t, dsn, "SELECT 'ok'"); err != nil || got != "ok" {
		t.Fatalf("through %s: %q, %v", dsn, got, err)
	}
	if _, err := os.Stat(filepath.Join(s.SocketDir(), ".s.PGSQL."+mustParse(t, s.URL()).Port())); err != nil {
		t.Fatal(err)
	}
}

func TestKillFreezeRestart(t *testing.T) {
	s := Start(t)
	db := s.NewDatabase(t)
	if _, err := query(t, db, "SELECT 'up'"); err != nil {
		t.Fatal(err)
	}

	s.Freeze(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err := pgx.Connect(ctx, db)
	cancel()
	if err == nil {
		t.Fatal("connected to a frozen server")
	}
	s.Thaw(t)
	if _, err := query(t, db, "SELECT 'thawed'"); err != nil {
		t.Fatalf("after Thaw: %v", err)
	}

	// Connections opened before the crash die with it: every backend is
	// killed, not only the postmaster.
	var open []*pgx.Conn
	for range 3 {
		c, err := pgx.Connect(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		open = append(open, c)
	}
	s.Kill(t)
	if _, err := query(t, db, "SELECT 'dead'"); err == nil {
		t.Fatal("query on a killed server passed")
	}
	for i, c := range open {
		if _, err := c.Exec(t.Context(), "SELECT 1"); err == nil {
			t.Fatalf("connection %d still answers after Kill: a backend outlived the crash", i)
		}
	}
	s.Restart(t)
	if got, err := query(t, db, "SELECT 'back'"); err != nil || got != "back" {
		t.Fatalf("after Restart: %q, %v\n%s", got, err, s.Log())
	}

	s.Stop(t)
	if _, err := query(t, db, "SELECT 'stopped'"); err == nil {
		t.Fatal("query on a stopped server passed")
	}
	s.Restart(t)
	if _, err := query(t, db, "SELECT 'again'"); err != nil {
		t.Fatal(err)
	}
}

func TestRemovedAtTheEnd(t *testing.T) {
	var dir string
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		if !s.Local() {
			t.Skipf("%s is set: not our server", EnvURL)
		}
		dir = s.cluster.dir
	})
	if dir == "" {
		return
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after its test: %v, want removed", dir, err)
	}
}

func TestNoBinariesSaysWhatWasTried(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	_, err := findBinaries(filepath.Join(empty, "lib"))
	if err == nil {
		t.Fatal("found PostgreSQL in empty directories")
	}
	for _, want := range []string{EnvURL, "no initdb on PATH", filepath.Join(empty, "lib", "*", "bin"), "apt-get install postgresql"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestBinariesUnderVersionedDirectories(t *testing.T) {
	lib := t.TempDir()
	for _, v := range []string{"13", "16", "9"} {
		bin := filepath.Join(lib, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", t.TempDir())
	got, err := findBinaries(lib)
	if want := filepath.Join(lib, "16", "bin"); err != nil || got != want {
		t.Fatalf("findBinaries = %q, %v; want the newest, %s", got, err, want)
	}
}

func ownerUID(info os.FileInfo) uint32 {
	return info.Sys().(*syscall.Stat_t).Uid
}
