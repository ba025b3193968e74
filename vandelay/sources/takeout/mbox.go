package takeout

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"time"
)

// MaxMessageSize bounds one message of an mbox; a larger one is an error
// rather than an unbounded allocation. Gmail's own limit is 50 MB
// (25 MB attachments, base64-encoded).
const MaxMessageSize = 200 << 20

// ErrTooLarge is returned by Splitter.Next for a message over MaxMessageSize.
var ErrTooLarge = errors.New("mbox message too large")

// Splitter reads messages from an mbox stream (mboxrd as Google Takeout
// writes it; mboxo and CRLF or LF files read the same way). A message
// starts at a "From " line at the start of the file or after an empty
// line; ">From " quoting (any number of ">") loses one ">"; the empty line
// that separates messages is dropped; bare LF line ends become CRLF.
type Splitter struct {
	r       *bufio.Reader
	pending []byte // the "From " line of the next message
	started bool
	err     error
}

// NewSplitter returns a splitter reading r.
func NewSplitter(r io.Reader) *Splitter {
	return &Splitter{r: bufio.NewReaderSize(r, 256<<10)}
}

// Message is one message of an mbox.
type Message struct {
	// From is the "From " separator line without its line end.
	From string
	// Body is the message with CRLF line ends.
	Body []byte
}

// Date returns the time in the separator line ("From sender Wed Jun 26
// 12:01:02 +0000 2024" — the time Gmail received the message), zero if
// it does not parse.
func (m *Message) Date() time.Time {
	f := strings.Fields(m.From)
	if len(f) < 3 {
		return time.Time{}
	}
	s := strings.Join(f[2:], " ")
	for _, layout := range []string{"Mon Jan _2 15:04:05 -0700 2006", "Mon Jan _2 15:04:05 2006", "Mon Jan _2 15:04:05 MST 2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// readLine returns one line without its line end ("\n" or "\r\n"), and
// whether a line end was present.
func (s *Splitter) readLine() ([]byte, bool, error) {
	var line []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxMessageSize {
			return nil, false, ErrTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return line, false, nil
			}
			return line, false, err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, true, nil
	}
}

func isFrom(line []byte) bool { return bytes.HasPrefix(line, []byte("From ")) }

// Next returns the next message, or io.EOF after the last one.
func (s *Splitter) Next() (*Message, error) {
	if s.err != nil {
		return nil, s.err
	}
	if !s.started {
		s.started = true
		// Skip anything before the first "From " line (there should be
		// nothing).
		for {
			line, _, err := s.readLine()
			if err != nil {
				s.err = err
				if err == io.EOF {
					return nil, io.EOF
				}
				return nil, err
			}
			if isFrom(line) {
				s.pending = append([]byte(nil), line...)
				break
			}
		}
	}
	if s.pending == nil {
		s.err = io.EOF
		return nil, io.EOF
	}
	m := &Message{From: string(s.pending)}
	s.pending = nil
	var body bytes.Buffer
	blank := false // the previous line was empty
	for {
		line, eol, err := s.readLine()
		if err != nil && err != io.EOF {
			s.err = err
			return nil, err
		}
		if err == io.EOF && len(line) == 0 {
			break
		}
		if blank && isFrom(line) {
			s.pending = append([]byte(nil), line...)
			break
		}
		if blank {
			body.WriteString("\r\n")
		}
		blank = len(line) == 0 && eol
		if blank {
			continue // written when the next line shows it is not the separator
		}
		if q := bytes.TrimLeft(line, ">"); len(q) < len(line) && bytes.HasPrefix(q, []byte("From ")) {
			line = line[1:]
		}
		body.Write(line)
		if eol {
			body.WriteString("\r\n")
		}
		if body.Len() > MaxMessageSize {
			s.err = ErrTooLarge
			return nil, ErrTooLarge
		}
		if err == io.EOF {
			break
		}
	}
	m.Body = body.Bytes()
	return m, nil
}
