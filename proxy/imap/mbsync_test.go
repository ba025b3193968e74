package imap_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// needTool fails the test under CI=true when a client binary is missing
// (testdata/peers/install.sh installs it) and skips it otherwise.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (Debian package %s; testdata/peers/install.sh installs it)", name, pkg)
		}
		t.Skipf("%s is not installed (Debian package %s; testdata/peers/install.sh installs it)", name, pkg)
	}
}

// mbsyncFolders are the folders of the account the mbsync test loads: the
// INBOX, a non-ASCII one and a nested non-ASCII one whose parent exists
// only as a prefix.
var mbsyncFolders = []string{"INBOX", "Проекты", "Entwürfe/Projekte"}

// mbsyncCorpus returns a deterministic corpus of a few dozen small
// messages in mbsyncFolders, with flags.
func mbsyncCorpus() *corpus.Corpus {
	full := corpus.Generate(corpus.Options{Seed: 42, Messages: 400, Folders: 16, MaxSize: 48 << 10})
	c := &corpus.Corpus{Options: full.Options}
	for _, f := range full.Folders {
		if slices.Contains(mbsyncFolders, f.Name) {
			c.Folders = append(c.Folders, f)
		}
	}
	perFolder := map[string]int{}
	for _, m := range full.Messages {
		if slices.Contains(mbsyncFolders, m.Folder) && perFolder[m.Folder] < 15 {
			perFolder[m.Folder]++
			c.Messages = append(c.Messages, m)
		}
	}
	return c
}

// maildirMsg is one message file of mbsync's local Maildir.
type maildirMsg struct {
	folder string // IMAP name as mbsync wrote it (modified UTF-7)
	flags  string // Maildir info flags, sorted ("FRS")
	hash   string // SHA-256 of the bytes with CRLF turned into LF
}

// lfHash hashes a message with its line ends as a Maildir holds them
// (mbsync stores LF).
func lfHash(b []byte) string {
	h := sha256.Sum256(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	return hex.EncodeToString(h[:])
}

// readMaildir lists every message under root (mbsync's SubFolders
// Verbatim layout: folder "A/B" in root/A/B/{cur,new}).
func readMaildir(t *testing.T, root string) map[string]maildirMsg {
	t.Helper()
	out := map[string]maildirMsg{} // by file name without flags
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		dir := filepath.Base(filepath.Dir(path))
		if dir != "cur" && dir != "new" {
			return nil
		}
		folder, err := filepath.Rel(root, filepath.Dir(filepath.Dir(path)))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		name, info, _ := strings.Cut(d.Name(), ":2,")
		out[folder+"/"+name] = maildirMsg{folder: filepath.ToSlash(folder), flags: info, hash: lfHash(stripTUID(b))}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stripTUID removes the X-TUID header mbsync adds to the header of every
// message it stores (it finds new messages by it).
func stripTUID(b []byte) []byte {
	end := bytes.Index(b, []byte("\n\n"))
	if end < 0 {
		end = len(b)
	}
	i := bytes.Index(b[:end], []byte("\nX-TUID: "))
	if i < 0 {
		return b
	}
	j := bytes.IndexByte(b[i+1:], '\n')
	return append(b[:i+1:i+1], b[i+1+j+1:]...)
}

// maildirFlags is the Maildir info string mbsync writes for a corpus
// message's flags (keywords are not synced by mbsync).
func maildirFlags(m *corpus.Message) string {
	var f []byte
	for flag, c := range map[string]byte{`\Draft`: 'D', `\Flagged`: 'F', `$Forwarded`: 'P', `\Answered`: 'R', `\Seen`: 'S', `\Deleted`: 'T'} {
		if m.HasFlag(flag) {
			f = append(f, c)
		}
	}
	slices.Sort(f)
	return string(f)
}

type mbsync struct {
	t          *testing.T
	home, conf string
	maildir    string
	addr       string
}

// newMbsync writes an mbsync configuration that pulls every folder of the
// account from the IMAP server at addr into a Maildir under a temporary
// directory. security holds the account's TLS and authentication lines;
// empty means plaintext on loopback with AUTHENTICATE PLAIN.
func newMbsync(t *testing.T, addr string, a peers.Account, security string) *mbsync {
	t.Helper()
	home := t.TempDir()
	m := &mbsync{t: t, home: home, conf: filepath.Join(home, "mbsyncrc"), maildir: filepath.Join(home, "mail"), addr: addr}
	host, port, _ := strings.Cut(addr, ":")
	if security == "" {
		security = "SSLType None\nAuthMechs PLAIN"
	}
	conf := fmt.Sprintf(`IMAPAccount proxy
Host %s
Port %s
User %s
Pass %s
%s
Timeout 10

IMAPStore far
Account proxy

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
Expunge None
SyncState *
`, host, port, a.Email, a.Password, security, m.maildir, m.maildir)
	if err := os.Mkdir(m.maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// run runs mbsync once and fails the test when it does not succeed.
func (m *mbsync) run() string {
	m.t.Helper()
	out, err := m.try()
	if err != nil {
		m.t.Fatalf("mbsync through %s: %v\n%s", m.addr, err, out)
	}
	return out
}

// try runs mbsync once and returns its output and error.
func (m *mbsync) try() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mbsync", "-c", m.conf, "all")
	cmd.Env = append(os.Environ(), "HOME="+m.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// wantMaildir compares the Maildir with the messages of c: the same number
// per folder, the same bytes (as multisets of hashes per folder) and the
// same flags.
func wantMaildir(t *testing.T, got map[string]maildirMsg, msgs []*corpus.Message) {
	t.Helper()
	type key struct{ folder, hash, flags string }
	want := map[key]int{}
	for _, m := range msgs {
		want[key{corpus.EncodeMUTF7(m.Folder), lfHash(m.Bytes()), maildirFlags(m)}]++
	}
	have := map[key]int{}
	for _, g := range got {
		have[key{g.folder, g.hash, g.flags}]++
	}
	for k, n := range want {
		if have[k] != n {
			t.Errorf("folder %q: %d copies of message %.12s with flags %q, want %d", k.folder, have[k], k.hash, k.flags, n)
		}
	}
	for k, n := range have {
		if want[k] == 0 {
			t.Errorf("folder %q: %d unexpected copies of message %.12s with flags %q", k.folder, n, k.hash, k.flags)
		}
	}
}

// rawMsg is a message appended at an IMAP server outside the corpus.
type rawMsg struct {
	folder string
	flags  []imap.Flag
	body   []byte
}

func newRawMsg(folder, subject string, flags ...imap.Flag) rawMsg {
	id := fmt.Sprintf("%d.%s@example.test", time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "-"))
	body := fmt.Sprintf("From: a@example.test\r\nTo: b@example.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n%s\r\n.\r\nGr\u00fc\u00dfe\r\n", subject, id, subject)
	return rawMsg{folder: folder, flags: flags, body: []byte(body)}
}

// appendRaw appends messages directly at a backend.
func appendRaw(t *testing.T, addr string, a peers.Account, msgs ...rawMsg) {
	t.Helper()
	c := login(t, addr, a.Email, a.Password)
	for _, m := range msgs {
		cmd := c.Append(m.folder, int64(len(m.body)), &imap.AppendOptions{Flags: m.flags})
		cmd.Write(m.body)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append to %q at %s: %v", m.folder, addr, err)
		}
	}
	c.Logout().Wait()
}

// wantNew checks that the Maildir after has, besides the files of before,
// exactly the messages msgs (folder, bytes and flags).
func wantNew(t *testing.T, before, after map[string]maildirMsg, msgs ...rawMsg) {
	t.Helper()
	type key struct{ folder, hash, flags string }
	want := map[key]int{}
	for _, m := range msgs {
		var f []byte
		for _, fl := range m.flags {
			f = append(f, map[imap.Flag]byte{imap.FlagSeen: 'S', imap.FlagFlagged: 'F', imap.FlagAnswered: 'R'}[fl])
		}
		slices.Sort(f)
		want[key{corpus.EncodeMUTF7(m.folder), lfHash(m.body), string(f)}]++
	}
	have := map[key]int{}
	for name, g := range after {
		if _, ok := before[name]; !ok {
			have[key{g.folder, g.hash, g.flags}]++
		}
	}
	for k, n := range want {
		if have[k] != n {
			t.Errorf("new in folder %q: %d copies of message %.12s with flags %q, want %d", k.folder, have[k], k.hash, k.flags, n)
		}
	}
	for k, n := range have {
		if want[k] == 0 {
			t.Errorf("new in folder %q: %d unexpected copies of message %.12s with flags %q", k.folder, n, k.hash, k.flags)
		}
	}
	for name, g := range before {
		if a, ok := after[name]; !ok || a.hash != g.hash {
			t.Errorf("message %s of the earlier run changed or vanished", name)
		}
	}
}

// uidValidity returns a folder's UIDVALIDITY at a backend.
func uidValidity(t *testing.T, addr string, a peers.Account, folder string) uint32 {
	t.Helper()
	c := login(t, addr, a.Email, a.Password)
	st, err := c.Status(folder, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS %q at %s: %v", folder, addr, err)
	}
	c.Logout().Wait()
	return st.UIDValidity
}

// TestMbsync pulls an account through the proxy's IMAP front with mbsync
// (isync 1.4): a corpus of 39 messages (flags included) in INBOX, a non-ASCII
// folder and a nested non-ASCII folder is loaded into Dovecot; mbsync's
// first run brings every message into its Maildir byte for byte (LF line
// ends, mbsync's X-TUID header aside) with its flags; after two messages
// are appended at the source a second run copies exactly those two. Then
// the account is migrated to the second Dovecot (the same messages in the
// same order, so new UIDs only by UIDVALIDITY) plus one message only
// there, and its route flipped: mbsync's next run through the same proxy
// address lands on Dovecot2, notices the new UIDVALIDITY of every folder,
// recovers from it (isync 1.4 compares the Message-IDs at the UIDs it
// knows) and copies exactly the one new message, nothing twice.
//
// Found while writing it: when the migrated folder holds the messages in
// another order (the corpus loaded over two connections), mbsync 1.4 stops
// that folder with "UIDVALIDITY genuinely changed (at UID n)" and exits 1:
// for mbsync users a migration must keep the order of messages (better:
// UIDs and UIDVALIDITY).
func TestMbsync(t *testing.T) {
	s := peers.Get(t) // first: skips under -short
	needTool(t, "mbsync", "isync")
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c := mbsyncCorpus()
	if err := c.LoadIMAP(ctx, s.Dovecot.IMAP, a.Email, a.Password, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	mb := newMbsync(t, p.IMAP, a, "")
	mb.run()
	t.Logf("first mbsync run: %d messages in %v", len(c.Messages), time.Since(start))
	first := readMaildir(t, mb.maildir)
	wantMaildir(t, first, c.Messages)
	if t.Failed() {
		t.FailNow()
	}

	// Two more messages at the source: the second run copies exactly these.
	extra := []rawMsg{newRawMsg("INBOX", "added one", imap.FlagFlagged), newRawMsg("Entwürfe/Projekte", "added two", imap.FlagSeen)}
	appendRaw(t, s.Dovecot.IMAP, a, extra...)
	mb.run()
	second := readMaildir(t, mb.maildir)
	wantNew(t, first, second, extra...)
	if t.Failed() {
		t.FailNow()
	}

	// Migration to dovecot2 (the same messages, new UIDs), one message only
	// there, flip.
	if err := c.LoadIMAP(ctx, s.Dovecot2.IMAP, a.Email, a.Password, 1); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, s.Dovecot2.IMAP, a, extra...)
	only2 := newRawMsg("Проекты", "only on dovecot2")
	appendRaw(t, s.Dovecot2.IMAP, a, only2)
	p.Route(t, a.Email, "dovecot2")
	out := mb.run()
	for _, f := range mbsyncFolders {
		// UIDVALIDITY is time-based: a folder created in the same second
		// on both backends keeps its value, and mbsync has nothing to
		// recover from.
		if uidValidity(t, s.Dovecot.IMAP, a, f) == uidValidity(t, s.Dovecot2.IMAP, a, f) {
			continue
		}
		if !strings.Contains(out, "far side box "+corpus.EncodeMUTF7(f)+": Recovered from change of UIDVALIDITY") {
			t.Errorf("mbsync after the flip did not recover from the new UIDVALIDITY of %q:\n%s", f, out)
		}
	}
	third := readMaildir(t, mb.maildir)
	wantNew(t, second, third, only2)
}

// TestMbsyncSTARTTLS: with a certificate the proxy announces
// LOGINDISABLED before STARTTLS; mbsync upgrades the connection (checking
// the proxy's certificate, its trust anchor, for host name "localhost"),
// logs in with the LOGIN command and pulls the messages byte for byte.
// mbsync trusting another certificate refuses the session.
func TestMbsyncSTARTTLS(t *testing.T) {
	s := peers.Get(t) // first: skips under -short
	needTool(t, "mbsync", "isync")
	p := proxytest.Start(t, s, &proxytest.Options{TLS: true})
	a := s.NewAccount(t)
	msgs := []rawMsg{newRawMsg("INBOX", "over starttls", imap.FlagSeen), newRawMsg("Entwürfe/Projekte", "nested over starttls")}
	c := login(t, s.Dovecot.IMAP, a.Email, a.Password)
	if err := c.Create("Entwürfe/Projekte", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	appendRaw(t, s.Dovecot.IMAP, a, msgs...)
	_, port, _ := strings.Cut(p.IMAP, ":")

	other, _, _ := proxytest.SelfSigned(t, t.TempDir())
	bad := newMbsync(t, "localhost:"+port, a, "SSLType STARTTLS\nCertificateFile "+other+"\nAuthMechs LOGIN")
	if out, err := bad.try(); err == nil || !strings.Contains(out, "SSL error") || !strings.Contains(out, "certificate") {
		t.Errorf("mbsync trusting another certificate: err %v, want a certificate error:\n%s", err, out)
	}
	if n := len(readMaildir(t, bad.maildir)); n != 0 {
		t.Errorf("%d messages pulled over an untrusted connection", n)
	}

	mb := newMbsync(t, "localhost:"+port, a, "SSLType STARTTLS\nCertificateFile "+p.CertFile+"\nAuthMechs LOGIN")
	mb.run()
	wantNew(t, nil, readMaildir(t, mb.maildir), msgs...)
}
