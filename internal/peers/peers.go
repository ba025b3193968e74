package peers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables that name a running set of peers (see package doc).
const (
	EnvRoot    = "MAILMIG_PEERS_ROOT"    // directory given to start-all.sh
	EnvOffset  = "MAILMIG_PEERS_OFFSET"  // its port offset (default: ROOT/offset)
	EnvScripts = "MAILMIG_PEERS_SCRIPTS" // testdata/peers directory (default: found from the working directory)
	EnvKeep    = "MAILMIG_PEERS_KEEP"    // "1": do not stop or delete a set this binary started
)

// BasePort is the first port of the set at offset 0: every port is
// BasePort + offset + a fixed index (see testdata/peers/start-all.sh).
const BasePort = 20000

// Fixed credentials configured by the start scripts.
const (
	DovecotMasterUser     = "admin"
	DovecotMasterPassword = "masterpw"
	CyrusAdminUser        = "admin"
	CyrusAdminPassword    = "adminpw"
	WebDAVAdminUser       = "admin"
	WebDAVAdminPassword   = "adminpw"
)

// Set is one running set of peers: every server of the layout started by
// testdata/peers/start-all.sh under Root with port offset Offset.
type Set struct {
	Root   string // ROOT directory of the set
	Offset int    // port offset (a multiple of 100 for parallel sets)

	Dovecot      *Dovecot      // Dovecot backend, ROOT/dovecot, ports +0..+8
	Dovecot2     *Dovecot      // second Dovecot, ROOT/dovecot-b, ports +10..+18
	DovecotProxy *DovecotProxy // Dovecot as a pure proxy in front of Dovecot, +20..+26
	Cyrus        *Cyrus        // Cyrus IMAP/POP3/LMTP/Sieve/JMAP/CalDAV/CardDAV, +30..+38
	Radicale     *DAV          // Radicale CalDAV/CardDAV, +40
	WebDAV       *DAV          // Apache mod_dav_fs, +50
	NginxMail    *NginxMail    // nginx mail proxy in front of Dovecot, +60..+68
	Postgres     *Postgres     // PostgreSQL 15, ROOT/postgres, +70 (private clusters: +71..+79)

	scripts string
}

// Dovecot is a Dovecot 2.3 instance. Every address is "127.0.0.1:port".
type Dovecot struct {
	Base        string // instance directory (etc/, mail/, log/, sink-spool/)
	IMAP        string
	IMAPHAProxy string // IMAP that requires a HAProxy PROXY v1/v2 header
	POP3        string
	POP3HAProxy string // POP3 that requires a HAProxy PROXY header
	LMTP        string
	ManageSieve string
	Submission  string // relays to SMTPSink
	SMTPSink    string // stdlib SMTP sink; stores each message in SinkDir
	// OAuthIntrospect is the RFC 7662 token introspection endpoint
	// ("127.0.0.1:port", HTTP, POST /introspect) that Dovecot's oauth2
	// passdb asks about XOAUTH2 and OAUTHBEARER tokens (see Token).
	OAuthIntrospect string

	MasterUser     string // master login: "user@example.test*admin" or SASL PLAIN authzid
	MasterPassword string
	SinkDir        string // one NNNNNN.eml per message received by the sink
}

// MaildirPath returns the Maildir of a user of this instance
// (Base/mail/<domain>/<local>/Maildir, lower-cased like Dovecot does).
func (d *Dovecot) MaildirPath(email string) string {
	email = strings.ToLower(email)
	local, domain, _ := strings.Cut(email, "@")
	return filepath.Join(d.Base, "mail", domain, local, "Maildir")
}

// ConfigPath returns the instance's dovecot.conf.
func (d *Dovecot) ConfigPath() string { return filepath.Join(d.Base, "etc", "dovecot.conf") }

// Doveadm runs doveadm against this instance and returns its combined
// output; a failing command fails the test.
func (d *Dovecot) Doveadm(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "doveadm", append([]string{"-c", d.ConfigPath()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doveadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// DovecotProxy is a Dovecot instance that only proxies to Set.Dovecot
// (password forwarding; master logins pass through).
type DovecotProxy struct {
	Base, IMAP, POP3, ManageSieve, Submission string
}

// Cyrus is a Cyrus IMAP 3.6 instance with JMAP, CalDAV and CardDAV on HTTP.
type Cyrus struct {
	Base        string
	IMAP        string
	POP3        string
	LMTP        string
	ManageSieve string
	HTTP        string // "127.0.0.1:port" of JMAP, CalDAV and CardDAV

	AdminUser     string // may log in as a user with SASL PLAIN authzid (IMAP, POP3, Sieve)
	AdminPassword string
}

// JMAPURL returns the URL of the JMAP session resource (GET with Basic auth).
func (c *Cyrus) JMAPURL() string { return "http://" + c.HTTP + "/jmap/" }

// CalDAVURL returns the calendar home of a user (collections Default, Inbox, Outbox …).
func (c *Cyrus) CalDAVURL(email string) string {
	return "http://" + c.HTTP + "/dav/calendars/user/" + email + "/"
}

// CardDAVURL returns the address-book home of a user (collection Default).
func (c *Cyrus) CardDAVURL(email string) string {
	return "http://" + c.HTTP + "/dav/addressbooks/user/" + email + "/"
}

// DAV is an HTTP DAV server (Radicale or Apache WebDAV).
type DAV struct {
	Base string // instance directory
	URL  string // root URL ending in "/": users live below it as URL + email + "/"

	AdminUser     string // WebDAV only: may read every user's directory
	AdminPassword string
}

// HomeURL returns a user's home collection: for Radicale it holds "calendar/"
// and "contacts/" (created by NewAccount), for WebDAV it is the user's directory.
func (d *DAV) HomeURL(email string) string { return d.URL + email + "/" }

// NginxMail is nginx's mail proxy in front of Set.Dovecot; backends are chosen
// per user by an auth_http endpoint reading RoutesFile on every login.
type NginxMail struct {
	Base, IMAP, POP3, SMTP, AuthHTTP string
	RoutesFile                       string
}

// Postgres is a PostgreSQL cluster with the login role PostgresUser, which
// may create databases: tests make one of their own with NewDatabase.
type Postgres struct {
	Base string // instance directory (data/, run/, log/)
	Addr string // "127.0.0.1:port"
	// DSN is the URL of the "mailmig" database as PostgresUser.
	DSN string

	index int // port index in the set's block: 70, or 71..79 (Private)
}

// Fixed PostgreSQL credentials configured by start-postgres.sh.
const (
	PostgresUser     = "mailmig"
	PostgresPassword = "mailmigpw"
)

// DatabaseDSN returns the URL of database name on this cluster as
// PostgresUser.
func (p *Postgres) DatabaseDSN(name string) string {
	return "postgres://" + PostgresUser + ":" + PostgresPassword + "@" + p.Addr + "/" + name + "?sslmode=disable"
}

// NewDatabase creates an empty database for one test and returns its DSN;
// the test's cleanup drops it (with any connections left).
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", time.Now().UnixNano(), rand.IntN(1e6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		t.Fatalf("connect to the peers' PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.DSN)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return p.DatabaseDSN(name)
}

// Stop shuts the cluster down fast, keeping its data; Start brings it
// back. Tests of an outage use them; the set's stop covers the rest.
func (p *Postgres) Stop(t testing.TB) { p.ctl(t, "stop") }

// Start starts the cluster again after Stop (a no-op when it runs).
func (p *Postgres) Start(t testing.TB) { p.ctl(t, "") }

func (p *Postgres) ctl(t testing.TB, verb string) {
	t.Helper()
	if err := p.ctlErr(verb); err != nil {
		t.Fatal(err)
	}
}

// portIndex is p's port index in the set's block (70 unless Private).
func (p *Postgres) portIndex() int {
	if p.index == 0 {
		return 70
	}
	return p.index
}

// offset is the port offset of p's set.
func (p *Postgres) offset() int {
	_, port, _ := net.SplitHostPort(p.Addr)
	n, _ := strconv.Atoi(port)
	return n - BasePort - p.portIndex()
}

func (p *Postgres) ctlErr(verb string) error {
	args := []string{filepath.Join(findScripts(), "start-postgres.sh"), p.Base, strconv.Itoa(p.offset()), strconv.Itoa(p.portIndex())}
	if verb != "" {
		args = append(args, verb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.WaitDelay = 5 * time.Second // the server must not keep the output pipe open
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start-postgres.sh %s: %w\n%s", strings.Join(args[1:], " "), err, out)
	}
	return nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// newSet describes the set under root at offset without checking it.
func newSet(root string, offset int, scripts string) *Set {
	p := BasePort + offset
	dv := func(base string, p int) *Dovecot {
		return &Dovecot{
			Base: base, IMAP: addr(p), IMAPHAProxy: addr(p + 1), POP3: addr(p + 2), POP3HAProxy: addr(p + 3),
			LMTP: addr(p + 4), ManageSieve: addr(p + 5), Submission: addr(p + 6), SMTPSink: addr(p + 7),
			MasterUser: DovecotMasterUser, MasterPassword: DovecotMasterPassword,
			SinkDir: filepath.Join(base, "sink-spool"), OAuthIntrospect: addr(p + 8),
		}
	}
	return &Set{
		Root: root, Offset: offset, scripts: scripts,
		Dovecot:  dv(filepath.Join(root, "dovecot"), p),
		Dovecot2: dv(filepath.Join(root, "dovecot-b"), p+10),
		DovecotProxy: &DovecotProxy{Base: filepath.Join(root, "dovecot-proxy"),
			IMAP: addr(p + 20), POP3: addr(p + 22), ManageSieve: addr(p + 25), Submission: addr(p + 26)},
		Cyrus: &Cyrus{Base: filepath.Join(root, "cyrus"), IMAP: addr(p + 30), POP3: addr(p + 32),
			LMTP: addr(p + 34), ManageSieve: addr(p + 35), HTTP: addr(p + 38),
			AdminUser: CyrusAdminUser, AdminPassword: CyrusAdminPassword},
		Radicale: &DAV{Base: filepath.Join(root, "radicale"), URL: "http://" + addr(p+40) + "/"},
		WebDAV: &DAV{Base: filepath.Join(root, "webdav"), URL: "http://" + addr(p+50) + "/files/",
			AdminUser: WebDAVAdminUser, AdminPassword: WebDAVAdminPassword},
		NginxMail: &NginxMail{Base: filepath.Join(root, "nginx-mail"), IMAP: addr(p + 60), POP3: addr(p + 62),
			SMTP: addr(p + 66), AuthHTTP: addr(p + 68), RoutesFile: filepath.Join(root, "nginx-mail", "routes.json")},
		Postgres: &Postgres{Base: filepath.Join(root, "postgres"), Addr: addr(p + 70), index: 70,
			DSN: "postgres://" + PostgresUser + ":" + PostgresPassword + "@" + addr(p+70) + "/mailmig?sslmode=disable"},
	}
}

// portIndexes are the listeners of one set (offsets from BasePort+offset).
var portIndexes = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18,
	20, 22, 25, 26, 30, 32, 34, 35, 38, 40, 50, 60, 62, 66, 68, 70}

// readyPorts are the listeners polled to decide that a set answers.
var readyPorts = []int{0, 2, 4, 5, 6, 7, 10, 20, 30, 32, 34, 35, 38, 40, 50, 60, 70}

func portOpen(port int) bool { return portOpenAddr(addr(port)) }

func portOpenAddr(a string) bool {
	c, err := net.DialTimeout("tcp", a, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitReady polls the set's listeners until all accept or the deadline passes.
func (s *Set) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, i := range readyPorts {
		port := BasePort + s.Offset + i
		for !portOpen(port) {
			if time.Now().After(deadline) {
				return fmt.Errorf("peers under %s (offset %d): nothing answers on 127.0.0.1:%d; start them with `just peers-up` or testdata/peers/start-all.sh", s.Root, s.Offset, port)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Open describes the running set under root (started by start-all.sh with
// offset) and checks that it answers. Use it outside tests (benchmarks,
// commands); tests call Get.
func Open(root string, offset int) (*Set, error) {
	s := newSet(root, offset, findScripts())
	if err := s.waitReady(10 * time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

// FromEnv opens the set named by MAILMIG_PEERS_ROOT and MAILMIG_PEERS_OFFSET.
// It returns (nil, nil) when MAILMIG_PEERS_ROOT is unset.
func FromEnv() (*Set, error) {
	root := os.Getenv(EnvRoot)
	if root == "" {
		return nil, nil
	}
	off := os.Getenv(EnvOffset)
	if off == "" {
		b, err := os.ReadFile(filepath.Join(root, "offset"))
		if err != nil {
			return nil, fmt.Errorf("%s is set but %s is not, and %s has no offset file: %w", EnvRoot, EnvOffset, root, err)
		}
		off = strings.TrimSpace(string(b))
	}
	o, err := strconv.Atoi(off)
	if err != nil || o < 0 || o > 9900 {
		return nil, fmt.Errorf("%s=%q: want a port offset between 0 and 9900", EnvOffset, off)
	}
	return Open(root, o)
}

// errMissing marks errors that mean "the servers are not available here":
// they skip a test unless CI=true.
type errMissing struct{ msg string }

func (e *errMissing) Error() string { return e.msg }

const howTo = "install the servers with `sudo testdata/peers/install.sh` and run the tests with `just test` " +
	"(or start a set with `just peers-up` and export the MAILMIG_PEERS_ROOT/MAILMIG_PEERS_OFFSET it prints)"

var (
	mu         sync.Mutex
	mainCalled bool
	shared     *Set
	sharedErr  error
	tried      bool
	startedSet *Set // set started by this binary, stopped by Main
	// offsetLock holds the flock on the offset of startedSet. It is never
	// read: it keeps the *os.File reachable, or its finalizer would close
	// it and release the lock while the set runs.
	//lint:ignore U1000 held for its lifetime, not read (see above)
	offsetLock *os.File
)

// Main runs the tests of a package that uses Get and stops the set of
// peers this binary started, if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { peers.Main(m) }
func Main(m *testing.M) { os.Exit(Wrap(m.Run)) }

// Wrap runs run (which runs the tests and returns an exit code) and then
// stops the set of peers started meanwhile, if any. It is Main for a
// TestMain that runs its tests some other way, e.g.
//
//	os.Exit(peers.Wrap(func() int { return testscript.RunMain(m, cmds) }))
func Wrap(run func() int) int {
	mu.Lock()
	mainCalled = true
	mu.Unlock()
	code := run()
	mu.Lock()
	s := startedSet
	startedSet = nil
	mu.Unlock()
	if s != nil && os.Getenv(EnvKeep) != "1" {
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
		}
		os.RemoveAll(s.Root)
	}
	return code
}

// Get returns the set of peers for this test binary. It reuses the set named
// by MAILMIG_PEERS_ROOT (and MAILMIG_PEERS_OFFSET) when set; otherwise it
// starts one the first time it is called (this needs peers.Main in TestMain)
// and returns that one to every later caller. It skips the test in -short
// mode, and when the servers are not installed (or we are not root) unless
// CI=true, where that fails the test.
func Get(t testing.TB) *Set {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the real servers (internal/peers); skipped in -short mode")
	}
	s, err := get()
	if err != nil {
		var m *errMissing
		if errors.As(err, &m) && os.Getenv("CI") != "true" {
			t.Skipf("real servers unavailable: %v", err)
		}
		t.Fatalf("real servers: %v", err)
	}
	return s
}

func get() (*Set, error) {
	mu.Lock()
	defer mu.Unlock()
	if tried {
		return shared, sharedErr
	}
	if os.Getenv(EnvRoot) != "" {
		// A broken named set is not cached as missing: it is an error.
		tried = true
		shared, sharedErr = FromEnv()
		return shared, sharedErr
	}
	if !mainCalled {
		// not cached: the message is the same for every test
		return nil, errors.New("peers.Get starts servers, so the package needs `func TestMain(m *testing.M) { peers.Main(m) }` (or peers.Wrap) to stop them again")
	}
	tried = true
	shared, sharedErr = startOwn()
	return shared, sharedErr
}

// Installed reports what is missing for a set of peers on this machine;
// the empty string means everything is there.
func Installed() string {
	var missing []string
	for _, f := range []string{"/usr/sbin/dovecot", "/usr/bin/doveadm", "/usr/lib/cyrus/bin/master",
		"/usr/sbin/saslpasswd2", "/usr/bin/radicale", "/usr/sbin/apache2", "/usr/sbin/nginx",
		"/usr/lib/nginx/modules/ngx_mail_module.so", "/usr/bin/python3", "/usr/bin/curl", "/usr/lib/postgresql/15/bin/initdb"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	extra := os.Getenv("CYRUS_EXTRA")
	if extra == "" {
		extra = "/opt/mailmig-cyrus"
	}
	if !fileExists("/usr/lib/cyrus/bin/imapd") && !fileExists(filepath.Join(extra, "usr/lib/cyrus/bin/imapd")) {
		missing = append(missing, "cyrus imapd (unpacked into "+extra+")")
	}
	return strings.Join(missing, ", ")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func startOwn() (*Set, error) {
	if m := Installed(); m != "" {
		return nil, &errMissing{"not installed: " + m + "; " + howTo}
	}
	if os.Geteuid() != 0 {
		return nil, &errMissing{"starting the servers needs root (they drop privileges to vmail, cyrus, www-data); " + howTo}
	}
	scripts := findScripts()
	if scripts == "" {
		return nil, fmt.Errorf("cannot find testdata/peers from %s; set %s", mustWd(), EnvScripts)
	}
	offset, lock, err := lockFreeOffset()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "mmp")
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := newSet(root, offset, scripts)
	if err := s.start(); err != nil {
		s.stop()
		if os.Getenv(EnvKeep) != "1" {
			os.RemoveAll(root)
		}
		lock.Close()
		return nil, err
	}
	startedSet, offsetLock = s, lock
	if os.Getenv(EnvKeep) != "1" {
		s.startReaper()
	}
	return s, nil
}

func mustWd() string { wd, _ := os.Getwd(); return wd }

// findScripts locates testdata/peers: $MAILMIG_PEERS_SCRIPTS, else the
// module root above the working directory (go test runs in the package
// directory), else relative to this source file.
func findScripts() string {
	if d := os.Getenv(EnvScripts); d != "" {
		return d
	}
	ok := func(d string) bool { return fileExists(filepath.Join(d, "start-all.sh")) }
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if c := filepath.Join(d, "testdata", "peers"); fileExists(filepath.Join(d, "go.mod")) && ok(c) {
				return c
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, found := runtime.Caller(0); found {
		if c := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "peers"); ok(c) {
			return filepath.Clean(c)
		}
	}
	return ""
}

// lockFreeOffset picks a multiple of 100 in 1000..9900 whose lock file
// (in $TMPDIR/mailmig-peers) we can flock and whose ports are all free. The
// returned file holds the lock until it is closed (or the process ends).
func lockFreeOffset() (int, *os.File, error) {
	dir := filepath.Join(os.TempDir(), "mailmig-peers")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, nil, fmt.Errorf("lock directory: %w", err)
	}
	offsets := rand.Perm(90) // 10..99 hundreds
	for _, i := range offsets {
		off := (i + 10) * 100
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("offset-%d.lock", off)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return 0, nil, fmt.Errorf("lock offset %d: %w", off, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		free := true
		for _, idx := range portIndexes {
			if portOpen(BasePort + off + idx) {
				free = false
				break
			}
		}
		if free {
			return off, f, nil
		}
		f.Close()
	}
	return 0, nil, errors.New("no free port offset in 1000..9900 (every block of 100 ports from 21000 is locked or in use)")
}

// run runs a script of testdata/peers with stdout and stderr appended to
// logName under the set's root. Daemons it starts inherit neither (Dovecot
// would otherwise keep a pipe open forever); Setsid keeps them out of the
// test runner's process group.
func (s *Set) run(timeout time.Duration, logName string, script string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	logPath := filepath.Join(s.Root, logName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.scripts, script)}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, tail)
	}
	return nil
}

func (s *Set) start() error {
	if err := s.run(3*time.Minute, "start.log", "start-all.sh", s.Root, strconv.Itoa(s.Offset)); err != nil {
		return err
	}
	return s.waitReady(10 * time.Second)
}

func (s *Set) stop() error {
	if fileExists(s.Root) {
		return s.run(time.Minute, "stop.log", "stop-all.sh", s.Root)
	}
	return nil
}

// startReaper starts a detached shell that stops the set and removes its
// root once this process is gone, so that a test binary killed by -timeout
// or a signal does not leave servers running.
func (s *Set) startReaper() {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done; [ -d "$2" ] && bash "$3" "$2"; rm -rf "$2"`
	cmd := exec.Command("bash", "-c", script, "reaper", strconv.Itoa(os.Getpid()), s.Root,
		filepath.Join(s.scripts, "stop-all.sh"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		cmd.Process.Release()
	}
}
