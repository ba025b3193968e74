package views

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/mailmig/mailmig/plan"
)

// DiagnosticsFormatVersion is the version of the JSON diagnostics form. It
// changes in its major part only when a field is removed or changes
// meaning.
const DiagnosticsFormatVersion = "1.0"

// Diagnostic is the rendering-independent form of one diagnostic: the JSON
// view marshals it as is, and the human view formats it.
type Diagnostic struct {
	// Severity is "error" or "warning".
	Severity string `json:"severity"`
	// Summary is a short phrase.
	Summary string `json:"summary"`
	// Detail says what is wrong and how to fix it.
	Detail string `json:"detail,omitempty"`
	// Range is where the problem is, when known.
	Range *Range `json:"range,omitempty"`
	// Snippet is the source line(s) of the range, when the source is known.
	Snippet *Snippet `json:"snippet,omitempty"`
}

// Range is a span of a source file.
type Range struct {
	Filename string `json:"filename"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// Pos is a position: line and column start at 1 (columns count
// characters), byte at 0.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Snippet is the first source line of a range with the highlighted part.
type Snippet struct {
	// Context names the top-level block the range is in, such as
	// `backend "legacy"`, or is empty.
	Context string `json:"context,omitempty"`
	// Code is the source line, without its line ending.
	Code string `json:"code"`
	// StartLine is the line number of Code.
	StartLine int `json:"start_line"`
	// HighlightStartOffset and HighlightEndOffset are byte offsets into
	// Code of the highlighted part.
	HighlightStartOffset int `json:"highlight_start_offset"`
	HighlightEndOffset   int `json:"highlight_end_offset"`
}

// NewDiagnostic converts an HCL diagnostic, taking the snippet from
// sources (file name → contents; may be nil).
func NewDiagnostic(d *hcl.Diagnostic, sources map[string][]byte) Diagnostic {
	return newDiagnostic(d, sources, map[string]contexter{})
}

// contexter finds the top-level block around a byte offset
// (hclsyntax's file navigation).
type contexter interface{ ContextString(offset int) string }

func newDiagnostic(d *hcl.Diagnostic, sources map[string][]byte, nav map[string]contexter) Diagnostic {
	out := Diagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
	if d.Severity == hcl.DiagWarning {
		out.Severity = "warning"
	}
	if d.Subject == nil {
		return out
	}
	s := d.Subject
	out.Range = &Range{
		Filename: s.Filename,
		Start:    Pos{Line: s.Start.Line, Column: s.Start.Column, Byte: s.Start.Byte},
		End:      Pos{Line: s.End.Line, Column: s.End.Column, Byte: s.End.Byte},
	}
	src, ok := sources[s.Filename]
	if !ok || s.Start.Line < 1 {
		return out
	}
	lineStart, line, found := findLine(src, s.Start.Line)
	if !found {
		return out
	}
	code := strings.TrimRight(string(line), "\r")
	start := byteOffset(code, s.Start.Column)
	end := len(code)
	if s.End.Line == s.Start.Line && s.End.Column > s.Start.Column {
		end = byteOffset(code, s.End.Column)
	}
	if end < start {
		end = start
	}
	out.Snippet = clipSnippet(&Snippet{Code: code, StartLine: s.Start.Line, HighlightStartOffset: start, HighlightEndOffset: end})
	if strings.HasSuffix(s.Filename, ".hcl") {
		n, ok := nav[s.Filename]
		if !ok {
			// Files with syntax errors still navigate as far as they
			// parse; files the plan loader refused to parse (too deep,
			// too large) would overflow the parser's stack, so they are
			// not navigated at all.
			if !plan.CheckSource(s.Filename, src).HasErrors() {
				f, _ := hclsyntax.ParseConfig(src, s.Filename, hcl.InitialPos)
				if f != nil {
					n, _ = f.Nav.(contexter)
				}
			}
			nav[s.Filename] = n
		}
		if n != nil {
			out.Snippet.Context = n.ContextString(lineStart + start)
		}
	}
	return out
}

// findLine returns the byte offset and the bytes (without "\n") of 1-based
// line n of src, without splitting the whole file: a CSV file of a million
// rows is a snippet source too.
func findLine(src []byte, n int) (int, []byte, bool) {
	off := 0
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src[off:], '\n')
		if j < 0 {
			return 0, nil, false
		}
		off += j + 1
	}
	line := src[off:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return off, line, true
}

// maxSnippetCode bounds the source line a snippet shows: a line of
// megabytes (a generated plan, a hostile one) is cut to a window around
// the highlight, marked with "…" where it was cut.
const maxSnippetCode = 240

// clipSnippet cuts sn.Code to at most about maxSnippetCode bytes around
// the highlight, keeping the offsets right. Cuts fall on rune boundaries.
func clipSnippet(sn *Snippet) *Snippet {
	if len(sn.Code) <= maxSnippetCode {
		return sn
	}
	const ellipsis = "…"
	from := max(0, sn.HighlightStartOffset-maxSnippetCode/4)
	to := min(len(sn.Code), from+maxSnippetCode)
	for from > 0 && !utf8.RuneStart(sn.Code[from]) {
		from--
	}
	for to < len(sn.Code) && !utf8.RuneStart(sn.Code[to]) {
		to++
	}
	hs, he := sn.HighlightStartOffset-from, min(sn.HighlightEndOffset, to)-from
	if he < hs {
		he = hs
	}
	code := sn.Code[from:to]
	if from > 0 {
		code = ellipsis + code
		hs += len(ellipsis)
		he += len(ellipsis)
	}
	if to < len(sn.Code) {
		code += ellipsis
	}
	sn.Code, sn.HighlightStartOffset, sn.HighlightEndOffset = code, hs, he
	return sn
}

// byteOffset returns the byte offset of 1-based character column col in
// line, clamped to the line.
func byteOffset(line string, col int) int {
	off := 0
	for i := 1; i < col && off < len(line); i++ {
		_, n := utf8.DecodeRuneInString(line[off:])
		off += n
	}
	return off
}

// NewDiagnostics converts a list of HCL diagnostics.
func NewDiagnostics(diags hcl.Diagnostics, sources map[string][]byte) []Diagnostic {
	out := make([]Diagnostic, 0, len(diags))
	nav := map[string]contexter{}
	for _, d := range diags {
		out = append(out, newDiagnostic(d, sources, nav))
	}
	return out
}

// Diagnostics renders diagnostics for people: errors go to v.Err, warnings
// to v.Out (or where SetWarnings says), each with its position, a source snippet with the range
// underlined, and the detail wrapped to the terminal width.
func (v *View) Diagnostics(diags hcl.Diagnostics, sources map[string][]byte) {
	for _, d := range NewDiagnostics(diags, sources) {
		w := v.Err
		if d.Severity == "warning" {
			switch v.warnings {
			case WarningsInJSON:
				v.held = append(v.held, d)
				continue
			case WarningsToOut:
				w = v.Out
			}
		}
		v.writeDiagnostic(w, d)
	}
}

func (v *View) writeDiagnostic(w io.Writer, d Diagnostic) {
	var b strings.Builder
	b.WriteString("\n")
	label, color := "Error: ", colorRed
	if d.Severity == "warning" {
		label, color = "Warning: ", colorYellow
	}
	b.WriteString(v.paint(colorBold+color, label) + v.paint(colorBold, d.Summary) + "\n")
	if d.Range != nil {
		in := ""
		if d.Snippet != nil && d.Snippet.Context != "" {
			in = ", in " + d.Snippet.Context
		}
		fmt.Fprintf(&b, "\n  on %s line %d%s:\n", d.Range.Filename, d.Range.Start.Line, in)
		if sn := d.Snippet; sn != nil {
			prefix := fmt.Sprintf("  %d: ", sn.StartLine)
			code := strings.ReplaceAll(sn.Code, "\t", "    ")
			pre := strings.ReplaceAll(sn.Code[:sn.HighlightStartOffset], "\t", "    ")
			hl := strings.ReplaceAll(sn.Code[sn.HighlightStartOffset:sn.HighlightEndOffset], "\t", "    ")
			post := code[len(pre)+len(hl):]
			b.WriteString(prefix + pre + v.paint(colorUnderline, hl) + post + "\n")
			n := utf8.RuneCountInString(hl)
			if n == 0 {
				n = 1
			}
			b.WriteString(strings.Repeat(" ", len(prefix)+utf8.RuneCountInString(pre)) + v.paint(color, strings.Repeat("^", n)) + "\n")
		}
	}
	if d.Detail != "" {
		b.WriteString("\n" + wrap(d.Detail, v.width()) + "\n")
	}
	io.WriteString(w, b.String())
}

// DiagnosticsJSON is the -json form of a validation result.
type DiagnosticsJSON struct {
	FormatVersion string       `json:"format_version"`
	Valid         bool         `json:"valid"`
	ErrorCount    int          `json:"error_count"`
	WarningCount  int          `json:"warning_count"`
	Diagnostics   []Diagnostic `json:"diagnostics"`
}

// NewDiagnosticsJSON builds the JSON form.
func NewDiagnosticsJSON(diags hcl.Diagnostics, sources map[string][]byte) DiagnosticsJSON {
	out := DiagnosticsJSON{FormatVersion: DiagnosticsFormatVersion, Diagnostics: NewDiagnostics(diags, sources)}
	for _, d := range out.Diagnostics {
		if d.Severity == "error" {
			out.ErrorCount++
		} else {
			out.WarningCount++
		}
	}
	out.Valid = out.ErrorCount == 0
	return out
}

// ValidateJSON writes the JSON form of a validation result to v.Out.
func (v *View) ValidateJSON(diags hcl.Diagnostics, sources map[string][]byte) error {
	enc := json.NewEncoder(v.Out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(NewDiagnosticsJSON(diags, sources))
}

// wrap word-wraps text to width, keeping existing line breaks and never
// breaking a word.
func wrap(text string, width int) string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		words := strings.Fields(para)
		if len(words) == 0 {
			out = append(out, "")
			continue
		}
		line := words[0]
		for _, w := range words[1:] {
			if utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width {
				out = append(out, line)
				line = w
				continue
			}
			line += " " + w
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// withHeld writes x as one indented JSON document to v.Out with the held
// warnings appended as a "diagnostics" field (the validate -json form of a
// diagnostic). x must marshal as a JSON object. The field is left out when
// no warning is held, so documents without warnings are unchanged.
func (v *View) withHeld(x any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(x); err != nil {
		return err
	}
	doc := b.Bytes()
	if len(v.held) > 0 {
		end := bytes.LastIndexByte(doc, '}')
		if end < 0 {
			return fmt.Errorf("cannot add diagnostics to a JSON %s", bytes.TrimSpace(doc))
		}
		ds, err := json.MarshalIndent(v.held, "  ", "  ")
		if err != nil {
			return err
		}
		body := bytes.TrimRight(doc[:end], " \n")
		sep := ","
		if bytes.HasSuffix(body, []byte("{")) {
			sep = ""
		}
		var out bytes.Buffer
		out.Write(body)
		out.WriteString(sep + "\n  \"diagnostics\": ")
		out.Write(ds)
		out.WriteString("\n}\n")
		doc = out.Bytes()
		v.held = nil
	}
	_, err := v.Out.Write(doc)
	return err
}
