package jmap

import (
	"regexp"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

func TestStoredPosition(t *testing.T) {
	p := position{Mailbox: "56", Email: "57", Scope: ""}
	q := position{Mailbox: "56", Email: "58"}
	cur := func(ref string, pos position) archive.MailboxCursor {
		return archive.MailboxCursor{SourceRef: ref, Selectable: true, Cursor: archive.Cursor{Extra: pos.encode()}}
	}
	for _, tc := range []struct {
		name  string
		known []archive.MailboxCursor
		ok    bool
	}{
		{"none", nil, false},
		{"agree", []archive.MailboxCursor{cur("jmap:a", p), cur("jmap:b", p), {SourceRef: "", Selectable: false}}, true},
		{"disagree", []archive.MailboxCursor{cur("jmap:a", p), cur("jmap:b", q)}, false},
		{"one missing", []archive.MailboxCursor{cur("jmap:a", p), {SourceRef: "jmap:b", Selectable: true}}, false},
		{"imap cursors only", []archive.MailboxCursor{{SourceRef: "uidvalidity:1", Cursor: archive.Cursor{Validity: 1, Extra: "3"}}}, false},
	} {
		got, ok := storedPosition(tc.known)
		if ok != tc.ok || (ok && got != p) {
			t.Errorf("%s: %+v, %v", tc.name, got, ok)
		}
	}
	if scopeKey(&vandelay.Scope{}) != "" || scopeKey(&vandelay.Scope{Include: []*regexp.Regexp{regexp.MustCompile("a")}}) ==
		scopeKey(&vandelay.Scope{Exclude: []*regexp.Regexp{regexp.MustCompile("a")}}) {
		t.Error("scope fingerprints do not tell scopes apart")
	}
}

// FuzzParsePosition: any stored cursor text parses or is refused without
// panicking, and what parses encodes back to itself.
func FuzzParsePosition(f *testing.F) {
	f.Add(position{Mailbox: "1", Email: "2"}.encode())
	f.Add(position{Mailbox: "a b", Email: "\x00", Scope: "x"}.encode())
	f.Add("jmap1 {}")
	f.Add("jmap1 null")
	f.Add("12")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePosition(s)
		if err != nil {
			return
		}
		q, err := parsePosition(p.encode())
		if err != nil || q != p {
			t.Fatalf("round trip of %q: %+v, %v", s, q, err)
		}
	})
}

// FuzzMailboxInfos: any mailbox list (cycles, unknown parents, names
// with every separator) yields one entry per mailbox, with a path that
// is never empty when the name is not.
func FuzzMailboxInfos(f *testing.F) {
	f.Add("a", "", "b", "a", "inbox")
	f.Add("x/y", "x", "x", "x", "")
	f.Add("", "z", "z", "", "sent")
	f.Fuzz(func(t *testing.T, n1, p1, n2, p2, role string) {
		list := mailboxesOf(n1, p1, n2, p2, role)
		out := mailboxInfos(list)
		if len(out) != len(list) {
			t.Fatalf("%d infos for %d mailboxes", len(out), len(list))
		}
		for i, mi := range out {
			if list[i].Name != "" && mi.Path == "" {
				t.Fatalf("empty path for %+v", list[i])
			}
		}
	})
}
