package plan

import (
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// inputMark marks values that come from outside the plan's text: env(),
// file(), csv() used in an expression, and variable values given by -var
// or MAILMIG_VAR_NAME. Such values may be used anywhere (a host name from
// the environment is fine), but they may be secrets (a CI token, a key
// file read by mistake), so no diagnostic shows them: a CI job that
// validates plans from pull requests must not copy its secrets into its
// log. The mark travels through templates and functions like
// sensitiveMark; eval records where it ended up (see redaction).
const inputMark = "input"

// minGlobalRedact is the shortest value read by env() or file() (or given
// by -var) that is scrubbed from every diagnostic, wherever it is; shorter
// ones, and values computed from inputs, are scrubbed only from the
// diagnostics of the expression that produced them, so that a value such
// as "143" or "none" does not blank unrelated text.
const minGlobalRedact = 6

// redaction is an expression whose value came (in part) from an input:
// diagnostics inside rng must not show values.
type redaction struct {
	rng hcl.Range
	// values are the input values read while evaluating the expression
	// and the string leaves of its result.
	values []string
}

// noteInput records a value read by env() or file() while an expression is
// being evaluated; eval attaches it to that expression's range.
func (l *loader) noteInput(s string) {
	l.pendingInputs = append(l.pendingInputs, s)
}

// recordRedaction attaches the pending input values and the string leaves
// of v (when it carried inputMark) to rng.
func (l *loader) recordRedaction(rng hcl.Range, v cty.Value, marked bool) {
	vals := l.pendingInputs
	l.pendingInputs = nil
	for _, s := range vals {
		if len(s) >= minGlobalRedact {
			l.globalInputs = append(l.globalInputs, s)
		}
	}
	if marked && v != cty.NilVal {
		vals = appendStringLeaves(vals, v)
	}
	if len(vals) == 0 {
		return
	}
	l.redactions = append(l.redactions, redaction{rng: rng, values: vals})
}

// appendStringLeaves appends every known string (and number, printed as
// HCL prints it) inside an unmarked value.
func appendStringLeaves(out []string, v cty.Value) []string {
	if v.IsNull() || !v.IsKnown() {
		return out
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return append(out, v.AsString())
	case t == cty.Number:
		return append(out, v.AsBigFloat().Text('f', -1))
	case t.IsListType() || t.IsTupleType() || t.IsSetType() || t.IsMapType() || t.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = appendStringLeaves(out, e)
		}
	}
	return out
}

// hasMark reports whether any part of v carries mark.
func hasMark(v cty.Value, mark string) bool {
	_, pvm := v.UnmarkDeepWithPaths()
	for _, pm := range pvm {
		if _, ok := pm.Marks[mark]; ok {
			return true
		}
	}
	return false
}

// scrubDiags replaces input values in every diagnostic's summary and
// detail with "(sensitive)": inside the range of an expression that used
// an input, every quoted string that is part of one of its values and
// every occurrence of the values; elsewhere, occurrences of values of at
// least minGlobalRedact bytes.
func (l *loader) scrubDiags() {
	for _, d := range l.diags {
		// HCL's own diagnostic writer prints the values of the variables
		// an expression refers to; nothing after the load needs them.
		d.EvalContext = nil
	}
	if len(l.redactions) == 0 {
		return
	}
	global := inputValues(l.globalInputs)
	local := l.containingRedactions()
	for i, d := range l.diags {
		vals := global
		for _, r := range local[i] {
			vals = append(vals[:len(vals):len(vals)], r.values...)
		}
		d.Summary = scrub(d.Summary, vals, len(local[i]) > 0)
		d.Detail = scrub(d.Detail, vals, len(local[i]) > 0)
	}
}

// containingRedactions returns, for each diagnostic (by index), the
// redactions whose range contains its subject. Expression ranges nest
// (they come from one syntax tree), so one sweep in source order with a
// stack of open ranges finds them: a plan of 50,000 marked list elements,
// each wrong, took 30 s more when every diagnostic tried every range.
func (l *loader) containingRedactions() [][]*redaction {
	out := make([][]*redaction, len(l.diags))
	rs := make([]*redaction, len(l.redactions))
	for i := range l.redactions {
		rs[i] = &l.redactions[i]
	}
	// Outer ranges first where two start together.
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i].rng, rs[j].rng
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Start.Byte != b.Start.Byte {
			return a.Start.Byte < b.Start.Byte
		}
		return a.End.Byte > b.End.Byte
	})
	order := make([]int, 0, len(l.diags))
	for i, d := range l.diags {
		if d.Subject != nil {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := l.diags[order[i]].Subject, l.diags[order[j]].Subject
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	var open []*redaction
	next := 0
	for _, di := range order {
		sub := *l.diags[di].Subject
		// Open every range that starts at or before the subject.
		for next < len(rs) && (rs[next].rng.Filename < sub.Filename ||
			rs[next].rng.Filename == sub.Filename && rs[next].rng.Start.Byte <= sub.Start.Byte) {
			r := rs[next]
			next++
			for len(open) > 0 && !contains(open[len(open)-1].rng, r.rng) {
				open = open[:len(open)-1]
			}
			open = append(open, r)
		}
		// Close the ranges that end before the subject.
		for len(open) > 0 && !(open[len(open)-1].rng.Filename == sub.Filename && open[len(open)-1].rng.End.Byte > sub.Start.Byte) {
			open = open[:len(open)-1]
		}
		for _, r := range open {
			if contains(r.rng, sub) {
				out[di] = append(out[di], r)
			}
		}
	}
	return out
}

// contains reports whether outer contains inner.
func contains(outer, inner hcl.Range) bool {
	return outer.Filename == inner.Filename &&
		inner.Start.Byte >= outer.Start.Byte && inner.End.Byte <= outer.End.Byte
}

// scrub replaces the values in text. With quoted, a Go-quoted string in
// text whose content is part of a value is replaced as a whole, so that
// "the host %q ..." of a host inside an address from env() is hidden too.
func scrub(text string, values []string, quoted bool) string {
	vals := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" {
			vals = append(vals, v)
		}
	}
	// Longest first, so a value is not half-replaced by a shorter one.
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		text = strings.ReplaceAll(text, strconv.Quote(v), Redacted)
		if q := strconv.Quote(v); len(q) > 2 {
			text = strings.ReplaceAll(text, q[1:len(q)-1], Redacted)
		}
		text = strings.ReplaceAll(text, v, Redacted)
	}
	if !quoted {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		if text[i] != '"' {
			b.WriteByte(text[i])
			i++
			continue
		}
		q, err := strconv.QuotedPrefix(text[i:])
		if err != nil {
			b.WriteByte(text[i])
			i++
			continue
		}
		s, _ := strconv.Unquote(q)
		part := false
		for _, v := range vals {
			part = part || s != "" && strings.Contains(v, s)
		}
		if part {
			b.WriteString(Redacted)
		} else {
			b.WriteString(q)
		}
		i += len(q)
	}
	return b.String()
}

// InputValues returns the values that env() and file() read and that -var
// and MAILMIG_VAR_NAME gave, of at least 6 bytes (shorter ones, such as a
// port, would blank unrelated text), longest first; a value with space
// around it is also given trimmed, since plans write trimspace(file(...)).
// Values from csv() are not among them: the rows are the account list,
// which plan output must show. Commands replace these values with
// [Redacted] in everything they print or save, as diagnostics do, so that
// a CI job running "mailmig plan" does not copy its secrets into its log.
func (m *Migration) InputValues() []string {
	return m.inputs
}

// inputValues returns the distinct values of vals and their trimmed forms
// of at least minGlobalRedact bytes, longest first.
func inputValues(vals []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range vals {
		for _, s := range []string{v, strings.TrimSpace(v)} {
			if len(s) >= minGlobalRedact && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
