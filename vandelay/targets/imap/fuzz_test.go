package imap

import (
	"strings"
	"testing"
)

// FuzzMessageID: the header reader that picks the Message-ID for the
// duplicate search never panics, returns no angle brackets or white space,
// and finds the id of a well-formed header.
func FuzzMessageID(f *testing.F) {
	for _, s := range []string{
		"Message-ID: <a@b>\r\n\r\nbody",
		"Subject: x\r\nMessage-Id:\r\n <folded@example.test>\r\n\r\n",
		"no header at all",
		"Message-ID: <a@b>\n",
		"X: \xff\xfe\r\nMessage-ID: < spaced @ id >\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id := messageID(body)
		if strings.ContainsAny(id, " \t\r\n") || strings.HasPrefix(id, "<") || strings.HasSuffix(id, ">") {
			t.Fatalf("messageID(%q) = %q", body, id)
		}
	})
}

func TestMessageID(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":     {"Message-ID: <a@b>\r\n\r\nbody", "a@b"},
		"folded":    {"Subject: x\r\nMessage-Id:\r\n <folded@example.test>\r\n\r\n", "folded@example.test"},
		"bare LF":   {"Message-ID: <a@b>\n\nbody", "a@b"},
		"none":      {"Subject: x\r\n\r\nMessage-ID: <in@body>\r\n", ""},
		"no header": {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := messageID([]byte(tc.in)); got != tc.want {
				t.Errorf("messageID(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
