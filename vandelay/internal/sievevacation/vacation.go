// Package sievevacation reads the vacation response out of a Sieve script
// (RFC 5228 syntax, RFC 5230 vacation, RFC 6131 :seconds, RFC 5260
// currentdate): what the JMAP VacationResponse object (RFC 8621 8) of a
// target needs. It is a reader for this one purpose, not a Sieve
// interpreter: the script's bytes are what is migrated; this is the
// structured copy beside them.
//
// Recognised: a `vacation` command anywhere in the script, with :days,
// :seconds, :subject, :from, :addresses, :mime, :handle and the reason
// (quoted or text: multi-line); start and end dates from `currentdate`
// tests ("ge"/"gt" → from, "le"/"lt" → to, date parts "date" and
// "iso8601") in the `if` that encloses it, as Roundcube's and
// SnappyMail's filter editors write them; `include` names, so that a
// caller can follow them.
package sievevacation

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Vacation is the vacation action of a script.
type Vacation struct {
	Subject string
	Reason  string // the reason as written (a MIME entity with :mime)
	MIME    bool
	From    string // :from
	// Addresses are the :addresses, the user's other addresses.
	Addresses []string
	Days      int // :days (0: the server's default)
	Seconds   int // :seconds
	Handle    string
	// Start and End come from currentdate tests around the action (zero
	// when there are none).
	Start, End time.Time
}

// Script is what one script says about vacation.
type Script struct {
	// Vacation is nil when the script has no vacation command.
	Vacation *Vacation
	// Includes are the names of the scripts the script includes.
	Includes []string
}

type tokKind int

const (
	tIdent tokKind = iota
	tTag
	tString
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	s    string
	n    int
}

// MaxTokens bounds a script (ManageSieve servers limit scripts to a few
// hundred KB).
const MaxTokens = 1 << 20

func lex(src []byte) ([]token, error) {
	s := string(src)
	var out []token
	for i := 0; i < len(s); {
		if len(out) > MaxTokens {
			return nil, errors.New("script too long")
		}
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated comment")
			}
			i += 2 + end + 2
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, errors.New("unterminated string")
			}
			out = append(out, token{kind: tString, s: b.String()})
			i = j + 1
		case strings.HasPrefix(s[i:], "text:"):
			// Multi-line string: to the end of the line (white space and
			// a comment allowed), then lines up to "." alone; a leading
			// ".." stands for ".".
			nl := strings.IndexByte(s[i:], '\n')
			if nl < 0 {
				return nil, errors.New("unterminated text: string")
			}
			j := i + nl + 1
			var b strings.Builder
			for {
				k := strings.IndexByte(s[j:], '\n')
				if k < 0 {
					if strings.TrimRight(s[j:], "\r") == "." {
						j = len(s)
						break
					}
					return nil, errors.New("unterminated text: string")
				}
				line := s[j : j+k+1]
				j += k + 1
				if strings.TrimRight(line, "\r\n") == "." {
					break
				}
				if strings.HasPrefix(line, "..") {
					line = line[1:]
				}
				b.WriteString(line)
			}
			out = append(out, token{kind: tString, s: b.String()})
			i = j
		case c == ':':
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			out = append(out, token{kind: tTag, s: strings.ToLower(s[i+1 : j])})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(s[i:j])
			if err != nil {
				return nil, fmt.Errorf("number %q: %w", s[i:j], err)
			}
			if j < len(s) {
				switch s[j] {
				case 'K', 'k':
					n, j = n<<10, j+1
				case 'M', 'm':
					n, j = n<<20, j+1
				case 'G', 'g':
					n, j = n<<30, j+1
				}
			}
			out = append(out, token{kind: tNumber, n: n})
			i = j
		case isIdent(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			out = append(out, token{kind: tIdent, s: strings.ToLower(s[i:j])})
			i = j
		case strings.ContainsRune(";,()[]{}", rune(c)):
			out = append(out, token{kind: tPunct, s: string(c)})
			i++
		default:
			return nil, fmt.Errorf("unexpected character %q at byte %d", c, i)
		}
	}
	return out, nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Parse reads what a script says about vacation. A script that does not
// lex is an error (the bytes are migrated anyway).
func Parse(src []byte) (*Script, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	out := &Script{}
	lastIf := -1
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tIdent {
			continue
		}
		// A command starts a statement: at the beginning, after ";", "{"
		// or "}".
		if i > 0 && !(toks[i-1].kind == tPunct && strings.Contains(";{}", toks[i-1].s)) {
			continue
		}
		switch t.s {
		case "if", "elsif":
			lastIf = i
		case "include":
			for j := i + 1; j < len(toks) && !(toks[j].kind == tPunct && toks[j].s == ";"); j++ {
				if toks[j].kind == tString {
					out.Includes = append(out.Includes, toks[j].s)
				}
			}
		case "vacation":
			if out.Vacation != nil {
				continue // the first one counts
			}
			v, err := vacation(toks[i+1:])
			if err != nil {
				return nil, err
			}
			if lastIf >= 0 && enclosed(toks, lastIf, i) {
				v.Start, v.End = dates(toks[lastIf:i])
			}
			out.Vacation = v
		}
	}
	return out, nil
}

// enclosed reports whether the statement at i is inside the block of the
// if at j (braces balanced between them, one open).
func enclosed(toks []token, j, i int) bool {
	depth := 0
	opened := false
	for k := j; k < i; k++ {
		if toks[k].kind != tPunct {
			continue
		}
		switch toks[k].s {
		case "{":
			depth++
			opened = true
		case "}":
			depth--
		}
	}
	return opened && depth >= 1
}

func vacation(args []token) (*Vacation, error) {
	v := &Vacation{}
	str := func(k int) (string, error) {
		if k >= len(args) || args[k].kind != tString {
			return "", errors.New("vacation: a string is missing")
		}
		return args[k].s, nil
	}
	for k := 0; k < len(args); k++ {
		a := args[k]
		var err error
		switch {
		case a.kind == tPunct && a.s == ";":
			return v, nil
		case a.kind == tTag && (a.s == "days" || a.s == "seconds"):
			k++
			if k >= len(args) || args[k].kind != tNumber {
				return nil, fmt.Errorf("vacation: :%s needs a number", a.s)
			}
			if a.s == "days" {
				v.Days = args[k].n
			} else {
				v.Seconds = args[k].n
			}
		case a.kind == tTag && a.s == "subject":
			k++
			v.Subject, err = str(k)
		case a.kind == tTag && a.s == "from":
			k++
			v.From, err = str(k)
		case a.kind == tTag && a.s == "handle":
			k++
			v.Handle, err = str(k)
		case a.kind == tTag && a.s == "mime":
			v.MIME = true
		case a.kind == tTag && a.s == "addresses":
			k++
			if k < len(args) && args[k].kind == tString {
				v.Addresses = append(v.Addresses, args[k].s)
				continue
			}
			if k >= len(args) || args[k].s != "[" {
				return nil, errors.New("vacation: :addresses needs a string list")
			}
			for k++; k < len(args) && args[k].s != "]"; k++ {
				if args[k].kind == tString {
					v.Addresses = append(v.Addresses, args[k].s)
				}
			}
		case a.kind == tString:
			v.Reason = a.s
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, errors.New("vacation: no ';' at the end")
}

// dates reads currentdate tests: `currentdate [...] :value "ge" "date"
// "2026-12-20"` (or "iso8601" with a time).
func dates(toks []token) (start, end time.Time) {
	for i := 0; i < len(toks); i++ {
		if toks[i].kind != tIdent || toks[i].s != "currentdate" {
			continue
		}
		var rel, part, val string
		var strs []string
		for j := i + 1; j < len(toks) && toks[j].kind != tPunct && toks[j].kind != tIdent; j++ {
			switch {
			case toks[j].kind == tTag && toks[j].s == "value" && j+1 < len(toks) && toks[j+1].kind == tString:
				rel = toks[j+1].s
				j++
			case toks[j].kind == tTag && (toks[j].s == "zone") && j+1 < len(toks):
				j++
			case toks[j].kind == tString:
				strs = append(strs, toks[j].s)
			}
		}
		if len(strs) < 2 {
			continue
		}
		part, val = strings.ToLower(strs[0]), strs[1]
		var t time.Time
		var err error
		switch part {
		case "date":
			t, err = time.Parse("2006-01-02", val)
		case "iso8601":
			t, err = time.Parse(time.RFC3339, val)
		default:
			continue
		}
		if err != nil {
			continue
		}
		switch rel {
		case "ge", "gt":
			start = t.UTC()
		case "le", "lt":
			if part == "date" && rel == "le" {
				t = t.Add(24*time.Hour - time.Second) // the whole last day
			}
			end = t.UTC()
		}
	}
	return start, end
}
