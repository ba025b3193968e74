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

// TestIMAPLimits: the IMAP limits hold an RFC 2971 ID of the maximum size
// in its worst quoted form (every octet escaped) and in literal form, and
// still bound a command.
func TestIMAPLimits(t *testing.T) {
	if need := len("ID ()") + MaxIDPairs*maxIDQuotedPair; MaxIMAPLine < need {
		t.Errorf("MaxIMAPLine %d < %d, a maximal ID with every octet escaped", MaxIMAPLine, need)
	}
	var quoted, lits strings.Builder
	quoted.WriteString("a ID (")
	lits.WriteString("a ID (")
	for i := range MaxIDPairs {
		if i > 0 {
			quoted.WriteByte(' ')
			lits.WriteByte(' ')
		}
		quoted.WriteString(`"` + strings.Repeat(`\"`, MaxIDFieldLen) + `" "` + strings.Repeat(`\\`, MaxIDValueLen) + `"`)
		lits.WriteString("{30+}\r\n" + strings.Repeat("f", MaxIDFieldLen) + " {1024}\r\n" + strings.Repeat("v", MaxIDValueLen))
	}
	quoted.WriteString(")\r\n")
	lits.WriteString(")\r\n")
	for name, in := range map[string]string{"quoted": quoted.String(), "literals": lits.String()} {
		t.Run(name, func(t *testing.T) {
			c, err := ReadCommandLimits(bufio.NewReader(strings.NewReader(in)), func() error { return nil }, IMAPLimits)
			if err != nil {
				t.Fatal(err)
			}
			var params [][2]string
			var tag, cmd string
			d := NewDecoder(c)
			if !d.ExpectTag(&tag) || !d.ExpectSP() || !d.ExpectAtom(&cmd) || !d.ExpectSP() || !d.ExpectIDParams(&params) || !d.ExpectEnd() {
				t.Fatal(d.Err())
			}
			if len(params) != MaxIDPairs || len(params[0][0]) != MaxIDFieldLen || len(params[0][1]) != MaxIDValueLen {
				t.Errorf("%d pairs, first %d/%d octets", len(params), len(params[0][0]), len(params[0][1]))
			}
			// The default limits refuse it.
			if _, err := ReadCommand(bufio.NewReader(strings.NewReader(in)), func() error { return nil }); err == nil {
				t.Error("DefaultLimits accept a 30-pair maximal ID")
			}
		})
	}
	// Many literals cannot add up past MaxIMAPCommand.
	many := "a X" + strings.Repeat(" {65536+}\r\n"+strings.Repeat("x", 65536), 3) + "\r\n"
	if _, err := ReadCommandLimits(bufio.NewReader(strings.NewReader(many)), nil, IMAPLimits); !errors.Is(err, ErrLiteralTooLarge) {
		t.Errorf("3 literals of 64 KiB: %v, want ErrLiteralTooLarge", err)
	}
	long := "a " + strings.Repeat("x", MaxIMAPLine) + "\r\n"
	if _, err := ReadCommandLimits(bufio.NewReader(strings.NewReader(long)), nil, IMAPLimits); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("line past MaxIMAPLine: %v, want ErrLineTooLong", err)
	}
}

// FuzzReadCommand: whatever the input, a command read with either set of
// limits stays within them, and the reader never panics.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"a1 LOGIN bob pw\r\n",
		"a LOGIN {3}\r\nbob {2}\r\npw\r\n",
		"a LOGIN {3+}\r\nbob \"pw\"\r\n",
		`a ID ("name" "x" "version" NIL)` + "\r\n",
		"a ID ({4+}\r\nname {1024+}\r\n" + strings.Repeat("v", 1024) + ")\r\n",
		"a X {99999999999}\r\n",
	} {
		f.Add([]byte(s))
	}
	// Small limits, so that the fuzzer reaches every bound.
	small := Limits{Text: 64, Literal: 16, Literals: 3, Total: 80}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, lim := range []Limits{DefaultLimits, IMAPLimits, small} {
			c, err := ReadCommandLimits(bufio.NewReader(strings.NewReader(string(in))), func() error { return nil }, lim)
			if err != nil {
				continue
			}
			if len(c.Text) > lim.Text || len(c.Literals) > lim.Literals {
				t.Fatalf("text %d bytes, %d literals past %+v", len(c.Text), len(c.Literals), lim)
			}
			total := int64(len(c.Text))
			for _, l := range c.Literals {
				if int64(len(l)) > lim.Literal {
					t.Fatalf("literal of %d bytes past %+v", len(l), lim)
				}
				total += int64(len(l))
			}
			if lim.Total > 0 && total > lim.Total {
				t.Fatalf("command of %d bytes past %+v", total, lim)
			}
			var params [][2]string
			NewDecoder(c).ExpectIDParams(&params)
		}
	})
}
