package plan

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// Limits on what a plan may ask of the loader. hclsyntax parses and
// evaluates by recursion, one Go stack frame (or several) per level of
// nesting: 100,000 nested "(" overflow the 1 GB Go stack and kill the
// process with a fatal error that no recover() catches. So the depth is
// checked by a cheap scan before HCL sees the file.
const (
	// MaxNestingDepth bounds how deeply brackets, parentheses, braces
	// (blocks and objects), strings and template interpolations may nest
	// in a plan file. Real plans nest about 6 deep.
	MaxNestingDepth = 100

	// MaxExprOperators bounds the operators (+, -, !, ==, ?, ...) in one
	// expression between two separators: hclsyntax builds a left-deep tree
	// for a chain of operators and evaluates it by recursion.
	MaxExprOperators = 1000

	// MaxStringEscapes bounds the escapes (\n, $${, %%{) in one quoted
	// string or heredoc: hclsyntax melds the literal pieces between them
	// in quadratic time (30,000 $${ take seconds, a file of them hours).
	MaxStringEscapes = 1000

	// MaxPlanFileSize bounds the size of one plan file: about 270,000
	// accounts listed inline. HCL lexes and parses a whole file into
	// tokens and a syntax tree that take about 70 times its size (a 16 MiB
	// plan of 545,000 inline accounts took 1.2 GB to validate); large
	// account lists belong in a CSV file read by csv(), which is streamed
	// and has its own limit.
	MaxPlanFileSize = 8 << 20

	// MaxCSVFileSize bounds a file read by csv(): generous for a million
	// accounts with every column filled (about 40 to 150 bytes a row).
	MaxCSVFileSize = 256 << 20
)

// scanNesting scans src the way the HCL lexer would (comments, quoted
// strings with their escapes and ${ }/%{ } interpolations, heredocs) and
// returns a diagnostic at the first place where the nesting or operator
// limits are exceeded, or nil. It keeps no more than MaxNestingDepth
// frames and allocates nothing per byte.
//
// It does not validate syntax: a file it accepts may still be rejected by
// the parser, which reports the error properly. Its only duty is that no
// file it accepts nests deeper than the limit, so it errs on counting too
// much (an identifier with dashes counts as operators, which is harmless
// with a limit of a thousand).
func scanNesting(filename string, src []byte) *hcl.Diagnostic {
	type frame struct {
		kind byte // '{', '[', '(', 'i' (interpolation), '"', 'h' (heredoc)
		// ops counts operators since the last separator in this frame.
		ops int
		// marker is a heredoc's end marker.
		marker []byte
	}
	var stack []frame
	// rootOps counts operators outside any frame (a syntax error, but
	// the parser still builds the tree).
	rootOps := 0
	line, col := 1, 1
	i := 0
	// at is where the token being scanned starts: diagnostics point there.
	at := hcl.InitialPos
	// adv moves past n bytes, keeping line and column (in bytes; the
	// diagnostic needs a place, not a precise column after UTF-8).
	adv := func(n int) {
		for ; n > 0 && i < len(src); n-- {
			if src[i] == '\n' {
				line++
				col = 1
			} else if src[i] < 0x80 || src[i] >= 0xC0 {
				col++
			}
			i++
		}
	}
	tooDeep := func() *hcl.Diagnostic {
		p := at
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Plan nested too deeply",
			Detail: fmt.Sprintf("Brackets, braces, parentheses, strings and interpolations nest more than %d levels deep here. "+
				"A plan needs a few levels at most; look for an unclosed bracket or a generated file gone wrong.", MaxNestingDepth),
			Subject: &hcl.Range{Filename: filename, Start: p, End: p},
		}
	}
	push := func(f frame) *hcl.Diagnostic {
		if len(stack) >= MaxNestingDepth {
			return tooDeep()
		}
		stack = append(stack, f)
		return nil
	}
	pop := func() {
		if len(stack) > 0 {
			stack = stack[:len(stack)-1]
		}
	}
	op := func() *hcl.Diagnostic {
		n := &rootOps
		if len(stack) > 0 {
			n = &stack[len(stack)-1].ops
		}
		*n++
		if *n > MaxExprOperators {
			p := at
			return &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Expression too long",
				Detail: fmt.Sprintf("This expression has more than %d operators. A plan's expressions need a few; "+
					"split the value, or put long lists of accounts in a CSV file read by csv().", MaxExprOperators),
				Subject: &hcl.Range{Filename: filename, Start: p, End: p},
			}
		}
		return nil
	}
	// esc counts an escape in the current string or heredoc frame.
	esc := func() *hcl.Diagnostic {
		top := &stack[len(stack)-1]
		top.ops++
		if top.ops > MaxStringEscapes {
			p := at
			return &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "String with too many escapes",
				Detail: fmt.Sprintf("This string has more than %d escape sequences (such as \\n or $${). "+
					"Read long text with file() instead.", MaxStringEscapes),
				Subject: &hcl.Range{Filename: filename, Start: p, End: p},
			}
		}
		return nil
	}
	// sep resets the operator count of the current frame: separators
	// end an expression.
	sep := func() {
		if len(stack) > 0 {
			stack[len(stack)-1].ops = 0
		} else {
			rootOps = 0
		}
	}
	isIdent := func(c byte) bool {
		return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
	}
	topKind := func() byte {
		if len(stack) == 0 {
			return '{'
		}
		return stack[len(stack)-1].kind
	}
	for i < len(src) {
		c := src[i]
		at = hcl.Pos{Line: line, Column: col, Byte: i}
		switch topKind() {
		case '"', 'h':
			// Template text: a quoted string or a heredoc body.
			if topKind() == '"' {
				switch c {
				case '\\':
					if d := esc(); d != nil {
						return d
					}
					adv(2)
					continue
				case '"':
					// A newline does not end a quoted string for
					// the lexer (it reports it and reads on): only
					// the closing quote does.
					pop()
					adv(1)
					continue
				}
			} else if col == 1 {
				// A heredoc ends at a line holding only its marker
				// (indented with <<-).
				j := i
				for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
					j++
				}
				m := stack[len(stack)-1].marker
				k := j + len(m)
				if k <= len(src) && string(src[j:k]) == string(m) && (k == len(src) || src[k] == '\n' || src[k] == '\r') {
					pop()
					adv(k - i)
					continue
				}
			}
			if (c == '$' || c == '%') && i+1 < len(src) {
				if src[i+1] == c && i+2 < len(src) && src[i+2] == '{' {
					if d := esc(); d != nil {
						return d
					}
					adv(3) // $${ and %%{ are escapes
					continue
				}
				if src[i+1] == '{' {
					adv(2)
					if d := push(frame{kind: 'i'}); d != nil {
						return d
					}
					continue
				}
			}
			adv(1)
			continue
		}
		// Code: the top level, a block body, a bracket or an
		// interpolation.
		switch {
		case c == '#' || c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				adv(1)
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			adv(2)
			for i < len(src) && !(src[i] == '*' && i+1 < len(src) && src[i+1] == '/') {
				adv(1)
			}
			adv(2)
		case c == '"':
			adv(1)
			if d := push(frame{kind: '"'}); d != nil {
				return d
			}
		case c == '<' && i+1 < len(src) && src[i+1] == '<':
			// A heredoc: <<MARKER or <<-MARKER, then a newline.
			j := i + 2
			if j < len(src) && src[j] == '-' {
				j++
			}
			k := j
			for k < len(src) && isIdent(src[k]) {
				k++
			}
			if k > j && k < len(src) && (src[k] == '\n' || src[k] == '\r') {
				marker := src[j:k]
				adv(k - i)
				for i < len(src) && src[i] != '\n' {
					adv(1)
				}
				adv(1)
				if d := push(frame{kind: 'h', marker: marker}); d != nil {
					return d
				}
				continue
			}
			adv(2)
			if d := op(); d != nil {
				return d
			}
		case c == '{' || c == '[' || c == '(':
			adv(1)
			if d := push(frame{kind: c}); d != nil {
				return d
			}
		case c == '}' || c == ']' || c == ')':
			pop()
			adv(1)
		case c == ',' || c == '=' && !(i+1 < len(src) && src[i+1] == '='):
			sep()
			adv(1)
		case c == '\n':
			if k := topKind(); k == '{' {
				sep()
			}
			adv(1)
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			// An identifier: dashes inside it are not operators.
			for i < len(src) && isIdent(src[i]) {
				adv(1)
			}
		case c == '!' || c == '-' || c == '+' || c == '*' || c == '/' || c == '%' || c == '?' ||
			c == '<' || c == '>' || c == '&' || c == '|' || c == '=':
			if d := op(); d != nil {
				return d
			}
			adv(1)
		default:
			adv(1)
		}
	}
	return nil
}

// CheckSource applies the checks that must pass before a plan file is
// handed to an HCL parser (hclsyntax or hclwrite): its size
// (MaxPlanFileSize) and its nesting (MaxNestingDepth, MaxExprOperators).
// Load, LoadFile, LoadDir and Parse apply them; anything else in mailmig
// that parses a plan file (mailmig fmt, the snippets of diagnostics) must
// call CheckSource first, because the parsers recurse without bound and a
// stack overflow cannot be recovered.
func CheckSource(filename string, src []byte) hcl.Diagnostics {
	if len(src) > MaxPlanFileSize {
		return hcl.Diagnostics{readPlanDiag(filename, &tooLargeError{MaxPlanFileSize}, "")}
	}
	if d := scanNesting(filename, src); d != nil {
		return hcl.Diagnostics{d}
	}
	return nil
}
