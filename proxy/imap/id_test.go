package imap_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// maximalID is an RFC 2971 ID of the maximum size: 30 pairs of a
// 30-octet field and a 1024-octet value (imaptest sends one like it).
func maximalID(tag string) string {
	var sb strings.Builder
	sb.WriteString(tag + " ID (")
	for i := range 30 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		field := fmt.Sprintf("field%02d", i) + strings.Repeat("f", 23)
		fmt.Fprintf(&sb, "%q %q", field, strings.Repeat(string(rune('a'+i%26)), 1024))
	}
	sb.WriteString(")\r\n")
	return sb.String()
}

// TestIDMaximal: an RFC 2971 ID of the maximum size is answered OK, as
// Dovecot answers it, and the login after it works (the proxy forwards the
// client's fields with its own within RFC 2971's 30 pairs). It was
// "* BYE [TOOBIG]" before, the one failure of imaptest through the proxy.
func TestIDMaximal(t *testing.T) {
	s := peers.Get(t)
	id := maximalID("a")
	if len(id) < 31000 {
		t.Fatalf("ID command of %d bytes; RFC 2971's maximum is about 31,800", len(id))
	}
	direct := dialRaw(t, s.Dovecot.IMAP)
	direct.expect("* OK")
	direct.send(id)
	direct.expect("a OK")

	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(id)
	r.expect("* ID ")
	r.expect("a OK")
	r.send(fmt.Sprintf("b LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("b OK")
	r.send("c SELECT INBOX\r\n")
	r.expect("c OK")

	// The same with every field and value a literal (LITERAL+).
	var sb strings.Builder
	sb.WriteString("a ID (")
	for i := range 30 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		field := fmt.Sprintf("field%02d", i) + strings.Repeat("f", 23)
		value := strings.Repeat("v", 1024)
		fmt.Fprintf(&sb, "{%d+}\r\n%s {%d+}\r\n%s", len(field), field, len(value), value)
	}
	sb.WriteString(")\r\n")
	r = dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(sb.String())
	r.expect("* ID ")
	r.expect("a OK")

	// One pair more is refused, and a line past the limit still closes.
	r = dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(strings.Replace(id, "a ID (", `a ID ("one" "more" `, 1))
	r.expect("a BAD")
	r.send("b " + strings.Repeat("x", 70*1024) + "\r\n")
	r.expect("* BYE [TOOBIG]")
}
