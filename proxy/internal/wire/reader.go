package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Limits of the pre-authentication readers.
const (
	// MaxLine is the longest line accepted before login, in bytes.
	MaxLine = 8 * 1024
	// MaxLiteral is the largest literal accepted before login.
	MaxLiteral = 64 * 1024
	// MaxLiterals is the most literals one command may carry.
	MaxLiterals = 8
	// MaxDepth is the deepest nesting of parenthesised lists.
	MaxDepth = 8
)

// RFC 2971 3.3's bounds of an IMAP ID command.
const (
	// MaxIDPairs is the most field-value pairs an ID may carry.
	MaxIDPairs = 30
	// MaxIDFieldLen is the longest field name, in octets.
	MaxIDFieldLen = 30
	// MaxIDValueLen is the longest value, in octets.
	MaxIDValueLen = 1024
	// maxIDQuotedPair is one pair written as two quoted strings with
	// every octet escaped, and the space after it.
	maxIDQuotedPair = (2 + 2*MaxIDFieldLen) + 1 + (2 + 2*MaxIDValueLen) + 1
)

// Limits of the IMAP front before login: an RFC 2971 ID of the maximum
// size must pass (Dovecot accepts it, and imaptest sends one), written
// with quoted strings or with literals.
const (
	// MaxIMAPLine is the longest IMAP command text before login: an ID
	// with 30 pairs of a 30-octet field and a 1024-octet value, quoted
	// with every octet escaped (63,424 bytes), and room for a long tag.
	MaxIMAPLine = 64 * 1024
	// MaxIMAPLiterals is the most literals of one IMAP command: an ID
	// that sends every field and value as a literal.
	MaxIMAPLiterals = 2*MaxIDPairs + 4
	// MaxIMAPCommand bounds an IMAP command's text and literals together,
	// so that many literals cannot add up to MaxIMAPLiterals×MaxLiteral.
	MaxIMAPCommand = 128 * 1024
)

// Limits bound one command read by ReadCommandLimits.
type Limits struct {
	// Text is the longest command text (all its lines; a literal counts
	// as one byte).
	Text int
	// Literal is the largest literal.
	Literal int64
	// Literals is the most literals one command may carry.
	Literals int
	// Total bounds the text and the literals together; 0 means no bound
	// beyond the others.
	Total int64
}

// DefaultLimits are the limits of ReadCommand.
var DefaultLimits = Limits{Text: MaxLine, Literal: MaxLiteral, Literals: MaxLiterals}

// IMAPLimits are the limits of the IMAP front's commands before login.
var IMAPLimits = Limits{Text: MaxIMAPLine, Literal: MaxLiteral, Literals: MaxIMAPLiterals, Total: MaxIMAPCommand}

// Errors of the readers and the decoder.
var (
	// ErrLineTooLong means a line exceeded MaxLine; the connection must be
	// closed.
	ErrLineTooLong = errors.New("line too long")
	// ErrLiteralTooLarge means a literal exceeded MaxLiteral. For a
	// synchronising literal the client sent nothing yet and the session can
	// go on after a BAD; otherwise it must be closed.
	ErrLiteralTooLarge = errors.New("literal too large")
	// ErrSyntax is a malformed command.
	ErrSyntax = errors.New("syntax error")
)

// LiteralError is returned for a literal that was refused: too large, one
// too many, or past the command's total.
type LiteralError struct {
	// Size is the announced size.
	Size int64
	// Sync is true for a synchronising literal (no data was sent yet).
	Sync bool
}

func (e *LiteralError) Error() string {
	return fmt.Sprintf("literal of %d bytes exceeds the command's limits", e.Size)
}

// Unwrap returns ErrLiteralTooLarge.
func (e *LiteralError) Unwrap() error { return ErrLiteralTooLarge }

// ReadLine reads one line ending in LF (CRLF or bare LF) of at most max
// bytes and returns it without the line ending.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max+2 {
			// Drain nothing more: the caller closes the connection.
			return nil, ErrLineTooLong
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// Command is one logical command: its text with literal markers replaced
// by NUL, and the literals in order.
type Command struct {
	// Text is the command without line endings; every literal is one NUL
	// byte.
	Text string
	// Literals are the literal contents, in order.
	Literals [][]byte
}

// ReadCommand reads one logical command within DefaultLimits: a line
// and, when it ends in a literal marker "{n}", "{n+}" or "{n-}" (RFC
// 7888), the literal and the rest of the command. For a synchronising
// literal it calls cont first (IMAP: "+ Ready"); cont may be nil for
// protocols without continuations.
func ReadCommand(br *bufio.Reader, cont func() error) (*Command, error) {
	return ReadCommandLimits(br, cont, DefaultLimits)
}

// ReadCommandLimits is ReadCommand within lim.
func ReadCommandLimits(br *bufio.Reader, cont func() error, lim Limits) (*Command, error) {
	var text []byte
	var lits [][]byte
	var litBytes int64
	for {
		line, err := ReadLine(br, lim.Text)
		if err != nil {
			return nil, err
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("%w: NUL in command", ErrSyntax)
		}
		if len(text)+len(line) > lim.Text || (lim.Total > 0 && int64(len(text)+len(line))+litBytes > lim.Total) {
			return nil, ErrLineTooLong
		}
		n, sync, start, ok := literalMarker(line)
		if !ok {
			text = append(text, line...)
			return &Command{Text: string(text), Literals: lits}, nil
		}
		text = append(text, line[:start]...)
		text = append(text, 0)
		if n > lim.Literal || len(lits) >= lim.Literals || (lim.Total > 0 && int64(len(text))+litBytes+n > lim.Total) {
			return &Command{Text: string(text)}, &LiteralError{Size: n, Sync: sync}
		}
		litBytes += n
		if sync && cont != nil {
			if err := cont(); err != nil {
				return nil, err
			}
		}
		lit := make([]byte, n)
		if _, err := readFull(br, lit); err != nil {
			return nil, err
		}
		lits = append(lits, lit)
	}
}

func readFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// literalMarker finds "{n}", "{n+}" or "{n-}" at the end of line.
func literalMarker(line []byte) (n int64, sync bool, start int, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, 0, false
	}
	num := line[open+1 : len(line)-1]
	sync = true
	if len(num) > 0 && (num[len(num)-1] == '+' || num[len(num)-1] == '-') {
		num = num[:len(num)-1]
		sync = false
	}
	if len(num) == 0 || len(num) > 10 {
		return 0, false, 0, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false, 0, false
		}
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return 0, false, 0, false
	}
	return v, sync, open, true
}
