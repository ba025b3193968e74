package maildir

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParseFilename(t *testing.T) {
	for name, tc := range map[string]struct {
		in            string
		unique, flags string
		ok            bool
	}{
		"dovecot":  {"1795863475.M143671P25037.vm,S=1537,W=1581:2,FSa", "1795863475.M143671P25037.vm,S=1537,W=1581", "FSa", true},
		"new":      {"1795863475.M1P2.host", "1795863475.M1P2.host", "", true},
		"no-flags": {"123.x.y:2,", "123.x.y", "", true},
		"info-1":   {"123.x.y:1,foo", "123.x.y", "", true},
		"dotfile":  {".nfs000", "", "", false},
		"colon":    {":2,S", "", "", false},
		"empty":    {"", "", "", false},
	} {
		t.Run(name, func(t *testing.T) {
			u, f, ok := ParseFilename(tc.in)
			if u != tc.unique || f != tc.flags || ok != tc.ok {
				t.Errorf("got %q %q %v", u, f, ok)
			}
		})
	}
}

func TestKeywordsFromFlags(t *testing.T) {
	names := ParseKeywords([]byte("0 $Forwarded\n1 Projekt-X\n3 $label1\nbad line\n99 too-big\n"))
	kws, del := KeywordsFromFlags("DFPRSTabcd", names)
	if diff := cmp.Diff([]string{"$answered", "$draft", "$flagged", "$forwarded", "$label1", "$seen", "Projekt-X"}, kws); diff != "" {
		t.Error(diff)
	}
	if !del {
		t.Error("T not reported as deleted")
	}
}

func TestDecodeMUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"Entw&APw-rfe":                  "Entwürfe",
		"&BB8EQAQ+BDUEOgRCBEs-":         "Проекты",
		"&ZeVnLIqeMG4w1TCpMOswwA-":      "日本語のフォルダ",
		"&ANw-n&AO8-c&APY-d&AOk- &- Co": "Ünïcödé & Co",
		"plain":                         "plain",
		"Newsletters &2D3c7A-":          "Newsletters 📬",
	} {
		got, err := DecodeMUTF7(in)
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"&", "&AB", "\x80", "&-&ZZZZ-"} {
		if _, err := DecodeMUTF7(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestToCRLF(t *testing.T) {
	for in, want := range map[string]string{"a\nb\n": "a\r\nb\r\n", "a\r\nb\n": "a\r\nb\r\n", "a\r\n": "a\r\n", "": "", "\n": "\r\n"} {
		if got := string(ToCRLF([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func FuzzParseFilename(f *testing.F) {
	for _, s := range []string{"1795863475.M143671P25037.vm,S=1537,W=1581:2,FSa", "x", ":", "a:2,", ".a", "a:1,b:2,c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		u, flags, ok := ParseFilename(name)
		if !ok {
			return
		}
		if u == "" || strings.Contains(u, ":") || !strings.HasPrefix(name, u) {
			t.Fatalf("%q → unique %q", name, u)
		}
		if flags != "" && !strings.HasSuffix(name, flags) {
			t.Fatalf("%q → flags %q", name, flags)
		}
		KeywordsFromFlags(flags, []string{"a", "b"})
	})
}

func FuzzDecodeMUTF7(f *testing.F) {
	for _, s := range []string{"Entw&APw-rfe", "&-", "&ZeVnLIqeMG4w1TCpMOswwA-", "&", "a&b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := DecodeMUTF7(s)
		if err == nil && !utf8.ValidString(out) {
			t.Fatalf("%q decodes to invalid UTF-8 %q", s, out)
		}
	})
}
