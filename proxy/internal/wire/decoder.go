package wire

import (
	"fmt"
	"strings"
)

// Decoder walks a Command with a sticky error: every Expect method returns
// false once an error happened, and Err reports the first one.
type Decoder struct {
	s    string
	pos  int
	lits [][]byte
	li   int
	err  error
}

// NewDecoder returns a decoder over c.
func NewDecoder(c *Command) *Decoder { return &Decoder{s: c.Text, lits: c.Literals} }

// Err returns the first error, or nil.
func (d *Decoder) Err() error { return d.err }

func (d *Decoder) fail(what string) bool {
	if d.err == nil {
		d.err = fmt.Errorf("%w: expected %s at byte %d", ErrSyntax, what, d.pos)
	}
	return false
}

// AtEnd reports whether the whole command was consumed.
func (d *Decoder) AtEnd() bool { return d.err == nil && d.pos >= len(d.s) }

// ExpectEnd fails unless the whole command was consumed.
func (d *Decoder) ExpectEnd() bool {
	if d.err != nil {
		return false
	}
	if d.pos < len(d.s) {
		return d.fail("end of command")
	}
	return true
}

// Peek reports whether the next byte is c.
func (d *Decoder) Peek(c byte) bool { return d.err == nil && d.pos < len(d.s) && d.s[d.pos] == c }

// Consume skips c when it is next and reports whether it did.
func (d *Decoder) Consume(c byte) bool {
	if d.Peek(c) {
		d.pos++
		return true
	}
	return false
}

// Expect requires byte c next.
func (d *Decoder) Expect(c byte) bool {
	if d.err != nil {
		return false
	}
	if !d.Consume(c) {
		return d.fail(fmt.Sprintf("%q", c))
	}
	return true
}

// ExpectSP requires one space.
func (d *Decoder) ExpectSP() bool { return d.Expect(' ') }

// isAtomChar is RFC 9051 ATOM-CHAR (no specials, no CTL, no space).
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isAStringChar is ATOM-CHAR or resp-specials "]".
func isAStringChar(c byte) bool { return isAtomChar(c) || c == ']' }

func (d *Decoder) run(ok func(byte) bool) string {
	start := d.pos
	for d.pos < len(d.s) && ok(d.s[d.pos]) {
		d.pos++
	}
	return d.s[start:d.pos]
}

// ExpectAtom reads an atom.
func (d *Decoder) ExpectAtom(out *string) bool {
	if d.err != nil {
		return false
	}
	a := d.run(isAtomChar)
	if a == "" {
		return d.fail("atom")
	}
	*out = a
	return true
}

// ExpectTag reads an IMAP tag: ASTRING-CHARs except "+".
func (d *Decoder) ExpectTag(out *string) bool {
	if d.err != nil {
		return false
	}
	a := d.run(func(c byte) bool { return isAStringChar(c) && c != '+' })
	if a == "" {
		return d.fail("tag")
	}
	*out = a
	return true
}

// ExpectWord reads any run of non-space printable bytes (ManageSieve
// atoms, SASL mechanism names, base64 responses).
func (d *Decoder) ExpectWord(out *string) bool {
	if d.err != nil {
		return false
	}
	a := d.run(func(c byte) bool { return c > ' ' && c < 0x7f })
	if a == "" {
		return d.fail("word")
	}
	*out = a
	return true
}

// ExpectQuoted reads a quoted string with "\" escapes of '"' and '\'.
func (d *Decoder) ExpectQuoted(out *string) bool {
	if d.err != nil {
		return false
	}
	if !d.Expect('"') {
		return false
	}
	var b strings.Builder
	for d.pos < len(d.s) {
		c := d.s[d.pos]
		d.pos++
		switch c {
		case '"':
			*out = b.String()
			return true
		case '\\':
			if d.pos >= len(d.s) || (d.s[d.pos] != '"' && d.s[d.pos] != '\\') {
				return d.fail("quoted-special after backslash")
			}
			b.WriteByte(d.s[d.pos])
			d.pos++
		case '\r', '\n', 0:
			return d.fail("closing quote")
		default:
			b.WriteByte(c)
		}
	}
	return d.fail("closing quote")
}

// ExpectLiteral takes the next literal at the current position.
func (d *Decoder) ExpectLiteral(out *[]byte) bool {
	if d.err != nil {
		return false
	}
	if !d.Peek(0) || d.li >= len(d.lits) {
		return d.fail("literal")
	}
	d.pos++
	*out = d.lits[d.li]
	d.li++
	return true
}

// ExpectString reads a quoted string or a literal.
func (d *Decoder) ExpectString(out *string) bool {
	if d.Peek(0) {
		var b []byte
		if !d.ExpectLiteral(&b) {
			return false
		}
		*out = string(b)
		return true
	}
	return d.ExpectQuoted(out)
}

// ExpectAString reads an IMAP astring: atom (with "]"), quoted or literal.
func (d *Decoder) ExpectAString(out *string) bool {
	if d.err != nil {
		return false
	}
	if d.Peek('"') || d.Peek(0) {
		return d.ExpectString(out)
	}
	a := d.run(isAStringChar)
	if a == "" {
		return d.fail("astring")
	}
	*out = a
	return true
}

// ExpectNString reads an nstring: NIL (ok true, isNil true) or a string.
func (d *Decoder) ExpectNString(out *string, isNil *bool) bool {
	if d.err != nil {
		return false
	}
	if d.pos+3 <= len(d.s) && strings.EqualFold(d.s[d.pos:d.pos+3], "NIL") && (d.pos+3 == len(d.s) || !isAtomChar(d.s[d.pos+3])) {
		d.pos += 3
		*isNil = true
		return true
	}
	*isNil = false
	return d.ExpectString(out)
}

// ExpectIDParams reads an IMAP ID argument (RFC 2971): NIL, or a
// parenthesised list of string/nstring pairs, at most 30 of them.
func (d *Decoder) ExpectIDParams(out *[][2]string) bool {
	if d.err != nil {
		return false
	}
	var isNil bool
	var dummy string
	if !d.Peek('(') {
		if d.ExpectNString(&dummy, &isNil) && !isNil {
			return d.fail("NIL or list")
		}
		return d.err == nil
	}
	d.pos++
	for i := 0; !d.Peek(')'); i++ {
		if i >= MaxIDPairs {
			return d.fail("at most 30 ID fields")
		}
		if i > 0 && !d.ExpectSP() {
			return false
		}
		var k, v string
		if !d.ExpectString(&k) || !d.ExpectSP() || !d.ExpectNString(&v, &isNil) {
			return false
		}
		*out = append(*out, [2]string{k, v})
	}
	return d.Expect(')')
}

// Rest returns the unparsed remainder of the text (literals still as NUL)
// and moves to the end.
func (d *Decoder) Rest() string {
	r := d.s[d.pos:]
	d.pos = len(d.s)
	return r
}
