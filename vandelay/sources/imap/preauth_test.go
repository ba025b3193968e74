package imap

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
)

func TestStatusLine(t *testing.T) {
	for name, tc := range map[string]struct {
		line    string
		done    bool
		code    imap.ResponseCode
		typ     imap.StatusResponseType
		wantNil bool
	}{
		"ok":       {"P1 OK [CAPABILITY IMAP4rev1] Logged in", true, "", "", true},
		"no-code":  {"P1 NO [AUTHENTICATIONFAILED] Authentication failed.", true, imap.ResponseCodeAuthenticationFailed, imap.StatusResponseTypeNo, false},
		"bad":      {"P1 BAD Error in IMAP command", true, "", imap.StatusResponseTypeBad, false},
		"limit":    {"P1 NO [LIMIT] too many", true, imap.ResponseCodeLimit, imap.StatusResponseTypeNo, false},
		"other":    {"P2 OK fine", false, "", "", true},
		"untagged": {"* OK hi", false, "", "", true},
	} {
		t.Run(name, func(t *testing.T) {
			done, err := status(tc.line, "P1")
			if done != tc.done || (err == nil) != tc.wantNil {
				t.Fatalf("done %v err %v", done, err)
			}
			var ie *imap.Error
			if err != nil && (!errors.As(err, &ie) || ie.Code != tc.code || ie.Type != tc.typ) {
				t.Errorf("error %#v", err)
			}
		})
	}
}

func TestNoteCaps(t *testing.T) {
	p := &preauth{}
	p.noteCaps("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.")
	if !p.caps["SASL-IR"] || !p.caps["AUTH=PLAIN"] || p.line != "IMAP4rev1 SASL-IR AUTH=PLAIN" || p.gen != 1 {
		t.Errorf("%+v", p)
	}
	p.noteCaps("* capability IMAP4rev1 compress=deflate")
	if !p.caps["COMPRESS=DEFLATE"] || p.caps["SASL-IR"] || p.gen != 2 {
		t.Errorf("%+v", p)
	}
	p.noteCaps("* 3 EXISTS")
	if p.gen != 2 {
		t.Error("non-capability line counted")
	}
}

func TestQuote(t *testing.T) {
	if q, _ := quote(`a"b\\c`); q != `"a\"b\\\\c"` {
		t.Errorf("%s", q)
	}
	if _, err := quote("a\r\nb"); err == nil {
		t.Error("line break quoted")
	}
}

// TestPreauthExchange drives the client against a scripted server over a
// socketpair-like pipe: SASL-IR PLAIN, capabilities from the OK code.
func TestPreauthExchange(t *testing.T) {
	cl, sv := net.Pipe()
	defer cl.Close()
	go func() {
		defer sv.Close()
		br := bufio.NewReader(sv)
		sv.Write([]byte("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n"))
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, "P1 AUTHENTICATE PLAIN AHUAcA==") {
			sv.Write([]byte("P1 BAD unexpected " + line))
			return
		}
		sv.Write([]byte("P1 OK [CAPABILITY IMAP4rev1 MOVE] Logged in\r\n"))
	}()
	p := &preauth{conn: cl, br: bufio.NewReader(cl)}
	pre, err := p.greeting()
	if err != nil || pre {
		t.Fatal(pre, err)
	}
	if err := p.authenticate(sasl.NewPlainClient("", "u", "p")); err != nil {
		t.Fatal(err)
	}
	if !p.caps["MOVE"] || p.gen != 2 {
		t.Errorf("capabilities after login: %+v", p.caps)
	}
}

func FuzzStatusLine(f *testing.F) {
	for _, s := range []string{"P1 OK x", "P1 NO [LIMIT] y", "P1 NO [", "P1 BAD ]", "P1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		status(line, "P1")
		(&preauth{}).noteCaps(line)
	})
}
