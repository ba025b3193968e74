package sieveclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits of the response parser. A server that exceeds one is treated as
// broken (the connection is dropped), never buffered without bound.
const (
	// MaxLineLength bounds the non-literal part of one response line.
	MaxLineLength = 64 << 10
	// MaxLiteral bounds one literal (a script body or an error text).
	// Dovecot's sieve_max_script_size defaults to 1 MiB; Cyrus's
	// sieve_maxscriptsize to 32 KiB.
	MaxLiteral = 16 << 20
	// MaxTokens bounds the tokens of one line.
	MaxTokens = 64
	// MaxDataLines bounds the data lines before a status line
	// (LISTSCRIPTS names one script per line).
	MaxDataLines = 100000
)

// tokenKind is the type of one response token (RFC 5804 4).
type tokenKind int

const (
	tokAtom   tokenKind = iota // OK, NO, BYE, ACTIVE …
	tokString                  // quoted string or literal
	tokCode                    // a response code in parentheses, without them
)

type token struct {
	kind tokenKind
	s    string
}

// response is one command's response: the data lines and the final status.
type response struct {
	data   [][]token
	status string // OK, NO or BYE
	code   string // e.g. QUOTA/MAXSIZE, NONEXISTENT, ACTIVE (without parentheses)
	text   string // human-readable text (a quoted string or a literal)
}

// decoder reads responses with a sticky error (go-imap's imapwire style):
// after the first error every read returns it.
type decoder struct {
	r   *bufio.Reader
	err error
}

var errSyntax = errors.New("malformed ManageSieve response")

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errSyntax, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	b, err := d.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
		return 0, false
	}
	return b, true
}

func (d *decoder) peek() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	b, err := d.r.Peek(1)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
		return 0, false
	}
	return b[0], true
}

// readLine reads one response line with its literals and returns its
// tokens; the line ends at CRLF (a bare LF is accepted).
func (d *decoder) readLine() []token {
	var toks []token
	n := 0 // bytes of the line outside literals
	for d.err == nil {
		b, ok := d.peek()
		if !ok {
			break
		}
		switch {
		case b == ' ':
			d.byte()
			n++
		case b == '\r':
			d.byte()
			if c, ok := d.byte(); ok && c != '\n' {
				d.fail("CR without LF")
			}
			return toks
		case b == '\n':
			d.byte()
			return toks
		case b == '"':
			d.byte()
			s := d.quoted(&n)
			toks = append(toks, token{tokString, s})
		case b == '{':
			d.byte()
			toks = append(toks, token{tokString, d.literal(&n)})
		case b == '(':
			d.byte()
			toks = append(toks, token{tokCode, d.code(&n)})
		default:
			toks = append(toks, token{tokAtom, d.atom(&n)})
		}
		if n > MaxLineLength {
			d.fail("line longer than %d bytes", MaxLineLength)
		}
		if len(toks) > MaxTokens {
			d.fail("more than %d tokens on a line", MaxTokens)
		}
	}
	return nil
}

// quoted reads a quoted string after its opening quote (RFC 5804 4:
// backslash escapes only '"' and '\').
func (d *decoder) quoted(n *int) string {
	var sb strings.Builder
	for {
		b, ok := d.byte()
		if !ok {
			return ""
		}
		*n++
		if *n > MaxLineLength {
			d.fail("quoted string longer than %d bytes", MaxLineLength)
			return ""
		}
		switch b {
		case '"':
			return sb.String()
		case '\\':
			c, ok := d.byte()
			if !ok {
				return ""
			}
			if c != '"' && c != '\\' {
				d.fail("bad escape \\%c in quoted string", c)
				return ""
			}
			sb.WriteByte(c)
		case '\r', '\n', 0:
			d.fail("CR, LF or NUL in a quoted string")
			return ""
		default:
			sb.WriteByte(b)
		}
	}
}

// literal reads "{N}" or "{N+}" CRLF and N bytes, after the '{'.
func (d *decoder) literal(n *int) string {
	var digits []byte
	for {
		b, ok := d.byte()
		if !ok {
			return ""
		}
		*n++
		if b >= '0' && b <= '9' && len(digits) < 10 {
			digits = append(digits, b)
			continue
		}
		if b == '+' {
			b, ok = d.byte()
			if !ok {
				return ""
			}
		}
		if b != '}' || len(digits) == 0 {
			d.fail("bad literal length")
			return ""
		}
		break
	}
	size, err := strconv.Atoi(string(digits))
	if err != nil || size > MaxLiteral {
		d.fail("literal of %s bytes (limit %d)", digits, MaxLiteral)
		return ""
	}
	b, _ := d.byte()
	if b == '\r' {
		b, _ = d.byte()
	}
	if b != '\n' {
		d.fail("literal length not followed by CRLF")
		return ""
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(d.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
		return ""
	}
	return string(buf)
}

// code reads a response code after its '(' up to the matching ')';
// quoted strings inside it (e.g. (TAG "x")) are kept as written.
func (d *decoder) code(n *int) string {
	var sb strings.Builder
	inQuote, esc := false, false
	for {
		b, ok := d.byte()
		if !ok {
			return ""
		}
		*n++
		if *n > MaxLineLength {
			d.fail("response code longer than %d bytes", MaxLineLength)
			return ""
		}
		switch {
		case b == '\r' || b == '\n':
			d.fail("unterminated response code")
			return ""
		case esc:
			esc = false
		case inQuote && b == '\\':
			esc = true
		case b == '"':
			inQuote = !inQuote
		case b == ')' && !inQuote:
			return sb.String()
		}
		sb.WriteByte(b)
	}
}

func (d *decoder) atom(n *int) string {
	var sb strings.Builder
	for {
		b, ok := d.peek()
		if !ok {
			return sb.String()
		}
		if b == ' ' || b == '\r' || b == '\n' || b == '(' || b == '"' || b == '{' {
			if sb.Len() == 0 {
				d.byte()
				d.fail("unexpected %q", b)
			}
			return sb.String()
		}
		d.byte()
		*n++
		if *n > MaxLineLength {
			d.fail("atom longer than %d bytes", MaxLineLength)
			return ""
		}
		sb.WriteByte(b)
	}
}

// readResponse reads data lines up to and including the status line
// (OK, NO or BYE, RFC 5804 4).
func (d *decoder) readResponse() (*response, error) {
	r := &response{}
	for d.err == nil {
		toks := d.readLine()
		if d.err != nil {
			break
		}
		if len(toks) > 0 && toks[0].kind == tokAtom {
			switch st := strings.ToUpper(toks[0].s); st {
			case "OK", "NO", "BYE":
				r.status = st
				rest := toks[1:]
				if len(rest) > 0 && rest[0].kind == tokCode {
					r.code, rest = rest[0].s, rest[1:]
				}
				if len(rest) > 0 && rest[0].kind == tokString {
					r.text = rest[0].s
				}
				return r, nil
			}
		}
		if len(r.data) >= MaxDataLines {
			d.fail("more than %d data lines", MaxDataLines)
			break
		}
		r.data = append(r.data, toks)
	}
	return nil, d.err
}
