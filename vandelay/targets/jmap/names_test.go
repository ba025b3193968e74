package jmap

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"Lists/a;b":    "Lists_a_b",
		`100% "real"`:  `100_ _real_`,
		"tab\there":    "tab_here",
		"Entwürfe":     "Entwürfe",
		"  ":           "_",
		"日本語のフォルダ":     "日本語のフォルダ",
		"back\\slash;": "back_slash_",
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidKeyword(t *testing.T) {
	for kw, want := range map[string]bool{
		"$seen": true, "Projekt-X": true, "$label1": true,
		"": false, "a b": false, "Grüße": false, "x(y": false, `a\b`: false, "a%": false, "a]": false,
	} {
		if got := validKeyword(kw); got != want {
			t.Errorf("validKeyword(%q) = %v", kw, got)
		}
	}
}

func TestParseHeader(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		id, sub string
	}{
		"crlf":         {"Message-ID: <a@b>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nbody", "a@b", "Grüße"},
		"lf":           {"Subject: plain\nMessage-Id:\n  <folded@x>\n\nbody", "folded@x", "plain"},
		"windows-1252": {"Subject: =?windows-1252?Q?caf=E9?=\r\n\r\n", "", "café"},
		"koi8-r":       {"Subject: =?KOI8-R?B?8NLJ18XU?=\r\n\r\n", "", "Привет"},
		"raw 8bit":     {"Subject: Grüße\r\n\r\n", "", "Grüße"},
		"no body":      {"Message-ID: no-brackets@x", "no-brackets@x", ""},
		"empty":        {"", "", ""},
	} {
		h := parseHeader(strings.NewReader(tc.in))
		if h.MessageID != tc.id || h.Subject != tc.sub {
			t.Errorf("%s: got %+v, want id %q subject %q", name, h, tc.id, tc.sub)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add("Message-ID: <a@b>\r\nSubject: =?UTF-8?B?w7w=?=\r\n\r\nx")
	f.Add("Subject: \xff\xfe\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		h := parseHeader(strings.NewReader(s))
		if strings.ContainsAny(h.MessageID, "<>") && strings.Count(h.MessageID, "<") == 1 && strings.Count(h.MessageID, ">") == 1 {
			t.Fatalf("brackets kept in %q", h.MessageID)
		}
	})
}

func FuzzSafeName(f *testing.F) {
	f.Add("Lists/a;b")
	f.Add("\x00\x7f%\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		out := SafeName(s)
		if out == "" || strings.ContainsAny(out, "/%;\\\"\t") {
			t.Fatalf("SafeName(%q) = %q", s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("SafeName broke UTF-8: %q", out)
		}
		if SafeName(out) != out {
			t.Fatalf("SafeName not idempotent: %q -> %q", out, SafeName(out))
		}
	})
}
