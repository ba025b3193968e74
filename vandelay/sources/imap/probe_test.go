package imap_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// commandFront is a TCP front before the server that records the command
// names the client sends (cleartext only), to prove what a probe did.
type commandFront struct {
	ln   net.Listener
	mu   sync.Mutex
	cmds []string
}

var cmdRE = regexp.MustCompile(`^[A-Za-z0-9.]+ ((?i:UID) )?([A-Za-z]+)`)

func newCommandFront(t *testing.T, backend string) *commandFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &commandFront{ln: ln}
	serveFront(t, ln, func(c net.Conn) { f.serve(c, backend) })
	return f
}

func (f *commandFront) serve(c net.Conn, backend string) {
	b, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	go func() { io.Copy(c, b); c.Close() }()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if m := cmdRE.FindStringSubmatch(line); m != nil {
			f.mu.Lock()
			f.cmds = append(f.cmds, strings.ToUpper(strings.TrimSpace(m[1]+m[2])))
			f.mu.Unlock()
		}
		if _, werr := io.WriteString(b, line); werr != nil || err != nil {
			return
		}
	}
}

func (f *commandFront) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cmds
	f.cmds = nil
	return c
}

func overview(t *testing.T, ar *archive.Archive) []archive.MailboxCursor {
	t.Helper()
	o, err := ar.Overview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return o.Cursors
}

// TestProbe imports an account, changes the source (appends, an expunge,
// a flag change, a new, a deleted and a renamed folder) and checks that
// Probe reports the change from LIST-STATUS alone — and with STATUS per
// mailbox on a server without LIST-STATUS — without SELECT or FETCH.
func TestProbe(t *testing.T) {
	a := newAccount(t)
	a.load(t, 21, 60)
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, a.factory()(t), nil)
	front := newCommandFront(t, a.addr)
	probe := func(t *testing.T, ignore ...imap.Cap) *vandelay.ProbeResult {
		t.Helper()
		src, err := imapsrc.New(a.config(func(c *imapsrc.Options) { c.Address = front.ln.Addr().String() }))
		if err != nil {
			t.Fatal(err)
		}
		imapsrc.IgnoreCaps(src, ignore...)
		defer src.Close()
		front.take()
		r, err := src.(*imapsrc.Source).Probe(context.Background(), overview(t, ar))
		if err != nil {
			t.Fatal(err)
		}
		sawList := false
		for _, c := range front.take() {
			switch strings.TrimPrefix(c, "UID ") {
			case "SELECT", "EXAMINE", "FETCH", "SEARCH", "STORE", "APPEND":
				t.Errorf("probe sent %s", c)
			case "LIST", "STATUS":
				sawList = true
			}
		}
		if !sawList {
			t.Error("the front saw no LIST or STATUS: it does not see the commands")
		}
		return r
	}

	r := probe(t)
	if r.Changed() || r.Mailboxes != len(testFolders) {
		t.Fatalf("probe right after the import: %+v, want no change over %d mailboxes", r, len(testFolders))
	}

	c := a.client(t)
	for i := 0; i < 5; i++ {
		a.appendMsg(t, c, "INBOX", testMessage(22, i, 800), nil, time.Now())
	}
	a.appendMsg(t, c, "Sent", testMessage(22, 9, 800), nil, time.Now())
	if _, err := c.Select("Work/Reports 2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Probe"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	expunged, err := c.Expunge().Collect() // seq 1 and any message already \Deleted
	if err != nil || len(expunged) == 0 {
		t.Fatalf("expunge: %v %v", expunged, err)
	}
	c.Unselect().Wait()
	if err := c.Create("Probe-Neu", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Lists/golang-nuts").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Проекты", "Projekte", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var gone int64
	for _, k := range overview(t, ar) {
		if k.Path == "Lists/golang-nuts" {
			gone = k.Messages
		}
	}

	for _, tc := range []struct {
		name   string
		ignore []imap.Cap
	}{{"list-status", nil}, {"status-per-mailbox", []imap.Cap{imap.CapListStatus}}} {
		t.Run(tc.name, func(t *testing.T) {
			r := probe(t, tc.ignore...)
			if r.New != 6 {
				t.Errorf("new = %d, want 6", r.New)
			}
			if want := int64(len(expunged)) + gone; r.Deleted != want {
				t.Errorf("deleted = %d, want %d (%d expunged, %d in the deleted folder)", r.Deleted, want, len(expunged), gone)
			}
			// INBOX, Sent, Work/Reports 2024 (flag), Archive (expunge),
			// Probe-Neu (added), Lists/golang-nuts (removed).
			if r.MailboxesChanged != 6 {
				t.Errorf("mailboxes changed = %d, want 6: %+v", r.MailboxesChanged, r)
			}
			if strings.Join(r.Added, ",") != "Probe-Neu" || strings.Join(r.Removed, ",") != "Lists/golang-nuts" || strings.Join(r.Renamed, ",") != "Проекты → Projekte" {
				t.Errorf("folders: added %q removed %q renamed %q", r.Added, r.Removed, r.Renamed)
			}
			if r.NotImported || !r.Approx || r.Since.IsZero() {
				t.Errorf("flags: %+v", r)
			}
		})
	}

	// The front must see the FETCH a real import sends, or the checks
	// above prove nothing.
	front.take()
	vandelaytest.Import(t, vandelaytest.OpenArchive(t), a.factory(func(c *imapsrc.Options) { c.Address = front.ln.Addr().String(); c.NoCompress = true })(t), nil)
	fetched := false
	for _, c := range front.take() {
		fetched = fetched || c == "UID FETCH"
	}
	if !fetched {
		t.Error("the front saw no UID FETCH during an import")
	}

	// After the next import the probe is quiet again.
	vandelaytest.Import(t, ar, a.factory()(t), nil)
	if r := probe(t); r.Changed() {
		t.Errorf("probe after the catch-up import: %+v", r)
	}
}

// TestProbeNotImported: an empty archive compares as "not imported yet".
func TestProbeNotImported(t *testing.T) {
	a := newAccount(t)
	a.load(t, 23, 10)
	r, err := imapsrc.Probe(context.Background(), a.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.NotImported || r.Messages < 10 || r.New != r.Messages {
		t.Errorf("probe without archive: %+v", r)
	}
}

// BenchmarkProbe is one probe of an imported account with 13 mailboxes
// (login, LIST-STATUS, logout): what -refresh costs per account.
func BenchmarkProbe(b *testing.B) {
	a := newAccount(b)
	a.load(b, 24, 40)
	ar := vandelaytest.OpenArchive(b)
	vandelaytest.Import(b, ar, a.factory()(b), nil)
	o, err := ar.Overview(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cfg := a.config()
	b.ResetTimer()
	for b.Loop() {
		r, err := imapsrc.Probe(context.Background(), cfg, o.Cursors)
		if err != nil || r.Changed() {
			b.Fatalf("probe: %+v %v", r, err)
		}
	}
}

// TestProbeSourceSize: before the first import the probe counts the
// account's messages and bytes in its one LIST … RETURN (STATUS (MESSAGES
// SIZE …)), equal to what was seeded; a server without STATUS=SIZE gives
// the count and says the bytes are unknown. With a completed import the
// size is not asked for.
func TestProbeSourceSize(t *testing.T) {
	a := newAccount(t)
	c := a.client(t)
	if err := c.Create("Größen", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var msgs, size int64
	for i, mb := range []string{"INBOX", "INBOX", "INBOX", "Größen", "Größen"} {
		msg := testMessage(31, i, 1000+i*700)
		a.appendMsg(t, c, mb, msg, nil, time.Now())
		msgs++
		size += int64(len(msg))
	}
	front := newCommandFront(t, a.addr)
	probe := func(t *testing.T, known []archive.MailboxCursor, ignore ...imap.Cap) *vandelay.ProbeResult {
		t.Helper()
		src, err := imapsrc.New(a.config(func(c *imapsrc.Options) { c.Address = front.ln.Addr().String() }))
		if err != nil {
			t.Fatal(err)
		}
		imapsrc.IgnoreCaps(src, ignore...)
		defer src.Close()
		front.take()
		r, err := src.(*imapsrc.Source).Probe(context.Background(), known)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range front.take() {
			switch strings.TrimPrefix(c, "UID ") {
			case "SELECT", "EXAMINE", "FETCH", "SEARCH":
				t.Errorf("probe sent %s", c)
			}
		}
		return r
	}
	r := probe(t, nil)
	if !r.NotImported || r.Messages != msgs || r.Bytes != size || r.BytesFrom != "status-size" {
		t.Errorf("probe without archive: %d messages, %d bytes from %q (%+v), want %d messages, %d bytes from status-size",
			r.Messages, r.Bytes, r.BytesFrom, r, msgs, size)
	}
	r = probe(t, nil, imap.CapStatusSize, imap.CapIMAP4rev2)
	if !r.NotImported || r.Messages != msgs || r.Bytes != -1 || r.BytesFrom != "" {
		t.Errorf("probe without STATUS=SIZE: %d messages, %d bytes from %q, want %d messages, bytes unknown (-1)", r.Messages, r.Bytes, r.BytesFrom, msgs)
	}
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, a.factory()(t), nil)
	if r := probe(t, overview(t, ar)); r.NotImported || r.Bytes != -1 {
		t.Errorf("probe after the import: %+v, want a delta without size", r)
	}
}
