package wire

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadCommand(t *testing.T) {
	tests := map[string]struct {
		in      string
		text    string
		lits    []string
		conts   int
		wantErr error
	}{
		"simple":      {in: "a1 LOGIN bob pw\r\n", text: "a1 LOGIN bob pw"},
		"bare lf":     {in: "a1 NOOP\n", text: "a1 NOOP"},
		"sync lit":    {in: "a LOGIN {3}\r\nbob {2}\r\npw\r\n", text: "a LOGIN \x00 \x00", lits: []string{"bob", "pw"}, conts: 2},
		"literal+":    {in: "a LOGIN {3+}\r\nbob \"pw\"\r\n", text: "a LOGIN \x00 \"pw\"", lits: []string{"bob"}},
		"literal-":    {in: "a LOGIN {3-}\r\nbob x\r\n", text: "a LOGIN \x00 x", lits: []string{"bob"}},
		"nul":         {in: "a\x00b\r\n", wantErr: ErrSyntax},
		"too long":    {in: "a " + strings.Repeat("x", MaxLine+10) + "\r\n", wantErr: ErrLineTooLong},
		"big literal": {in: "a LOGIN {999999}\r\n", wantErr: ErrLiteralTooLarge},
		"not literal": {in: "a X {1a}\r\n", text: "a X {1a}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			conts := 0
			c, err := ReadCommand(bufio.NewReader(strings.NewReader(tc.in)), func() error { conts++; return nil })
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lits []string
			for _, l := range c.Literals {
				lits = append(lits, string(l))
			}
			if d := cmp.Diff([]any{tc.text, tc.lits, tc.conts}, []any{c.Text, lits, conts}); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestDecoder(t *testing.T) {
	c := &Command{Text: `t1 LOGIN "a\"b" ` + "\x00" + ` ID ("name" "x" "v" NIL) rest]`, Literals: [][]byte{[]byte("lit")}}
	d := NewDecoder(c)
	var tag, cmd, user, pass, id, rest string
	var params [][2]string
	ok := d.ExpectTag(&tag) && d.ExpectSP() && d.ExpectAtom(&cmd) && d.ExpectSP() && d.ExpectAString(&user) && d.ExpectSP() &&
		d.ExpectAString(&pass) && d.ExpectSP() && d.ExpectAtom(&id) && d.ExpectSP() && d.ExpectIDParams(&params) && d.ExpectSP() && d.ExpectAString(&rest) && d.ExpectEnd()
	if !ok {
		t.Fatal(d.Err())
	}
	want := []any{"t1", "LOGIN", `a"b`, "lit", "ID", [][2]string{{"name", "x"}, {"v", ""}}, "rest]"}
	if diff := cmp.Diff(want, []any{tag, cmd, user, pass, id, params, rest}); diff != "" {
		t.Error(diff)
	}
	bad := NewDecoder(&Command{Text: `t1 "unterminated`})
	if bad.ExpectTag(&tag) && bad.ExpectSP() && bad.ExpectAString(&user) {
		t.Error("unterminated quote accepted")
	}
	if !errors.Is(bad.Err(), ErrSyntax) || bad.ExpectSP() {
		t.Errorf("sticky error lost: %v", bad.Err())
	}
}

func TestSASL(t *testing.T) {
	tests := map[string]struct {
		mech    string
		ir      []byte
		replies []string
		want    Credentials
		wantErr error
	}{
		"plain ir":       {mech: "PLAIN", ir: EncodePlain("", "alice", "pw"), want: Credentials{Mechanism: "PLAIN", Authcid: "alice", Password: "pw"}},
		"plain authzid":  {mech: "plain", replies: []string{"alice\x00admin\x00mp"}, want: Credentials{Mechanism: "PLAIN", Authzid: "alice", Authcid: "admin", Password: "mp"}},
		"plain bad":      {mech: "PLAIN", ir: []byte("alice"), wantErr: ErrSASL},
		"login":          {mech: "LOGIN", replies: []string{"bob", "pw"}, want: Credentials{Mechanism: "LOGIN", Authcid: "bob", Password: "pw"}},
		"login ir":       {mech: "LOGIN", ir: []byte("bob"), replies: []string{"pw"}, want: Credentials{Mechanism: "LOGIN", Authcid: "bob", Password: "pw"}},
		"xoauth2":        {mech: "XOAUTH2", ir: EncodeXOAuth2("carol", "tok"), want: Credentials{Mechanism: "XOAUTH2", Authcid: "carol", Raw: EncodeXOAuth2("carol", "tok")}},
		"oauthbearer":    {mech: "OAUTHBEARER", ir: []byte("n,a=dan=2Cx@example.test,\x01host=h\x01auth=Bearer t\x01\x01"), want: Credentials{Mechanism: "OAUTHBEARER", Authcid: "dan,x@example.test", Raw: []byte("n,a=dan=2Cx@example.test,\x01host=h\x01auth=Bearer t\x01\x01")}},
		"oauthbearer no": {mech: "OAUTHBEARER", ir: []byte("n,,\x01auth=Bearer t\x01\x01"), wantErr: ErrSASL},
		"unknown":        {mech: "CRAM-MD5", wantErr: ErrSASL},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i := 0
			c, err := Exchange(tc.mech, tc.ir, func([]byte) ([]byte, error) {
				if i >= len(tc.replies) {
					return nil, ErrCancelled
				}
				i++
				return []byte(tc.replies[i-1]), nil
			})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, *c); d != "" {
				t.Error(d)
			}
			if strings.Contains(c.String(), "pw") {
				t.Error("String shows the password")
			}
		})
	}
	if _, err := DecodeBase64("*"); !errors.Is(err, ErrCancelled) {
		t.Error(err)
	}
	if b, err := DecodeBase64("="); err != nil || len(b) != 0 {
		t.Error(b, err)
	}
}
