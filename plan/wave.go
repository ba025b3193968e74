package plan

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	_ "time/tzdata" // cutover windows name IANA zones; do not depend on the host's zoneinfo
)

// Wave defaults.
const (
	DefaultMaxParallel           = 4
	DefaultCatchupThreshold      = 100
	DefaultCatchupThresholdBytes = 10 << 20
)

// maxUnassignedWarnings bounds the per-account "Account in no wave"
// warnings; the rest are summarised in one more warning.
const maxUnassignedWarnings = 10

var waveSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "accounts", Required: true},
		{Name: "after"},
		{Name: "not_before"},
		{Name: "cutover_window"},
		{Name: "max_parallel"},
		{Name: "canary"},
		{Name: "catchup_threshold"},
		{Name: "catchup_threshold_bytes"},
		{Name: "max_errors"},
		{Name: "max_verify_mismatches"},
	},
}

type afterRef struct {
	name string
	rng  hcl.Range
}

func (l *loader) waveNames() []string { return sortedKeys(l.waveByName) }

func (l *loader) decodeWave(b *hcl.Block) {
	name := b.Labels[0]
	if !hclsyntax.ValidIdentifier(name) {
		l.errorf(labelRange(b), "Invalid wave name",
			"The wave name %q is not valid: use letters, digits, underscores and dashes, starting with a letter, so that it can be referenced as wave.<name>.", name)
		return
	}
	if prev := l.waveByName[name]; prev != nil {
		l.errorf(labelRange(b), "Duplicate wave",
			"A wave named %q was already declared at %s. Wave names must be unique; rename or remove one of them.", name, prev.DeclRange)
		return
	}
	w := &Wave{
		Name:                  name,
		MaxParallel:           DefaultMaxParallel,
		CatchupThreshold:      DefaultCatchupThreshold,
		CatchupThresholdBytes: DefaultCatchupThresholdBytes,
		DeclRange:             blockRange(b),
	}
	l.waveByName[name] = w
	l.m.Waves = append(l.m.Waves, w)

	content, diags := b.Body.Content(waveSchema)
	l.addDiags(diags)
	attrs := content.Attributes

	if a := attrs["accounts"]; a != nil {
		l.waveAccounts(w, a)
	}
	if a := attrs["after"]; a != nil {
		l.waveAfter[name] = l.afterRefs(a)
	}
	if s, attr, ok := l.attrString(attrs, "not_before"); ok {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
		if err != nil {
			l.errorf(attr.Expr.Range(), "Invalid time",
				"The not_before value %q is not an RFC 3339 time. Write a date, time and offset, for example not_before = \"2026-12-01T22:00:00+01:00\" or \"2026-12-01T21:00:00Z\".", s)
		} else {
			w.NotBefore = t
		}
	}
	if s, attr, ok := l.attrString(attrs, "cutover_window"); ok {
		win, err := ParseWindow(s)
		if err != nil {
			l.errorf(attr.Expr.Range(), err.(*WindowError).summary(), "%s", err.(*WindowError).detail())
		} else {
			w.CutoverWindow = win
		}
	}
	if n, _, ok := l.attrInt(attrs, "max_parallel", 1); ok {
		w.MaxParallel = n
	}
	if n, attr, ok := l.attrInt(attrs, "canary", 0); ok {
		w.Canary = n
		if n > len(w.Accounts) && len(w.Accounts) > 0 {
			l.warnf(attr.Expr.Range(), "Canary larger than the wave",
				"The wave %q has %d accounts but canary = %d, so every account is a canary. Choose a canary smaller than the wave, or remove it.", name, len(w.Accounts), n)
		}
	}
	if n, _, ok := l.attrInt(attrs, "catchup_threshold", 0); ok {
		w.CatchupThreshold = n
	}
	if n, ok := l.attrBytes(attrs, "catchup_threshold_bytes", false); ok {
		w.CatchupThresholdBytes = n
	}
	if n, _, ok := l.attrInt(attrs, "max_errors", 0); ok {
		w.MaxErrors = n
	}
	if n, _, ok := l.attrInt(attrs, "max_verify_mismatches", 0); ok {
		w.MaxVerifyMismatches = n
	}
}

// waveAccounts decodes a wave's accounts: accounts.NAME, or a list whose
// elements are addresses, lists of addresses or accounts.NAME.
func (l *loader) waveAccounts(w *Wave, attr *hcl.Attribute) {
	if tr, d := hcl.AbsTraversalForExpr(attr.Expr); !d.HasErrors() && tr.RootName() == "accounts" {
		l.waveGroup(w, tr)
		return
	}
	exprs, d := hcl.ExprList(attr.Expr)
	if d.HasErrors() {
		exprs = []hcl.Expression{attr.Expr}
	}
	for _, e := range exprs {
		if tr, d := hcl.AbsTraversalForExpr(e); !d.HasErrors() && tr.RootName() == "accounts" {
			l.waveGroup(w, tr)
			continue
		}
		v := l.eval(e)
		if v == cty.NilVal {
			continue
		}
		var addrs []string
		switch t := v.Type(); {
		case t == cty.String:
			addrs = []string{v.AsString()}
		case t.IsListType() || t.IsTupleType() || t.IsSetType():
			lv, err := convert.Convert(v, cty.List(cty.String))
			if err != nil {
				l.typeErr(attr, "a list of addresses or accounts.<name>", v, "Write for example accounts = [\"alice@example.org\"] or accounts = accounts.staff.")
				continue
			}
			for it := lv.ElementIterator(); it.Next(); {
				_, x := it.Element()
				if !x.IsNull() {
					addrs = append(addrs, x.AsString())
				}
			}
		default:
			l.typeErr(attr, "a list of addresses or accounts.<name>", v, "Write for example accounts = [\"alice@example.org\"] or accounts = accounts.staff.")
			continue
		}
		for _, addr := range addrs {
			l.addToWave(w, addr, e.Range())
		}
	}
}

func (l *loader) waveGroup(w *Wave, tr hcl.Traversal) {
	name, rng := traversalAttr(tr)
	if name == "" || len(tr) != 2 {
		l.errorf(tr.SourceRange(), "Invalid reference",
			"An accounts reference is written accounts.<name>, for example accounts = accounts.staff.")
		return
	}
	g := l.groupByName[name]
	if g == nil {
		l.errorf(rng, "Undefined accounts block",
			"No accounts block named %q is declared.%s Declare it with accounts %q { ... }, or fix the reference.",
			name, didYouMean(name, sortedKeys(l.groupByName)), name)
		return
	}
	w.AccountGroups = append(w.AccountGroups, name)
	for _, a := range g.Accounts {
		l.addToWave(w, a.Address, rng)
	}
}

func (l *loader) addToWave(w *Wave, addr string, rng hcl.Range) {
	acct := l.acctByKey[normAddress(addr)]
	if acct == nil {
		if err := checkAddress(addr); err != nil {
			l.errorf(rng, "Invalid address", "The wave %q names %q, which is not an e-mail address: %v.", w.Name, addr, err)
			return
		}
		hint := ""
		if len(l.acctByKey) <= 10000 {
			hint = didYouMean(addr, sortedKeys(l.acctByKey))
		}
		l.errorf(rng, "Undefined account",
			"The wave %q names %q, which is not listed in any accounts block.%s Add it to an accounts block's list, or fix the address.", w.Name, addr, hint)
		return
	}
	if acct.Wave == w.Name {
		l.warnf(rng, "Account listed twice in a wave",
			"The wave %q names %q more than once. Remove the repeated entry.", w.Name, acct.Address)
		return
	}
	if acct.Wave != "" {
		prev := l.waveByName[acct.Wave]
		l.errorf(rng, "Account in two waves",
			"The account %q is already in wave %q (declared at %s). An account belongs to exactly one wave; remove it from one of them.",
			acct.Address, acct.Wave, prev.DeclRange)
		return
	}
	acct.Wave = w.Name
	w.Accounts = append(w.Accounts, acct.Address)
}

func (l *loader) afterRefs(attr *hcl.Attribute) []afterRef {
	exprs, d := hcl.ExprList(attr.Expr)
	if d.HasErrors() {
		l.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			"The attribute \"after\" must be a list of wave references, for example after = [wave.pilot].")
		return nil
	}
	var out []afterRef
	for _, e := range exprs {
		name, rng := l.refName(e, "wave", "after", "after = [wave.pilot]")
		if name != "" {
			out = append(out, afterRef{name: name, rng: rng})
		}
	}
	return out
}

// checkWaves resolves after, reports undefined waves and cycles, sorts the
// waves topologically and warns about accounts in no wave.
func (l *loader) checkWaves() {
	decl := l.m.Waves
	edges := map[string][]string{}
	for _, w := range decl {
		for _, ref := range l.waveAfter[w.Name] {
			if l.waveByName[ref.name] == nil {
				l.errorf(ref.rng, "Undefined wave",
					"No wave named %q is declared.%s Declare it with wave %q { ... }, or fix the reference.",
					ref.name, didYouMean(ref.name, l.waveNames()), ref.name)
				continue
			}
			dup := false
			for _, x := range w.After {
				dup = dup || x == ref.name
			}
			if dup {
				continue
			}
			w.After = append(w.After, ref.name)
			edges[w.Name] = append(edges[w.Name], ref.name)
		}
	}
	// Cycle detection by DFS in declaration order; each cycle is reported
	// once, at the after reference that closes it.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range edges[n] {
			switch color[m] {
			case white:
				visit(m)
			case grey:
				i := len(stack) - 1
				for i >= 0 && stack[i] != m {
					i--
				}
				cycle := append(append([]string{}, stack[i:]...), m)
				key := strings.Join(cycle, ">")
				if !reported[key] {
					reported[key] = true
					parts := make([]string, len(cycle))
					for j, c := range cycle {
						parts[j] = "wave." + c
					}
					rng := l.waveByName[n].DeclRange
					r := hcl.Range{Filename: rng.Filename, Start: hcl.Pos{Line: rng.Line, Column: rng.Column}, End: hcl.Pos{Line: rng.EndLine, Column: rng.EndColumn}}
					for _, ref := range l.waveAfter[n] {
						if ref.name == m {
							r = ref.rng
						}
					}
					l.errorf(r, "Cycle in wave order",
						"The waves wait for each other in a circle: %s, so none of them could ever cut over. Remove one of these after references.",
						strings.Join(parts, " → "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, w := range decl {
		if color[w.Name] == white {
			visit(w.Name)
		}
	}
	// Kahn's algorithm, always taking the earliest-declared ready wave, so
	// the order is stable. Waves in cycles are appended in declaration
	// order at the end.
	indeg := map[string]int{}
	for _, w := range decl {
		indeg[w.Name] = len(edges[w.Name])
	}
	done := map[string]bool{}
	var sorted []*Wave
	for len(sorted) < len(decl) {
		progressed := false
		for _, w := range decl {
			if done[w.Name] || indeg[w.Name] > 0 {
				continue
			}
			done[w.Name] = true
			sorted = append(sorted, w)
			for _, o := range decl {
				for _, dep := range edges[o.Name] {
					if dep == w.Name {
						indeg[o.Name]--
					}
				}
			}
			progressed = true
			break
		}
		if !progressed {
			for _, w := range decl {
				if !done[w.Name] {
					done[w.Name] = true
					sorted = append(sorted, w)
				}
			}
		}
	}
	l.m.Waves = sorted

	if len(l.m.Accounts) == 0 || l.diags.HasErrors() {
		// With errors, an account may be in no wave only because a wave
		// failed to decode; the warning would mislead.
		return
	}
	if len(decl) == 0 {
		g := l.m.AccountGroups[0].DeclRange
		l.warnf(hcl.Range{Filename: g.Filename, Start: hcl.Pos{Line: g.Line, Column: g.Column}, End: hcl.Pos{Line: g.EndLine, Column: g.EndColumn}},
			"No waves", "The plan lists %s but has no wave block, so no account will be cut over (they are still staged and caught up). "+
				"Add wave blocks, for example wave \"all\" { accounts = accounts.%s }.", plural(len(l.m.Accounts), "account"), l.m.AccountGroups[0].Name)
		return
	}
	n := 0
	for _, a := range l.m.Accounts {
		if a.Wave != "" {
			continue
		}
		n++
		if n <= maxUnassignedWarnings {
			r := a.DeclRange
			l.warnf(hcl.Range{Filename: r.Filename, Start: hcl.Pos{Line: r.Line, Column: r.Column}, End: hcl.Pos{Line: r.EndLine, Column: r.EndColumn}},
				"Account in no wave",
				"The account %q is in no wave, so it will be staged and kept caught up but never cut over. Add it to a wave's accounts.", a.Address)
		}
	}
	if n > maxUnassignedWarnings {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "More accounts in no wave",
			Detail:   fmt.Sprintf("%d more accounts are in no wave; only the first %d are shown above.", n-maxUnassignedWarnings, maxUnassignedWarnings),
		})
	}
}

// WindowError says why a cut-over window does not parse.
type WindowError struct {
	// Text is the window as written.
	Text string
	// Kind is "format", "time", "zone" or "empty".
	Kind string
	// Reason is a sentence for the user.
	Reason string
}

// Error returns the problem in one line.
func (e *WindowError) Error() string {
	return fmt.Sprintf("cutover window %q: %s", e.Text, e.Reason)
}

func (e *WindowError) summary() string {
	switch e.Kind {
	case "zone":
		return "Invalid time zone"
	case "empty":
		return "Empty cutover window"
	}
	return "Invalid cutover window"
}

func (e *WindowError) detail() string {
	return e.Reason + " Write the window as \"HH:MM-HH:MM Zone\" with an IANA time zone, for example cutover_window = \"22:00-05:00 Europe/Berlin\" (a window whose end is earlier than its start crosses midnight)."
}

var windowRE = regexp.MustCompile(`^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$`)

// ParseWindow parses a daily window "HH:MM-HH:MM Zone" such as
// "22:00-05:00 Europe/Berlin". The zone is an IANA name (or UTC) and is
// required; an end at or before the start crosses midnight; 24:00 is
// allowed as an end. Errors are *WindowError.
func ParseWindow(s string) (*Window, error) {
	m := windowRE.FindStringSubmatch(s)
	if m == nil {
		return nil, &WindowError{Text: s, Kind: "format", Reason: fmt.Sprintf("The window %q is not two times and a time zone.", s)}
	}
	start, err1 := clock(m[1], m[2], false)
	end, err2 := clock(m[3], m[4], true)
	if err := firstErr(err1, err2); err != nil {
		return nil, &WindowError{Text: s, Kind: "time", Reason: fmt.Sprintf("In the window %q, %v.", s, err)}
	}
	if m[5] == "" {
		return nil, &WindowError{Text: s, Kind: "zone", Reason: fmt.Sprintf("The window %q has no time zone, so it is ambiguous.", s)}
	}
	if m[5] == "Local" {
		return nil, &WindowError{Text: s, Kind: "zone", Reason: "The zone \"Local\" depends on the machine that runs mailmig; name the zone."}
	}
	loc, err := time.LoadLocation(m[5])
	if err != nil {
		return nil, &WindowError{Text: s, Kind: "zone", Reason: fmt.Sprintf("The time zone %q is not a known IANA zone name (such as Europe/Berlin, America/New_York or UTC).", m[5])}
	}
	if start == end || (start == 0 && end == 24*time.Hour) {
		if start == end {
			return nil, &WindowError{Text: s, Kind: "empty", Reason: fmt.Sprintf("The window %q starts and ends at the same time; to allow any time, remove cutover_window.", s)}
		}
	}
	return &Window{Text: strings.TrimSpace(s), Start: start, End: end, Location: loc}, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func clock(h, m string, isEnd bool) (time.Duration, error) {
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !isEnd)) {
		return 0, fmt.Errorf("%s:%s is not a time of day between 00:00 and 23:59", h, m)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// MarshalJSON encodes the window as the string it was written as.
func (w *Window) MarshalJSON() ([]byte, error) { return json.Marshal(w.Text) }

// String returns the window as written.
func (w *Window) String() string { return w.Text }

// CrossesMidnight reports whether the window ends on the day after it
// starts.
func (w *Window) CrossesMidnight() bool { return w.End <= w.Start }

// occurrence returns the window that starts on the local calendar day of
// day (in w.Location). Wall-clock times are used, so DST changes move the
// window with the clock, as an administrator expects.
func (w *Window) occurrence(day time.Time) (time.Time, time.Time) {
	y, mo, d := day.In(w.Location).Date()
	sh, sm := int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute)
	eh, em := int(w.End/time.Hour), int(w.End%time.Hour/time.Minute)
	start := time.Date(y, mo, d, sh, sm, 0, 0, w.Location)
	ed := d
	if w.CrossesMidnight() {
		ed++
	}
	end := time.Date(y, mo, ed, eh, em, 0, 0, w.Location)
	return start, end
}

// Contains reports whether t is inside an occurrence of the window
// (start inclusive, end exclusive).
func (w *Window) Contains(t time.Time) bool {
	start, end := w.Next(t)
	return !t.Before(start) && t.Before(end)
}

// Next returns the occurrence of the window that contains t, or else the
// next one after t.
func (w *Window) Next(t time.Time) (start, end time.Time) {
	tl := t.In(w.Location)
	y, mo, d := tl.Date()
	for i := -1; i <= 2; i++ {
		s, e := w.occurrence(time.Date(y, mo, d+i, 12, 0, 0, 0, w.Location))
		if e.After(t) {
			return s, e
		}
	}
	// Unreachable for valid windows; fall back to the day after tomorrow.
	return w.occurrence(time.Date(y, mo, d+3, 12, 0, 0, 0, w.Location))
}

// plural returns "1 account" or "n accounts".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
