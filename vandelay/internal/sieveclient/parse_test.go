package sieveclient

import (
	"bufio"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadResponse(t *testing.T) {
	tests := map[string]struct {
		in   string
		want *response
	}{
		"listscripts": { // RFC 5804 2.7
			in: "\"summer_script\"\r\n\"vacation_script\"\r\n{13}\r\nclever\"script\r\n\"main_script\" ACTIVE\r\nOK\r\n",
			want: &response{status: "OK", data: [][]token{{{tokString, "summer_script"}}, {{tokString, "vacation_script"}},
				{{tokString, "clever\"script"}}, {{tokString, "main_script"}, {tokAtom, "ACTIVE"}}}},
		},
		"getscript": { // RFC 5804 2.9
			in:   "{54}\r\n#this is my wonderful script\r\nreject \"I reject all\";\r\n\r\nOK\r\n",
			want: &response{status: "OK", data: [][]token{{{tokString, "#this is my wonderful script\r\nreject \"I reject all\";\r\n"}}}},
		},
		"no with literal text": { // RFC 5804 2.6, a compile error
			in:   "NO {49}\r\nline 2: Syntax error\r\nline 3: unknown command x\r\n\r\n",
			want: &response{status: "NO", text: "line 2: Syntax error\r\nline 3: unknown command x\r\n"},
		},
		"no with code": {
			in:   "NO (NONEXISTENT) \"There is no script by that name\"\r\n",
			want: &response{status: "NO", code: "NONEXISTENT", text: "There is no script by that name"},
		},
		"quota code and escapes": {
			in:   "No (QUOTA/MAXSIZE) \"Quota \\\"exceeded\\\\\"\r\n",
			want: &response{status: "NO", code: "QUOTA/MAXSIZE", text: "Quota \"exceeded\\"},
		},
		"ok with tag": {
			in:   "OK (TAG \"a)b\") \"done\"\n",
			want: &response{status: "OK", code: "TAG \"a)b\"", text: "done"},
		},
		"sync literal plus": {
			in:   "{3+}\r\nabc\r\nOK\r\n",
			want: &response{status: "OK", data: [][]token{{{tokString, "abc"}}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := &decoder{r: bufio.NewReader(strings.NewReader(tc.in))}
			got, err := d.readResponse()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(response{}, token{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadResponseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"eof":           "\"a\"\r\n",
		"huge literal":  "{99999999999}\r\n",
		"bad escape":    "\"a\\b\"\r\nOK\r\n",
		"short literal": "{10}\r\nabc",
		"open code":     "NO (QUOTA\r\n",
		"no digits":     "{}\r\nOK\r\n",
		"long line":     strings.Repeat("a", MaxLineLength+10) + "\r\nOK\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := &decoder{r: bufio.NewReader(strings.NewReader(in))}
			if r, err := d.readResponse(); err == nil {
				t.Fatalf("no error; got %+v", r)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:       `"plain"`,
		`a"b\c`:       `"a\"b\\c"`,
		"two\r\nl":    "{6+}\r\ntwo\r\nl",
		"Müll-Filter": "{12+}\r\nMüll-Filter",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzResponse feeds arbitrary server bytes to the response parser: it
// must not panic, and must stop (the reader is finite).
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"\"summer_script\"\r\n\"vacation_script\"\r\n{13}\r\nclever\"script\r\n\"main_script\" ACTIVE\r\nOK\r\n",
		"{54}\r\n#this is my wonderful script\r\nreject \"I reject all\";\r\n\r\nOK\r\n",
		"NO {49}\r\nline 2: Syntax error\r\nline 3: unknown command x\r\n\r\n",
		"NO (NONEXISTENT) \"There is no script by that name\"\r\n",
		"OK (WARNINGS) \"line 8: server redirect action limit is 2\"\r\n",
		"\"VXNlcm5hbWU6\"\r\n",
		"BYE (REFERRAL \"sieve://example.com\") \"go away\"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &decoder{r: bufio.NewReader(strings.NewReader(string(b)))}
		for i := 0; i < 100; i++ {
			if _, err := d.readResponse(); err != nil {
				return
			}
		}
	})
}
