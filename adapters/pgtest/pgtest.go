// Package pgtest gives tests a real, throwaway PostgreSQL server, the way
// storetest gives them a conformance suite: tests of the PostgreSQL store (and
// the end-to-end tests in test/) run against the database itself, not a mock.
//
// Where the server comes from, in order:
//
//  1. TOLLGATE_TEST_DATABASE_URL, when set: a postgres:// URL of a server the
//     tests may create and drop databases on (its maintenance database, as a
//     role with CREATEDB). Nothing is started; Kill, Freeze and Restart are
//     not available and the tests that need them skip, saying so.
//  2. Otherwise the PostgreSQL binaries: initdb and postgres from the same
//     directory, found on PATH or under /usr/lib/postgresql/*/bin (Debian's
//     postgresql package; the newest version wins). A cluster is initdb'ed in
//     a new temporary directory, listens on a free TCP port of 127.0.0.1 and
//     on a unix socket in that directory, and is removed at the end.
//
// If neither works, the test fails, saying what was tried: these tests never
// skip for want of a database (.ci/run installs Debian's postgresql package).
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the tests run as root (containers,
// CI), initdb and postgres run as the "postgres" system user that Debian's
// package creates, or as "nobody" when there is none: the temporary directory
// is created under os.TempDir() (which must be reachable by that user; /tmp
// is) and given to that user, and the processes are started with that user's
// uid and gid and no supplementary groups (os/exec's SysProcAttr.Credential,
// the same setuid/setgid that `setpriv --reuid --regid --clear-groups` does,
// without needing either tool). As any other user, they run as that user.
//
// postgres is started directly rather than through pg_ctl, so that the test
// process owns it: Kill and Freeze signal the postmaster and every backend at
// once, as a crash or a hung machine would, and on Linux the server is shut
// down (SIGQUIT, immediate) when the test process dies, even by SIGKILL,
// instead of outliving it.
//
// # Use
//
// One server per test binary, a fresh database per test:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.Shared(t).NewDatabase(t)
//		…
//	}
//
// Tests that stop or freeze the server start their own with Start.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points the tests at an existing
// server instead of starting one.
const EnvURL = "TOLLGATE_TEST_DATABASE_URL"

// Superuser is the role the started clusters are initdb'ed with (trust
// authentication: no password).
const Superuser = "postgres"

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Server is a PostgreSQL server for tests: one started by this package, or
// the one TOLLGATE_TEST_DATABASE_URL names.
type Server struct {
	admin   *url.URL // its maintenance database, as a role that may create databases
	cluster *cluster // nil for an external server
	dbs     atomic.Int64
}

// Start returns a server of tb's own, stopped and removed when tb ends (or
// the TOLLGATE_TEST_DATABASE_URL server). It fails tb if there is none.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := start()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

var shared struct {
	once   sync.Once
	server *Server
	err    error
}

// Shared returns the test binary's server, starting it on first use. It is
// stopped and removed by Main, or StopShared; call one from TestMain.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.once.Do(func() { shared.server, shared.err = start() })
	if shared.err != nil {
		tb.Fatalf("pgtest: %v", shared.err)
	}
	return shared.server
}

// Main runs the tests, stops the shared server and exits: the whole
// TestMain of a package that needs nothing else.
func Main(m *testing.M) {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// StopShared stops and removes the shared server, if Shared started one:
// for a TestMain of its own, after m.Run.
func StopShared() error {
	if shared.server == nil {
		return nil
	}
	return shared.server.close()
}

func start() (*Server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("%s must be a postgres:// URL of a server the tests may create databases on", EnvURL)
		}
		s := &Server{admin: u}
		if err := s.ping(context.Background()); err != nil {
			return nil, fmt.Errorf("%s is set, but its server does not answer: %w", EnvURL, err)
		}
		return s, nil
	}
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	return &Server{admin: c.url("postgres"), cluster: c}, nil
}

// Launch starts a server (or takes the TOLLGATE_TEST_DATABASE_URL one) for
// a program that is not a test, such as the load harness in test/bench; the
// caller stops and removes it with Close.
func Launch() (*Server, error) { return start() }

// Close stops and removes a server Launch started (nothing for an external
// one).
func (s *Server) Close() error { return s.close() }

// URL is the URL of the server's maintenance database, as the superuser.
func (s *Server) URL() string { return s.admin.String() }

// Local reports whether this package started the server (and so Kill,
// Freeze and Restart work).
func (s *Server) Local() bool { return s.cluster != nil }

// SocketDir is the directory of the server's unix socket ("" for an external
// server): host=SocketDir() connects through it.
func (s *Server) SocketDir() string {
	if s.cluster == nil {
		return ""
	}
	return s.cluster.sockDir
}

// Log returns what the server has logged so far, for failure messages.
func (s *Server) Log() string {
	if s.cluster == nil {
		return ""
	}
	data, _ := os.ReadFile(s.cluster.logPath())
	return string(data)
}

var notWord = regexp.MustCompile(`[^a-z0-9]+`)

// NewDatabase creates an empty database for tb, dropped when tb ends, and
// returns its URL.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	// The test's name, for whoever looks at the server; the process and a
	// counter, so that test binaries sharing a server do not collide.
	name := notWord.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	name = "t_" + strings.Trim(name, "_")
	name = fmt.Sprintf("%s_%d_%d", name[:min(len(name), 40)], os.Getpid(), s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if s.cluster != nil && !s.cluster.running() {
			return // a test stopped its own server: it goes with the cluster
		}
		// FORCE: a store a failed test left open must not keep it alive.
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *s.admin
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func (s *Server) exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func (s *Server) ping(ctx context.Context) error {
	return s.exec(ctx, "SELECT 1")
}

// Stop shuts the server down cleanly (a fast shutdown: open sessions are
// ended and their transactions rolled back). Restart starts it again.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.needLocal(tb, "Stop")
	if err := s.cluster.stop(syscall.SIGINT); err != nil {
		tb.Fatalf("pgtest: stop: %v", err)
	}
}

// Kill kills every process of the server with SIGKILL, as a crash would:
// connections are reset, and the next start recovers from the WAL.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.needLocal(tb, "Kill")
	if err := s.cluster.kill(); err != nil {
		tb.Fatalf("pgtest: kill: %v", err)
	}
}

// Freeze stops every process of the server (SIGSTOP) without closing a
// connection: the server is there but never answers, like a hung machine or
// a network partition. Thaw resumes it. A frozen server is thawed before it
// is stopped at the end of the test.
func (s *Server) Freeze(tb testing.TB) {
	tb.Helper()
	s.needLocal(tb, "Freeze")
	if err := s.cluster.signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("pgtest: freeze: %v", err)
	}
}

// Thaw resumes a frozen server.
func (s *Server) Thaw(tb testing.TB) {
	tb.Helper()
	s.needLocal(tb, "Thaw")
	if err := s.cluster.signal(syscall.SIGCONT); err != nil {
		tb.Fatalf("pgtest: thaw: %v", err)
	}
}

// Restart starts a stopped or killed server again, on the same port with the
// same data, and waits until it accepts connections.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.needLocal(tb, "Restart")
	if err := s.cluster.start(); err != nil {
		tb.Fatalf("pgtest: restart: %v", err)
	}
}

func (s *Server) needLocal(tb testing.TB, what string) {
	tb.Helper()
	if s.cluster == nil {
		tb.Skipf("pgtest: %s needs a server started by the test; %s points at one it cannot control (unset it to run this test)", what, EnvURL)
	}
}

func (s *Server) close() error {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.remove()
}

// cluster is a PostgreSQL cluster in a temporary directory and its server
// process.
type cluster struct {
	bin     string // directory of initdb and postgres
	dir     string // the temporary directory: data/, the socket, the log
	dataDir string
	sockDir string
	port    int
	cred    *syscall.Credential // nil: run as this process's user

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

func newCluster() (*cluster, error) {
	bin, err := findBinaries(debianDir)
	if err != nil {
		return nil, err
	}
	cred, who, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tollgate-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, dataDir: filepath.Join(dir, "data"), sockDir: dir, cred: cred}
	if err := c.init(who); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A port that was free a moment ago may be taken by the time postgres
	// binds it: try a few.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			break
		}
		if err = c.start(); err == nil || attempt == 2 || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// debianDir is where Debian's postgresql packages install, one directory
// per major version.
const debianDir = "/usr/lib/postgresql"

// findBinaries returns the directory holding initdb and postgres, looking on
// PATH and then in libDir/*/bin, or an error that says everything it tried.
func findBinaries(libDir string) (string, error) {
	var tried []string
	if initdb, err := exec.LookPath("initdb"); err == nil {
		// Debian links /usr/local/bin or /usr/bin names to the versioned
		// directory; postgres must come from the same one as initdb.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		dir := filepath.Dir(initdb)
		if isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
		tried = append(tried, fmt.Sprintf("initdb on PATH is %s, but there is no postgres beside it", initdb))
	} else {
		tried = append(tried, "no initdb on PATH ("+os.Getenv("PATH")+")")
	}
	dirs, _ := filepath.Glob(filepath.Join(libDir, "*", "bin"))
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) }) // newest first
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
		tried = append(tried, dir+" lacks initdb or postgres")
	}
	if len(dirs) == 0 {
		tried = append(tried, "nothing under "+filepath.Join(libDir, "*", "bin"))
	}
	return "", fmt.Errorf("no PostgreSQL to test against: %s unset; %s. Install PostgreSQL (apt-get install postgresql, as .ci/run does) or set %s to a postgres:// URL of a server the tests may create databases on",
		EnvURL, strings.Join(tried, "; "), EnvURL)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

// serverUser is who initdb and postgres run as: this process's user, unless
// that is root, which PostgreSQL refuses.
func serverUser() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	var tried []string
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			tried = append(tried, fmt.Sprintf("user %s has a non-numeric uid or gid", name))
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, name, nil
	}
	return nil, "", fmt.Errorf("running as root, and PostgreSQL refuses to: no unprivileged user to run it as (%s)", strings.Join(tried, "; "))
}

func (c *cluster) init(who string) error {
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("give %s to user %s: %w", c.dir, who, err)
		}
	}
	// --no-sync: a throwaway cluster need not wait for its first files to
	// reach the disk. The server itself runs with the default fsync=on, so
	// that commits cost what they cost in production (benchmarks measure it).
	cmd := c.command("initdb", "-D", c.dataDir, "-U", Superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		hint := ""
		if c.cred != nil {
			hint = fmt.Sprintf(" (initdb runs as user %s, who must be able to reach %s: set TMPDIR to a directory it can, such as /tmp)", who, c.dir)
		}
		return fmt.Errorf("%s failed%s: %v\n%s", cmd, hint, err, out)
	}
	return nil
}

func (c *cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	cmd.Dir = c.dir
	cmd.SysProcAttr = sysProcAttr(c.cred)
	return cmd
}

func (c *cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

func (c *cluster) url(db string) *url.URL {
	return &url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
}

func (c *cluster) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}

// start runs the server and waits until it accepts connections.
func (c *cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("the server is already running")
	}
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := c.command("postgres", "-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-h", "127.0.0.1",
		"-k", c.sockDir,
		// Tests run many stores in parallel, each with its own pool.
		"-c", "max_connections=300",
		"-c", "log_min_messages=warning",
		"-c", "log_line_prefix=%m [%p] ",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	admin := c.url("postgres").String()
	for {
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-exited:
			c.cmd = nil
			log, _ := os.ReadFile(c.logPath())
			return fmt.Errorf("postgres exited while starting (%s); its log:\n%s", cmd.ProcessState, tail(string(log), 40))
		case <-ctx.Done():
			c.stopLocked(syscall.SIGQUIT)
			log, _ := os.ReadFile(c.logPath())
			return fmt.Errorf("postgres did not accept connections within %s: %v; its log:\n%s", startTimeout, err, tail(string(log), 40))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func (c *cluster) stop(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(sig)
}

// stopLocked signals the postmaster and waits for it, forcing it if it takes
// too long.
func (c *cluster) stopLocked(sig syscall.Signal) error {
	if c.cmd == nil {
		return nil
	}
	c.signalAll(syscall.SIGCONT) // a frozen server cannot shut down
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-c.exited:
		c.cmd = nil
		return nil
	case <-time.After(stopTimeout):
		return c.killLocked()
	}
}

// signalAll sends sig to the postmaster and to every process it started.
// (Not to a process group: each backend makes itself a group leader, so that
// the postmaster can signal its children.) It returns the processes it
// signalled besides the postmaster.
//
// To freeze, the postmaster goes first, so that it starts nothing after the
// list is read; to resume, last. To kill, the postmaster is stopped first
// and killed last: once it is dead and reaped, its backends belong to init
// and can no longer be found, and a backend that outlived it could still
// answer (and commit) a query.
func (c *cluster) signalAll(sig syscall.Signal) ([]int, error) {
	pm := c.cmd.Process.Pid
	var children []int
	signalChildren := func(sig syscall.Signal) error {
		found, err := childrenOf(pm)
		for _, pid := range found {
			syscall.Kill(pid, sig) // it may have exited meanwhile
			if !slices.Contains(children, pid) {
				children = append(children, pid)
			}
		}
		return err
	}
	switch sig {
	case syscall.SIGCONT:
		err := signalChildren(sig)
		return children, errors.Join(err, syscall.Kill(pm, sig))
	case syscall.SIGKILL:
		if err := stopAndWait(pm); err != nil {
			return nil, err
		}
		err := signalChildren(sig)
		err = errors.Join(err, signalChildren(sig)) // any forked as it stopped
		return children, errors.Join(err, syscall.Kill(pm, sig))
	case syscall.SIGSTOP:
		if err := stopAndWait(pm); err != nil {
			return nil, err
		}
		return children, signalChildren(sig)
	default:
		if err := syscall.Kill(pm, sig); err != nil {
			return nil, err
		}
		return children, signalChildren(sig)
	}
}

func (c *cluster) kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return errors.New("the server is not running")
	}
	return c.killLocked()
}

func (c *cluster) killLocked() error {
	children, err := c.signalAll(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-c.exited
	c.cmd = nil
	// The backends are no longer ours to wait for (their parent is gone),
	// but a new server refuses to start while one of them still holds the
	// old shared memory: wait until they have all exited.
	deadline := time.Now().Add(stopTimeout)
	for _, pid := range children {
		for !exited(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("backend %d still running %s after SIGKILL", pid, stopTimeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

func (c *cluster) signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return errors.New("the server is not running")
	}
	_, err := c.signalAll(sig)
	return err
}

// remove stops the server and deletes its directory.
func (c *cluster) remove() error {
	err := c.stop(syscall.SIGINT)
	return errors.Join(err, os.RemoveAll(c.dir))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
