package main

// Output scrubbing: values a plan read with env() or file() (or was given
// by -var) may be secrets, so nothing a command prints or saves for a
// loaded plan shows them (issue 10). Diagnostics are scrubbed by the plan
// package; this covers the rest (changes, state, logs, the saved changes
// file), whatever view wrote it.

import (
	"encoding/json"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mailmig/mailmig/plan"
)

// inputForms returns the values to hide and the forms in which the views
// print them: as is, Go-quoted (slog, %q), JSON-escaped (with and without
// HTML escaping) and Markdown-escaped, longest first.
func inputForms(vals []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, v := range vals {
		add(v)
		q := strconv.Quote(v)
		add(q[1 : len(q)-1])
		if b, err := json.Marshal(v); err == nil {
			add(string(b[1 : len(b)-1]))
		}
		add(strings.NewReplacer(`"`, `\"`, `\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(v))
		md := strings.NewReplacer("\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;").Replace(v)
		add(md)
		add(strings.ReplaceAll(md, "|", `\|`))
		add(strings.ReplaceAll(v, "|", `\|`))
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// scrubber replaces the forms of the plan's input values in a text.
type scrubber struct {
	forms []string
	r     *strings.Replacer
}

func newScrubber(m *plan.Migration) *scrubber {
	return newScrubberOf(m.InputValues())
}

func newScrubberOf(vals []string) *scrubber {
	forms := inputForms(vals)
	if len(forms) == 0 {
		return nil
	}
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, plan.Redacted)
	}
	return &scrubber{forms: forms, r: strings.NewReplacer(pairs...)}
}

// Replace returns s without input values; a nil scrubber changes nothing.
func (sc *scrubber) Replace(s string) string {
	if sc == nil {
		return s
	}
	return sc.r.Replace(s)
}

// held returns how many bytes at the end of s start one of the forms: they
// are kept back until the next write shows whether the form follows.
func (sc *scrubber) held(s string) int {
	n := 0
	for _, f := range sc.forms {
		// The longest end of s that f starts with: try each position of
		// f's first byte within reach, earliest first.
		for i := max(len(s)-(len(f)-1), 0); i < len(s)-n; i++ {
			if s[i] == f[0] && strings.HasPrefix(f, s[i:]) {
				n = len(s) - i
				break
			}
		}
	}
	return n
}

// scrubWriter passes writes through to w with the plan's input values
// replaced once a plan is loaded (setScrubber). A value split across two
// writes is still found: the end of a write that starts a value is held
// back until the next write or Flush. Progress lines and prompts pass at
// once unless they end like the start of a value. It is safe for
// concurrent use (the proxy logs from many goroutines).
type scrubWriter struct {
	mu   sync.Mutex
	w    io.Writer
	sc   *scrubber
	tail string
}

var _ io.Writer = (*scrubWriter)(nil)

func (s *scrubWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sc == nil {
		_, err := s.w.Write(p)
		return len(p), err
	}
	text := s.sc.Replace(s.tail + string(p))
	h := s.sc.held(text)
	s.tail = text[len(text)-h:]
	if out := text[:len(text)-h]; out != "" {
		if _, err := io.WriteString(s.w, out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is held back.
func (s *scrubWriter) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tail
	s.tail = ""
	if t == "" {
		return nil
	}
	_, err := io.WriteString(s.w, t)
	return err
}

// setScrubber starts replacing sc's values.
func (s *scrubWriter) setScrubber(sc *scrubber) {
	s.mu.Lock()
	s.sc = sc
	s.mu.Unlock()
}

// Fd lets the views tell whether the stream is a terminal.
func (s *scrubWriter) Fd() uintptr {
	if f, ok := s.w.(*os.File); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// scrubStreams wraps s.Out and s.Err; hide starts scrubbing m's values,
// done flushes both.
func scrubStreams(s Streams) (Streams, func(*plan.Migration), func()) {
	out, errw := &scrubWriter{w: s.Out}, &scrubWriter{w: s.Err}
	s.Out, s.Err = out, errw
	hide := func(m *plan.Migration) {
		if m == nil {
			return
		}
		sc := newScrubber(m)
		out.setScrubber(sc)
		errw.setScrubber(sc)
	}
	return s, hide, func() { out.Flush(); errw.Flush() }
}
