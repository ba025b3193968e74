package jmap_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// genMsg is one generated message at the "source".
type genMsg struct {
	key   string
	body  []byte
	boxes []string
	kws   []string
	date  time.Time
}

// folders of the generated source: roles, nesting, non-ASCII names and a
// name with a character Cyrus refuses (";").
var folders = []archive.MailboxInfo{
	{Path: "INBOX", Sep: "/", Role: archive.RoleInbox, Subscribed: true, Selectable: true, SourceRef: "f0"},
	{Path: "Sent", Sep: "/", Role: archive.RoleSent, Subscribed: true, Selectable: true, SourceRef: "f1"},
	{Path: "Trash", Sep: "/", Role: archive.RoleTrash, Subscribed: true, Selectable: true, SourceRef: "f2"},
	{Path: "Entwürfe/Projekte", Sep: "/", Subscribed: true, Selectable: true, SourceRef: "f3"},
	{Path: "Проекты", Sep: "/", Subscribed: false, Selectable: true, SourceRef: "f4"},
	{Path: "Work/Reports 2024/Q1", Sep: "/", Subscribed: true, Selectable: true, SourceRef: "f5"},
	{Path: "日本語のフォルダ", Sep: "/", Subscribed: true, Selectable: true, SourceRef: "f6"},
	{Path: "Lists/a;b", Sep: "/", Subscribed: true, Selectable: true, SourceRef: "f7"},
}

var kwChoices = [][]string{nil, {"$seen"}, {"$seen", "$flagged"}, {"$answered", "$seen"}, {"$forwarded"}, {"$seen", "Projekt-X"}, {"$label1"}}

// genCorpus makes n deterministic messages: sizes from 300 B to ~300 KB
// (one of 2 MB), raw 8-bit and encoded-word headers, CRLF, some messages
// in two folders.
func genCorpus(seed uint64, n int) []*genMsg {
	r := rand.New(rand.NewPCG(seed, 7))
	var out []*genMsg
	for i := 0; i < n; i++ {
		size := 300 + int(r.ExpFloat64()*8000)
		if i == 7 {
			size = 2 << 20
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: Jörg Müller <joerg%d@example.test>\r\n", i)
		fmt.Fprintf(&b, "To: alice@example.test\r\n")
		if i%3 == 0 {
			fmt.Fprintf(&b, "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_Nr=2E_%d?=\r\n", i)
		} else {
			fmt.Fprintf(&b, "Subject: Grüße aus München %d\r\n", i) // raw 8-bit: munge8bit must be off
		}
		fmt.Fprintf(&b, "Message-ID: <gen-%d-%d@example.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n", seed, i)
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		for b.Len() < size {
			fmt.Fprintf(&b, "Zeile %d: äöü %x\r\n", b.Len(), r.Uint64())
		}
		m := &genMsg{key: fmt.Sprint(i), body: b.Bytes(), kws: kwChoices[r.IntN(len(kwChoices))],
			date: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(4*365*24)) * time.Hour)}
		m.boxes = []string{folders[r.IntN(len(folders))].Path}
		if i%11 == 0 {
			other := folders[r.IntN(len(folders))].Path
			if other != m.boxes[0] {
				m.boxes = append(m.boxes, other)
			}
		}
		out = append(out, m)
	}
	return out
}

// source is the generated "source account": folders and messages, which
// a test changes between runs and loads into the archive with the archive's
// own run API (the IMAP source is tested by its own package).
type source struct {
	folders []archive.MailboxInfo
	msgs    []*genMsg
}

func (s *source) load(t *testing.T, a *archive.Archive) {
	t.Helper()
	ctx := context.Background()
	run, err := a.BeginRun(ctx, archive.Source{Kind: "imap", Endpoint: "gen", Account: "gen@example.test", Login: "gen"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := run.SyncMailboxes(ctx, s.folders, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]map[string]*genMsg{}
	for _, m := range s.msgs {
		for _, p := range m.boxes {
			id := boxes[p].ID
			if want[id] == nil {
				want[id] = map[string]*genMsg{}
			}
			want[id][m.key] = m
		}
	}
	for _, b := range boxes {
		locs, err := run.Locations(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		for key, loc := range locs {
			m, ok := want[b.ID][key]
			if !ok {
				if err := run.Remove(ctx, b.ID, key); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if strings.Join(archive.NormalizeKeywords(loc.Keywords), " ") != strings.Join(archive.NormalizeKeywords(m.kws), " ") {
				if err := run.SetKeywords(ctx, b.ID, key, m.kws, 0); err != nil {
					t.Fatal(err)
				}
			}
			delete(want[b.ID], key)
		}
		for key, m := range want[b.ID] {
			if err := run.Add(ctx, b.ID, key, &archive.NewMessage{Body: m.body, ReceivedAt: m.date, Keywords: m.kws}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := run.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
}

func tempArchive(t testing.TB) *archive.Archive {
	t.Helper()
	a, err := archive.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func dial(t testing.TB, url string, acct peers.Account) *jc.Client {
	t.Helper()
	c, err := jc.Discover(context.Background(), url, &jc.Options{Auth: jc.BasicAuth{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// imapView is what Cyrus's own IMAP server shows: folder → sha256 →
// "flags|internaldate".
type imapView map[string]map[string]string

func readIMAP(t *testing.T, addr string, acct peers.Account) imapView {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	view := imapView{}
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sd, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("select %s: %v", l.Mailbox, err)
		}
		name := l.Mailbox
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		view[name] = map[string]string{}
		if sd.NumMessages == 0 {
			continue
		}
		var set imap.SeqSet
		set.AddRange(1, sd.NumMessages)
		sec := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(set, &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			h := sha256.Sum256(m.FindBodySection(sec))
			var fl []string
			for _, f := range m.Flags {
				if k, _ := archive.KeywordFromFlag(string(f)); k != "" {
					fl = append(fl, strings.ToLower(k))
				}
			}
			sort.Strings(fl)
			view[name][hex.EncodeToString(h[:])] = strings.Join(fl, " ") + "|" + m.InternalDate.UTC().Format(time.RFC3339)
		}
	}
	return view
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// expectedView is the imapView the source implies. Folder names carry
// the exporter's replacement of characters Cyrus refuses.
func (s *source) expectedView(defaults []string) imapView {
	v := imapView{}
	for _, d := range defaults {
		v[d] = map[string]string{}
	}
	for _, f := range s.folders {
		v[cyrusName(f.Path)] = map[string]string{}
	}
	for _, m := range s.msgs {
		h := sha256.Sum256(m.body)
		var kws []string
		for _, k := range archive.NormalizeKeywords(m.kws) {
			kws = append(kws, strings.ToLower(k))
		}
		sort.Strings(kws)
		for _, b := range m.boxes {
			v[cyrusName(b)][hex.EncodeToString(h[:])] = strings.Join(kws, " ") + "|" + m.date.UTC().Format(time.RFC3339)
		}
	}
	return v
}

func cyrusName(p string) string { return strings.ReplaceAll(p, ";", "_") }

func diffViews(want, got imapView) []string {
	var out []string
	for f, w := range want {
		g, ok := got[f]
		if !ok {
			out = append(out, "missing folder "+f)
			continue
		}
		for h, wv := range w {
			if gv, ok := g[h]; !ok {
				out = append(out, fmt.Sprintf("%s: missing %.12s", f, h))
			} else if gv != wv {
				out = append(out, fmt.Sprintf("%s: %.12s is %q, want %q", f, h, gv, wv))
			}
		}
		for h := range g {
			if _, ok := w[h]; !ok {
				out = append(out, fmt.Sprintf("%s: extra %.12s", f, h))
			}
		}
	}
	for f, g := range got {
		if _, ok := want[f]; !ok && len(g) > 0 {
			out = append(out, fmt.Sprintf("unexpected folder %s with %d messages", f, len(g)))
		}
	}
	sort.Strings(out)
	return out
}

var _ = os.Getenv

var usingMail = jc.UsingMail

func callList(c ...*jc.Call) []*jc.Call { return c }

func importCall(acct, blobID, mailbox string, date time.Time) *jc.Call {
	d := jc.UTCDate(date)
	return &jc.Call{Method: "Email/import", Args: map[string]any{"accountId": acct, "emails": map[string]jc.EmailImport{
		"x": {BlobID: blobID, MailboxIDs: map[string]bool{mailbox: true}, Keywords: map[string]bool{}, ReceivedAt: &d},
	}}}
}
