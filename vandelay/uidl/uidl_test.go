package uidl

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		format    string
		uid, uidv uint32
		want      string
		err       bool
	}{
		{"%08Xu%08Xv", 1, 0x6b1628b2, "000000016b1628b2", false}, // Dovecot's default, lower case
		{"%v.%u", 26, 1796614377, "1796614377.26", false},        // Cyrus
		{"%u", 42, 7, "42", false},
		{"%08Xv%08Xu", 1, 2, "0000000200000001", false},
		{"%4u-%%", 7, 0, "   7-%", false},
		{"%Xu%xv", 255, 255, "ffff", false},
		{"%m", 0, 0, "", true}, // MD5 of the header: not handled
		{"%f", 0, 0, "", true},
		{"%g", 0, 0, "", true},
		{"%08X", 0, 0, "", true},
		{"", 0, 0, "", true},
		{"%999999999999u", 0, 0, "", true},
	} {
		f, err := ParseFormat(tc.format)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v", tc.format, err)
			continue
		}
		if err == nil {
			if got := f.UIDL(tc.uid, tc.uidv); got != tc.want {
				t.Errorf("%q: got %q, want %q", tc.format, got, tc.want)
			}
		}
	}
}

func TestHeaderKey(t *testing.T) {
	raw := "From: a@b\r\nSubject: x\r\n\r\nbody\r\n"
	top := "From: a@b\nSubject: x\n\n" // LF, as a reader may give it
	k1, _ := HeaderKey(strings.NewReader(raw))
	k2, _ := HeaderKey(strings.NewReader(top))
	k3, _ := HeaderKey(strings.NewReader("From: a@b\r\nSubject: y\r\n\r\nbody\r\n"))
	k4, _ := HeaderKey(strings.NewReader("From: a@b\r\nSubject: x")) // no body, no final newline
	if k1 != k2 || k1 == k3 || k1 != k4 {
		t.Errorf("keys: %s %s %s %s", k1, k2, k3, k4)
	}
	long := "X-Long: " + strings.Repeat("a", 100_000) + "\r\n\r\n"
	if _, err := HeaderKey(strings.NewReader(long)); err != nil {
		t.Error(err)
	}
}

func TestSourceUIDLsAndMatch(t *testing.T) {
	in := &Inbox{Kind: "imap", UIDValidity: 0x10, Messages: []SourceMessage{
		{ArchiveID: 1, Key: "k1", Size: 10, CopyKey: "1"},
		{ArchiveID: 2, Key: "k2", Size: 20, CopyKey: "2"},
		{ArchiveID: 3, Key: "dup", Size: 30, CopyKey: "3"},
		{ArchiveID: 4, Key: "dup", Size: 30, CopyKey: "4"},
		{ArchiveID: 5, Key: "k5", Size: 50, CopyKey: "5"}, // expunged at the source meanwhile
	}}
	live := map[string]bool{"0000000100000010": true, "0000000200000010": true, "0000000300000010": true, "0000000400000010": true}
	src, format := SourceUIDLs(in, live, nil)
	if format != "%08Xu%08Xv" || len(src) != 4 || src[5] != "" {
		t.Fatalf("source UIDLs %v, format %q", src, format)
	}
	target := []TargetMessage{
		{UIDL: "t1", Size: 10, Key: "k1"},
		{UIDL: "t3", Size: 30, Key: "dup"},
		{UIDL: "t4", Size: 30, Key: "dup"},
		{UIDL: "t5", Size: 50, Key: "k5"},
		{UIDL: "tnew", Size: 60, Key: "new"},
	}
	m := Match(in, src, target)
	if len(m) != 3 || m["t1"] != "0000000100000010" || m["t3"] == m["t4"] || m["t3"] == "" || m["t4"] == "" {
		t.Fatalf("map %v", m)
	}
	pop := &Inbox{Kind: "pop3", Messages: []SourceMessage{{ArchiveID: 1, Key: "k", CopyKey: "abc"}, {ArchiveID: 2, Key: "l", CopyKey: "gone"}}}
	if src, _ := SourceUIDLs(pop, map[string]bool{"abc": true}, nil); len(src) != 1 || src[1] != "abc" {
		t.Fatalf("pop3 source: %v", src)
	}
	if src, _ := SourceUIDLs(&Inbox{Kind: "maildir", Messages: in.Messages}, live, nil); len(src) != 0 {
		t.Fatalf("maildir source mapped: %v", src)
	}
}

// FuzzParseFormat: any format string parses or fails cleanly, and a
// parsed one expands without panicking.
func FuzzParseFormat(f *testing.F) {
	for _, s := range append(Candidates, "%m", "%", "%0", "%08X", "%%u", "%20u") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fm, err := ParseFormat(s); err == nil {
			fm.UIDL(1<<32-1, 1<<32-1)
		}
	})
}

// FuzzHeaderKey: any input gives a key.
func FuzzHeaderKey(f *testing.F) {
	f.Add([]byte("From: a\r\n\r\nbody"))
	f.Add([]byte("\r\n"))
	f.Add([]byte("no newline"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := HeaderKey(strings.NewReader(string(b))); err != nil || len(k) != 64 {
			t.Fatalf("%q: %q %v", b, k, err)
		}
	})
}
