package views

import "io"

// DefaultWidth is the width human output is wrapped to.
const DefaultWidth = 78

// View writes human and machine output for one command run. Out is
// standard output (results, warnings), Err standard error (errors). A View
// is not safe for concurrent use.
type View struct {
	Out io.Writer
	Err io.Writer
	// Color enables ANSI colour and underlining; commands set it from
	// -no-color and whether Out is a terminal.
	Color bool
	// Width is the wrap width of prose. Default: DefaultWidth.
	Width int
	// warnings says where warnings go; held collects them in
	// WarningsInJSON mode.
	warnings WarningMode
	held     []Diagnostic
}

// WarningMode says where Diagnostics writes warnings.
type WarningMode int

const (
	// WarningsToOut prints warnings on standard output (human views).
	WarningsToOut WarningMode = iota
	// WarningsToErr prints warnings on standard error, so that a document
	// on standard output (Markdown, JSON lines) stays clean.
	WarningsToErr
	// WarningsInJSON holds warnings for the next JSON document, which
	// carries them as "diagnostics" (see JSON and ChangesJSON).
	WarningsInJSON
)

// SetWarnings sets where warnings go. Machine output must be the only
// thing on standard output: commands printing JSON hold them for the
// document, commands printing Markdown send them to standard error.
func (v *View) SetWarnings(m WarningMode) { v.warnings = m }

// New returns a View writing to out and err.
func New(out, err io.Writer, color bool) *View {
	return &View{Out: out, Err: err, Color: color}
}

func (v *View) width() int {
	if v.Width > 0 {
		return v.Width
	}
	return DefaultWidth
}

// ANSI escape sequences used by the human views.
const (
	colorReset     = "\x1b[0m"
	colorBold      = "\x1b[1m"
	colorUnderline = "\x1b[4m"
	colorRed       = "\x1b[31m"
	colorGreen     = "\x1b[32m"
	colorYellow    = "\x1b[33m"
)

// paint wraps s in the escape sequence when colour is on.
func (v *View) paint(seq, s string) string {
	if !v.Color || s == "" {
		return s
	}
	return seq + s + colorReset
}

// Success prints a green success line to Out, such as "Success! The plan
// is valid.".
func (v *View) Success(msg string) {
	io.WriteString(v.Out, v.paint(colorBold+colorGreen, msg)+"\n")
}
