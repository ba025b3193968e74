package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/migadu/go-pop3/pop3client"

	"github.com/mailmig/mailmig/internal/peers"
)

// Mail clients across the cut-over (issue 15): real clients keep a local
// store through the proxy while "mailmig apply" moves the account from
// Dovecot to Cyrus with mail arriving; afterwards each holds every message
// exactly once.

// fetchmailKeep runs fetchmail in keep mode (UIDL tracking) against a
// POP3 address; every run delivers each new message into a file of dir.
type fetchmailKeep struct {
	t         *testing.T
	home, dir string
	addr      string
	acct      peers.Account
}

func newFetchmailKeep(t *testing.T, addr string, a peers.Account) *fetchmailKeep {
	t.Helper()
	if _, err := exec.LookPath("fetchmail"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("fetchmail is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("fetchmail is not installed (testdata/peers/install.sh installs it)")
	}
	home := t.TempDir()
	f := &fetchmailKeep{t: t, home: home, dir: filepath.Join(home, "delivered"), addr: addr, acct: a}
	if err := os.Mkdir(f.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nexec cat >\"$(mktemp %s/msg.XXXXXXXX)\"\n", f.dir)
	if err := os.WriteFile(filepath.Join(home, "mda.sh"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// run fetches once and returns fetchmail's exit code (0: mail, 1: none).
func (f *fetchmailKeep) run() int {
	f.t.Helper()
	host, port, _ := strings.Cut(f.addr, ":")
	// sslproto '': fetchmail 6.4 would send STLS, which this plain
	// listener does not offer, and give up.
	rc := fmt.Sprintf(`set no bouncemail
set no syslog
set invisible
poll %s service %s protocol POP3 auth password uidl timeout 10
  user "%s" password "%s" is "nobody" here
  sslproto ''
  keep
  no rewrite
  mda "%s"
`, host, port, f.acct.Email, f.acct.Password, filepath.Join(f.home, "mda.sh"))
	rcFile := filepath.Join(f.home, "fetchmailrc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
		f.t.Fatal(err)
	}
	// fetchmail starts the MDA (a shell) once per message: on a loaded
	// 2-core machine that alone took 0.9 s a message, so the bound is wide.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fetchmail", "-f", rcFile, "--idfile", filepath.Join(f.home, "fetchids"),
		"--pidfile", filepath.Join(f.home, "fetchmail.pid"), "--nodetach")
	cmd.Env = append(os.Environ(), "HOME="+f.home, "FETCHMAILHOME="+f.home)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return 1
	}
	f.t.Fatalf("fetchmail: %v\n%s", err, out)
	return -1
}

// messageIDs counts the Message-IDs of the delivered files.
func (f *fetchmailKeep) messageIDs() map[string]int {
	f.t.Helper()
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			f.t.Fatal(err)
		}
		out[headerMessageID(f.t, b)]++
	}
	return out
}

// headerMessageID returns a message's Message-ID without angle brackets.
func headerMessageID(t *testing.T, b []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("unparsable message: %v\n%.200s", err, b)
	}
	return strings.Trim(m.Header.Get("Message-ID"), "<> ")
}

// pop3Keeper is a Go POP3 client that leaves mail on the server and
// remembers the UIDLs it has downloaded, like a phone's mail app.
type pop3Keeper struct {
	t    *testing.T
	addr string
	acct peers.Account
	seen map[string]bool     // UIDLs downloaded
	got  map[string][]string // Message-ID → UIDLs it was downloaded under
}

// fetch downloads every message whose UIDL it has not seen and returns
// the UIDLs the server listed.
func (k *pop3Keeper) fetch() map[string]bool {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pop3client.Dial(ctx, k.addr, pop3client.Options{})
	if err != nil {
		k.t.Fatal(err)
	}
	defer c.Close()
	if err := c.User(ctx, k.acct.Email, k.acct.Password); err != nil {
		k.t.Fatal(err)
	}
	ids, err := c.Uidl(ctx)
	if err != nil {
		k.t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range ids {
		listed[m.UniqueID] = true
		if k.seen[m.UniqueID] {
			continue
		}
		rc, err := c.Retr(ctx, m.Num)
		if err != nil {
			k.t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			k.t.Fatal(err)
		}
		id := headerMessageID(k.t, b)
		k.got[id] = append(k.got[id], m.UniqueID)
		k.seen[m.UniqueID] = true
	}
	c.Quit(ctx)
	return listed
}

// migrate stages, catches up and cuts the accounts over with "mailmig
// apply" while mail trickles in. On a loaded machine a catch-up may copy
// more than the threshold while mail keeps coming, and the next apply
// catches up again: apply until the cut-over is done (at most 5 runs).
func (x *e2e) migrate() {
	x.t.Helper()
	x.during("staging", exitOK, "apply", "-auto-approve")
	x.during("catchup", exitOK, "apply", "-auto-approve")
	for i := 0; i < 5; i++ {
		out := x.during("cutover", exitOK, "apply", "-auto-approve", "-refresh=false")
		if strings.Count(out, "cutover: done") == len(x.accts) {
			return
		}
	}
	x.t.Fatal("no cut-over after 5 applies")
}

// TestPOP3AcrossCutover: fetchmail in keep mode and a Go POP3 client that
// keeps mail on the server download everything through the proxy, then
// the account is cut over to Cyrus with "mailmig apply" while mail
// arrives; fetching again downloads exactly the messages that arrived
// since, each once: the UIDLs the clients knew survive (the cut-over's
// UIDL map), the new ones do not collide. Without the map fetchmail
// downloaded every message a second time.
//
// It runs with the route table in SQLite and in PostgreSQL (the UIDL map
// then lives in PostgreSQL too, written by the cut-over and read by the
// proxy at each login).
func TestPOP3AcrossCutover(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			testPOP3AcrossCutover(t, e2eOptions{Clients: true, RoutesPostgres: store == "postgres"})
		})
	}
}

func testPOP3AcrossCutover(t *testing.T, o e2eOptions) {
	x := newE2EWith(t, 1, o)
	a := x.accts[0]
	x.deliverAll("before")
	fm := newFetchmailKeep(t, x.pop3, a)
	if code := fm.run(); code != 0 {
		t.Fatalf("first fetchmail run: exit %d", code)
	}
	gk := &pop3Keeper{t: t, addr: x.pop3, acct: a, seen: map[string]bool{}, got: map[string][]string{}}
	before := gk.fetch()
	x.mu.Lock()
	first := len(x.expected[a.Email])
	x.mu.Unlock()
	if n := len(fm.messageIDs()); n != first || len(gk.got) != first {
		t.Fatalf("first fetch: fetchmail %d, Go client %d messages, want %d", n, len(gk.got), first)
	}

	x.migrate()
	x.deliverAll("after")
	if o.RoutesPostgres {
		checkPGUIDLMap(t, x, a.Email)
	}

	if code := fm.run(); code != 0 {
		t.Fatalf("fetchmail after the cut-over: exit %d", code)
	}
	after := gk.fetch()
	if code := fm.run(); code != 1 {
		t.Errorf("third fetchmail run: exit %d, want 1 (nothing new)", code)
	}
	for u := range before {
		if !after[u] {
			t.Errorf("UIDL %s of a migrated message is gone after the cut-over", u)
		}
	}
	x.mu.Lock()
	want := x.expected[a.Email]
	x.mu.Unlock()
	fids := fm.messageIDs()
	for id := range want {
		if fids[id] != 1 {
			t.Errorf("fetchmail has %s %d times, want once", id, fids[id])
		}
		if len(gk.got[id]) != 1 {
			t.Errorf("the Go client downloaded %s %d times (UIDLs %v), want once", id, len(gk.got[id]), gk.got[id])
		}
	}
	for id, n := range fids {
		if !want[id] {
			t.Errorf("fetchmail has an unexpected %s (%d times)", id, n)
		}
	}
	t.Logf("%d messages before the cut-over, %d in all; each client downloaded each once", first, len(want))
	x.check("seed", "before", "staging", "catchup", "cutover", "after")
}

// maildirIDs counts Message-IDs and content hashes of every message under
// a Maildir root (any folder), ignoring the headers the clients add
// (mbsync's X-TUID).
func maildirIDs(t *testing.T, root string) (ids map[string]int, hashes map[string]int) {
	t.Helper()
	ids, hashes = map[string]int{}, map[string]int{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if dir := filepath.Base(filepath.Dir(path)); dir != "cur" && dir != "new" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ids[headerMessageID(t, b)]++
		hashes[bodyHash(b)]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, hashes
}

// bodyHash hashes a message's bytes with LF line ends and without the
// X-TUID header mbsync adds.
func bodyHash(b []byte) string {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("X-TUID: ")) {
			out = append(out, l...)
		}
	}
	return fmt.Sprintf("%x", sha256.Sum256(out))
}

// runTool runs a sync client with HOME set and returns its output and
// error.
func runTool(home string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (testdata/peers/install.sh installs it)", name)
		}
		t.Skipf("%s is not installed (testdata/peers/install.sh installs it)", name)
	}
}

// mbsyncConf syncs INBOX both ways (mbsync's default) into a Maildir.
func mbsyncConf(t *testing.T, addr string, a peers.Account) (home, maildir string) {
	home = t.TempDir()
	maildir = filepath.Join(home, "mail")
	host, port, _ := strings.Cut(addr, ":")
	conf := fmt.Sprintf(`IMAPAccount proxy
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs PLAIN
Timeout 20

IMAPStore far
Account proxy

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel inbox
Far :far:INBOX
Near :near:INBOX
Create Near
Sync All
SyncState *
`, host, port, a.Email, a.Password, maildir, maildir)
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".mbsyncrc"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return home, maildir
}

// offlineimapConf syncs INBOX both ways into a Maildir.
func offlineimapConf(t *testing.T, addr string, a peers.Account) (home, maildir string) {
	home = t.TempDir()
	maildir = filepath.Join(home, "mail")
	host, port, _ := strings.Cut(addr, ":")
	conf := fmt.Sprintf(`[general]
accounts = proxy
metadata = %s/meta

[Account proxy]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %s

[Repository remote]
type = IMAP
remotehost = %s
remoteport = %s
remoteuser = %s
remotepass = %s
ssl = no
starttls = no
folderfilter = lambda f: f == 'INBOX'
`, home, maildir, host, port, a.Email, a.Password)
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".offlineimaprc"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return home, maildir
}

// condstoreCache is a go-imap client that keeps a local cache of INBOX
// keyed by UID under one UIDVALIDITY, synced incrementally with CONDSTORE
// (RFC 7162: CHANGEDSINCE), as a mobile client does. A new UIDVALIDITY
// throws the cache away and fetches again (RFC 9051 2.3.1.1).
type condstoreCache struct {
	t           *testing.T
	addr        string
	acct        peers.Account
	uidValidity uint32
	modSeq      uint64
	byUID       map[imap.UID]string // UID → Message-ID
	resyncs     int
}

func (c *condstoreCache) sync() {
	c.t.Helper()
	cl, err := imapclient.DialInsecure(c.addr, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Login(c.acct.Email, c.acct.Password).Wait(); err != nil {
		c.t.Fatal(err)
	}
	sel, err := cl.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		c.t.Fatal(err)
	}
	since := c.modSeq
	if sel.UIDValidity != c.uidValidity {
		c.uidValidity, c.modSeq, c.byUID, since = sel.UIDValidity, 0, map[imap.UID]string{}, 0
		c.resyncs++
	}
	if sel.NumMessages > 0 && (since == 0 || sel.HighestModSeq != since) {
		opts := &imap.FetchOptions{UID: true, Envelope: true, ModSeq: true, ChangedSince: since}
		msgs, err := cl.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, m := range msgs {
			c.byUID[m.UID] = m.Envelope.MessageID
		}
	}
	c.modSeq = sel.HighestModSeq
	cl.Logout().Wait()
}

// TestIMAPClientsAcrossCutover: mbsync (isync 1.4, Sync All into a
// Maildir), offlineimap3 and a go-imap client with a CONDSTORE cache keep
// INBOX through the proxy while "mailmig apply" cuts the account over to
// Cyrus with mail arriving. The flip ends their sessions; they reconnect
// to Cyrus, which has another UIDVALIDITY. Afterwards each local store
// holds every message exactly once (by Message-ID and by content hash),
// and nothing was uploaded back to the server.
func TestIMAPClientsAcrossCutover(t *testing.T) {
	needTool(t, "mbsync")
	needTool(t, "offlineimap")
	x := newE2EWith(t, 1, e2eOptions{Clients: true})
	a := x.accts[0]
	x.deliverAll("before")
	mbHome, mbDir := mbsyncConf(t, x.imap, a)
	oiHome, oiDir := offlineimapConf(t, x.imap, a)
	cache := &condstoreCache{t: t, addr: x.imap, acct: a}
	syncAll := func(when string) (mbOut, oiOut string, oiErr error) {
		out, err := runTool(mbHome, "mbsync", "-a")
		if err != nil {
			t.Fatalf("mbsync %s: %v\n%s", when, err, out)
		}
		oiOut, oiErr = runTool(oiHome, "offlineimap", "-o", "-u", "basic")
		cache.sync()
		return out, oiOut, oiErr
	}
	if _, out, err := syncAll("before"); err != nil {
		t.Fatalf("offlineimap before: %v\n%s", err, out)
	}
	sourceValidity := cache.uidValidity
	x.migrate()
	x.deliverAll("after")
	mbOut, oiOut, oiErr := syncAll("after")
	t.Logf("mbsync after the cut-over:\n%s", mbOut)
	t.Logf("offlineimap after the cut-over (err %v):\n%s", oiErr, oiOut)
	x.mu.Lock()
	want := x.expected[a.Email]
	x.mu.Unlock()
	for name, dir := range map[string]string{"mbsync": mbDir, "offlineimap": oiDir} {
		ids, hashes := maildirIDs(t, dir)
		missing := 0
		for id := range want {
			switch {
			case ids[id] == 0:
				missing++
			case ids[id] > 1:
				t.Errorf("%s: %s is in the Maildir %d times", name, id, ids[id])
			}
		}
		for h, n := range hashes {
			if n > 1 {
				t.Errorf("%s: content %.12s is in the Maildir %d times", name, h, n)
			}
		}
		t.Logf("%s: %d of %d messages in the Maildir, %d missing", name, len(ids), len(want), missing)
		if missing > 0 {
			t.Errorf("%s: %d messages missing from the Maildir", name, missing)
		}
	}
	got := map[string]int{}
	for _, id := range cache.byUID {
		got[id]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("CONDSTORE cache has %s %d times", id, got[id])
		}
	}
	switch {
	case cache.uidValidity == sourceValidity:
		// Dovecot and Cyrus derive UIDVALIDITY from the mailbox's creation
		// time; the test creates both within seconds, so they can be equal
		// (a real target's mailbox is created long after the source's).
		// The clients then cannot see the change; the Maildir checks above
		// still hold because the export keeps the source's order.
		t.Logf("source and target INBOX share UIDVALIDITY %d (created in the same second): the resync is not checked", sourceValidity)
	case cache.resyncs != 2:
		t.Errorf("the CONDSTORE client resynced %d times, want 2 (first sync, new UIDVALIDITY)", cache.resyncs)
	}
	// Nothing came back: the server holds each message once.
	x.check("seed", "before", "staging", "catchup", "cutover", "after")
}
