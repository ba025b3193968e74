package takeout

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

func TestParseLabels(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"simple":       {"Inbox,Sent,Opened", []string{"Inbox", "Sent", "Opened"}},
		"quoted-comma": {`"Kunden, alt",Inbox`, []string{"Kunden, alt", "Inbox"}},
		"quote-escape": {`"say ""hi""",x`, []string{`say "hi"`, "x"}},
		"encoded":      {"=?UTF-8?Q?Gesch=C3=A4ftlich?=,Work/Reports", []string{"Geschäftlich", "Work/Reports"}},
		"encoded-b":    {"=?UTF-8?B?0J/RgNC+0LXQutGC0Ys=?=/2024", []string{"Проекты/2024"}},
		"latin1":       {"=?ISO-8859-1?Q?M=FCller?=", []string{"Müller"}},
		"windows-1252": {"=?windows-1252?Q?caf=E9?=", []string{"café"}},
		"folded":       {"Inbox,\r\n Important,\r\n\tStarred", []string{"Inbox", "Important", "Starred"}},
		"spaces-empty": {" Inbox , ,Sent ", []string{"Inbox", "Sent"}},
		"empty":        {"", nil},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ParseLabels(tc.in)); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestMapLabels(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []string
		want Mapping
	}{
		"system": {[]string{"Inbox", "Starred", "Important", "Opened", "Category Promotions"},
			Mapping{Mailboxes: []string{"INBOX"}, Keywords: []string{"$flagged", "$important", "$seen"}}},
		"unread-spam": {[]string{"Spam", "Unread"}, Mapping{Mailboxes: []string{"Junk"}}},
		"archived":    {[]string{"Archived", "Opened"}, Mapping{Mailboxes: []string{"Archive"}, Keywords: []string{"$seen"}}},
		"no-mailbox":  {[]string{"Starred", "Unread"}, Mapping{Mailboxes: []string{"Archive"}, Keywords: []string{"$flagged"}}},
		"user-nested": {[]string{"Work/ Reports /2024", "Sent", "IMAP_$Forwarded", "IMAP_Projekt-X", "Opened"},
			Mapping{Mailboxes: []string{"Work/Reports/2024", "Sent"}, Keywords: []string{"$forwarded", "$seen", "Projekt-X"}}},
		"drafts-trash": {[]string{"Drafts", "Trash", "Opened"}, Mapping{Mailboxes: []string{"Drafts", "Trash"}, Keywords: []string{"$seen"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, MapLabels(tc.in)); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func split(t *testing.T, mbox string) []*Message {
	t.Helper()
	sp := NewSplitter(strings.NewReader(mbox))
	var out []*Message
	for {
		m, err := sp.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func TestSplitter(t *testing.T) {
	for name, tc := range map[string]struct {
		in    string
		want  []string
		dates []string
	}{
		"lf": {"From 1@xxx Wed Jun 26 12:01:02 +0000 2024\nSubject: a\n\nbody\n>From here\n>>From there\n\nFrom 2@xxx Thu Jun  6 01:02:03 +0200 2024\nSubject: b\n\nFrom inside, not after blank? no: after blank\n",
			[]string{"Subject: a\r\n\r\nbody\r\nFrom here\r\n>From there\r\n", "Subject: b\r\n", ""},
			[]string{"2024-06-26T12:01:02Z", "2024-06-05T23:02:03Z", "0001-01-01T00:00:00Z"}},
		"crlf": {"From x Wed Jun 26 12:01:02 +0000 2024\r\nSubject: a\r\n\r\nline\r\nFrom not-a-separator\r\n\r\n",
			[]string{"Subject: a\r\n\r\nline\r\nFrom not-a-separator\r\n"}, []string{"2024-06-26T12:01:02Z"}},
		"no-final-newline": {"From x Wed Jun 26 12:01:02 2024\nSubject: a\n\nend", []string{"Subject: a\r\n\r\nend"}, []string{"2024-06-26T12:01:02Z"}},
		"blank-lines-kept": {"From x bad date\nA: b\n\n\n\nx\n\n\n", []string{"A: b\r\n\r\n\r\n\r\nx\r\n\r\n"}, []string{"0001-01-01T00:00:00Z"}},
		"garbage-first":    {"junk\nFrom x y\nA: b\n", []string{"A: b\r\n"}, []string{"0001-01-01T00:00:00Z"}},
		"empty":            {"", nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			ms := split(t, tc.in)
			var got, dates []string
			for _, m := range ms {
				got = append(got, string(m.Body))
				dates = append(dates, m.Date().UTC().Format(time.RFC3339))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Error(diff)
			}
			if diff := cmp.Diff(tc.dates, dates); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func FuzzSplitter(f *testing.F) {
	for _, s := range []string{"From a b\nx\n\nFrom c d\ny\n", "From x\r\n>From y\r\n\r\n", "\n\nFrom ", ">From \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sp := NewSplitter(bytes.NewReader(b))
		n := 0
		for {
			m, err := sp.Next()
			if err != nil {
				break
			}
			n++
			if bytes.Contains(bytes.ReplaceAll(m.Body, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("bare LF in output %q", m.Body)
			}
			m.Date()
			if st := StripTakeoutHeaders(m.Body); len(st) > len(m.Body) {
				t.Fatalf("stripping grew the message: %q", st)
			}
		}
		if n > bytes.Count(b, []byte("From "))+0 {
			t.Fatalf("%d messages from %d separators", n, bytes.Count(b, []byte("From ")))
		}
	})
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"Inbox,Sent", `"a,b",c`, "=?UTF-8?Q?x=2Cy?=", `"unterminated`, "IMAP_$Forwarded,Category Social"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls := ParseLabels(s)
		for _, l := range ls {
			if strings.TrimSpace(l) == "" || !utf8.ValidString(l) {
				t.Fatalf("bad label %q from %q", l, s)
			}
		}
		m := MapLabels(ls)
		if len(m.Mailboxes) == 0 {
			t.Fatal("no mailbox")
		}
		for _, p := range m.Mailboxes {
			if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
				t.Fatalf("bad path %q", p)
			}
		}
	})
}

// testMbox is a Takeout-style mbox with LF line ends: multi-label messages,
// encoded-word and nested labels, From-quoting.
type tmsg struct {
	from, labels, rest string
}

func mbox(msgs []tmsg) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		b.WriteString("From " + m.from + "\n")
		b.WriteString("X-GM-THRID: 1\nX-Gmail-Labels: " + m.labels + "\n" + m.rest + "\n")
	}
	return b.Bytes()
}

func crlfBody(m tmsg) []byte {
	s := m.rest
	s = strings.ReplaceAll(s, "\n>From ", "\nFrom ")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

var msgsV1 = []tmsg{
	{"1@xxx Wed Jun 26 12:01:02 +0000 2024", "Inbox,Opened,Important,Category Personal",
		"Subject: one\nMessage-ID: <1@example.test>\n\nhello\n>From the start\n"},
	{"2@xxx Thu Jun 27 08:00:00 +0000 2024", "Sent,=?UTF-8?Q?Gesch=C3=A4ftlich?=/Kunden,Starred,Opened,IMAP_$Forwarded",
		"Subject: two\n\nmulti-label\n"},
	{"3@xxx Fri Jun 28 08:00:00 +0000 2024", `"Reisen, privat",Inbox,Unread`, "Subject: three\n\nx\n"},
	{"4@xxx Sat Jun 29 08:00:00 +0000 2024", "Spam,Unread", "Subject: four\n\nspam\n"},
	{"5@xxx Sun Jun 30 08:00:00 +0000 2024", "Archived,Opened,Work/Reports/2024", "Subject: five\n\nreport\n"},
	{"6@xxx Sun Jun 30 09:00:00 +0000 2024", "Opened", "Subject: six\n\nall mail only\n"},
	{"7@xxx Sun Jun 30 10:00:00 +0000 2024", "Drafts,Opened", "Subject: seven\n\ndraft\n"},
}

func wantOf(msgs []tmsg) *vandelaytest.Want {
	w := &vandelaytest.Want{CheckRoles: true, CheckDates: true}
	for _, m := range msgs {
		mp := MapLabels(ParseLabels(m.labels))
		body := crlfBody(m)
		d := (&Message{From: "From " + m.from}).Date()
		for _, p := range mp.Mailboxes {
			w.Add(p, &vandelaytest.WantMessage{Hash: archive.Hash(body), Size: int64(len(body)), Keywords: mp.Keywords, ReceivedAt: d})
			w.Mailboxes[p].Role = roleOf(p)
		}
	}
	// Placeholder parents are not selectable and not in want.
	return w
}

func writeZip(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, _ := zw.Create("Takeout/Mail/All mail Including Spam and Trash.mbox")
	w.Write(data)
	w2, _ := zw.Create("Takeout/archive_browser.html")
	w2.Write([]byte("<html></html>"))
	zw.Close()
	f.Close()
}

func factory(path string) func(testing.TB) vandelay.MailSource {
	return func(t testing.TB) vandelay.MailSource {
		src, err := New(&Options{Path: path, User: "someone@gmail.example"})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
}

// TestTakeoutZip imports a generated Takeout zip and checks the label
// mapping, multi-label membership, bytes and dates; then a newer Takeout
// with changes converges.
func TestTakeoutZip(t *testing.T) {
	dir := t.TempDir()
	zp := filepath.Join(dir, "takeout-1.zip")
	writeZip(t, zp, mbox(msgsV1))
	want := wantOf(msgsV1)
	vandelaytest.Run(t, factory(zp), want)

	a := vandelaytest.OpenArchive(t)
	res := vandelaytest.Import(t, a, factory(zp)(t), nil)
	if res.MessagesAdded != len(msgsV1) {
		t.Errorf("added %d, want %d (one message per content, however many labels)", res.MessagesAdded, len(msgsV1))
	}
	mbs, _ := a.Mailboxes(context.Background(), nil)
	roles := map[string]string{}
	for _, m := range mbs {
		roles[m.Path] = m.Role
	}
	for p, r := range map[string]string{"INBOX": "inbox", "Sent": "sent", "Junk": "junk", "Archive": "archive", "Drafts": "drafts",
		"Geschäftlich/Kunden": "", "Reisen, privat": "", "Work/Reports/2024": "", "Work": ""} {
		if got, ok := roles[p]; !ok || got != r {
			t.Errorf("mailbox %q: role %q (present %v), want %q", p, got, ok, r)
		}
	}

	// A newer Takeout: message 3 gone, message 2 loses Starred and a
	// label, message 5 moves from Work/Reports/2024 to Inbox, a new one.
	v2 := append([]tmsg(nil), msgsV1...)
	v2 = append(v2[:2], v2[3:]...)
	v2[1].labels = "Sent,Opened,IMAP_$Forwarded"
	v2[3].labels = "Archived,Opened,Inbox"
	v2 = append(v2, tmsg{"8@xxx Mon Jul 01 08:00:00 +0000 2024", "Inbox", "Subject: eight\n\nnew\n"})
	zp2 := filepath.Join(dir, "takeout-2.zip")
	writeZip(t, zp2, mbox(v2))
	// Takeout's own headers are stripped, so re-labelled messages keep
	// their content hash: membership and keyword changes.
	res = vandelaytest.Import(t, a, factory(zp2)(t), nil)
	want2 := archive.Counts{MessagesAdded: 1, MessagesDeleted: 1, MessagesMoved: 2, MessagesReflagged: 1}
	got := res.Counts
	got.Fetched, got.FetchedBytes, got.BlobsStored, got.BlobBytes, got.MailboxesCreated, got.MailboxesDeleted = 0, 0, 0, 0, 0, 0
	if got != want2 {
		t.Errorf("re-run counts %+v, want %+v", res.Counts, want2)
	}
	vandelaytest.Check(t, a, wantOf(v2))
}

// TestTakeoutFormats reads the same mbox from a .tgz, a directory and a
// bare .mbox.
func TestTakeoutFormats(t *testing.T) {
	dir := t.TempDir()
	data := mbox(msgsV1)
	tgz := filepath.Join(dir, "takeout.tgz")
	f, _ := os.Create(tgz)
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "Takeout/Mail/Inbox.mbox", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	gz.Close()
	f.Close()
	tree := filepath.Join(dir, "tree", "Takeout", "Mail")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "All mail.mbox"), data, 0o644)
	bare := filepath.Join(dir, "x.mbox")
	os.WriteFile(bare, bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")), 0o644)
	for _, p := range []string{tgz, filepath.Join(dir, "tree"), bare} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			a := vandelaytest.OpenArchive(t)
			vandelaytest.Import(t, a, factory(p)(t), nil)
			vandelaytest.Check(t, a, wantOf(msgsV1))
		})
	}
}

func TestStripTakeoutHeaders(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"takeout": {"X-GM-THRID: 123\r\nX-Gmail-Labels: Inbox,\r\n Sent\r\nSubject: x\r\n\r\nX-Gmail-Labels: body\r\n",
			"Subject: x\r\n\r\nX-Gmail-Labels: body\r\n"},
		"none":      {"Subject: x\r\n Folded\r\n\r\nb", "Subject: x\r\n Folded\r\n\r\nb"},
		"no-body":   {"X-GM-THRID: 1\r\nA: b\r\n", "A: b\r\n"},
		"only-ours": {"x-gmail-labels: a\r\n\r\n", "\r\n"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := string(StripTakeoutHeaders([]byte(tc.in))); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
