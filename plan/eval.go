package plan

import (
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// funcError is an error from one of the plan's own functions; it carries the
// diagnostic's wording so the generic "Error in function call" of HCL can be
// replaced by something that says what to do.
type funcError struct {
	summary, detail string
}

func (e *funcError) Error() string { return e.detail }

// functions returns the plan's function table.
func (l *loader) functions() map[string]function.Function {
	return map[string]function.Function{
		"env":        l.envFunc(),
		"file":       l.fileFunc(),
		"csv":        l.csvFunc(),
		"trimspace":  stdlib.TrimSpaceFunc,
		"lower":      stdlib.LowerFunc,
		"upper":      stdlib.UpperFunc,
		"format":     stdlib.FormatFunc,
		"join":       stdlib.JoinFunc,
		"concat":     stdlib.ConcatFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
	}
}

func (l *loader) envFunc() function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable; it is an error when the variable is not set.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			v, ok := l.cfg.lookupEnv(name)
			if (!ok || v == "") && l.cfg.deferSecrets {
				// Decided where the value is used (eval): a warning in
				// a secret attribute, the usual error elsewhere.
				return cty.StringVal("").Mark(unsetEnvMark{name: name, empty: ok}), nil
			}
			if !ok {
				return cty.UnknownVal(cty.String), &funcError{
					summary: "Unset environment variable",
					detail: fmt.Sprintf("The environment variable %s is not set. Export it before running mailmig "+
						"(for example `export %s=...`), or remove the env(%q) call from the plan.", name, name, name),
				}
			}
			if v == "" {
				// An empty password or address is a mistake in a deploy
				// script far more often than a wish.
				return cty.UnknownVal(cty.String), &funcError{
					summary: "Empty environment variable",
					detail: fmt.Sprintf("The environment variable %s is set but empty. Give it a value before running mailmig, "+
						"or remove the env(%q) call from the plan.", name, name),
				}
			}
			l.noteInput(v)
			return cty.StringVal(v).Mark(inputMark), nil
		},
	})
}

func (l *loader) fileFunc() function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a file, relative to the plan's directory.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := l.resolvePath(args[0].AsString())
			b, err := readLimited(p, MaxFileSize)
			if err != nil {
				return cty.UnknownVal(cty.String), &funcError{
					summary: "Unreadable file",
					detail:  fmt.Sprintf("The file %s cannot be read: %v. Paths are relative to the plan's directory; check the name and the permissions.", p, unwrapPathErr(err)),
				}
			}
			l.noteInput(string(b))
			return cty.StringVal(string(b)).Mark(inputMark), nil
		},
	})
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// resolvePath resolves a plan-relative path against the base directory.
func (l *loader) resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.baseDir, p)
}

// evalCtx returns the evaluation context for plan attributes.
func (l *loader) evalCtx() *hcl.EvalContext {
	if l.ctx == nil {
		vars := map[string]cty.Value{}
		for _, v := range l.varVals {
			vars[v.name] = v.val
		}
		l.ctx = &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
			Functions: l.functions(),
		}
	}
	return l.ctx
}

// checkRefs reports references that the plan's value attributes cannot
// use: undefined variables, and backend/wave/accounts references outside
// from, to, after and accounts. It returns false when there were problems.
func (l *loader) checkRefs(expr hcl.Expression) bool {
	ok := true
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		switch root {
		case "var":
			name, rng := traversalAttr(tr)
			if name == "" {
				l.errorf(tr.SourceRange(), "Invalid variable reference",
					"A variable reference is written var.<name>, for example var.domain.")
				ok = false
				continue
			}
			if _, found := l.varByName[name]; !found {
				l.errorf(rng, "Undefined variable",
					"No variable named %q is declared.%s Declare it with a variable %q { default = ... } block.",
					name, didYouMean(name, l.varNames()), name)
				ok = false
			}
		case "backend", "wave", "accounts":
			l.errorf(tr.SourceRange(), "Reference not allowed here",
				"A %s reference can only be used in %s. Write a literal value or a var.<name> reference here.",
				root, refPlaces[root])
			ok = false
		default:
			l.errorf(tr.SourceRange(), "Unknown reference",
				"There is nothing named %q in a plan. References are var.<name> in values, backend.<name> in from and to, "+
					"wave.<name> in after, and accounts.<name> in a wave's accounts.", root)
			ok = false
		}
	}
	return ok
}

var refPlaces = map[string]string{
	"backend":  "the from and to attributes",
	"wave":     "a wave's after attribute",
	"accounts": "a wave's accounts attribute",
}

// traversalAttr returns the attribute name after the root of tr
// (var.NAME) and its range.
func traversalAttr(tr hcl.Traversal) (string, hcl.Range) {
	if len(tr) < 2 {
		return "", tr.SourceRange()
	}
	switch s := tr[1].(type) {
	case hcl.TraverseAttr:
		return s.Name, hcl.RangeBetween(tr[0].SourceRange(), s.SrcRange)
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String {
			return s.Key.AsString(), hcl.RangeBetween(tr[0].SourceRange(), s.SrcRange)
		}
	}
	return "", tr.SourceRange()
}

// eval evaluates expr. The result is cty.NilVal when evaluation failed (the
// problem has been reported) or the value is null.
func (l *loader) eval(expr hcl.Expression) cty.Value {
	if !l.checkRefs(expr) {
		return cty.NilVal
	}
	l.pendingInputs = nil
	v, diags := expr.Value(l.evalCtx())
	l.addDiags(fixFuncDiags(diags))
	if diags.HasErrors() || !v.IsWhollyKnown() {
		l.recordRedaction(expr.Range(), cty.NilVal, false)
		return cty.NilVal
	}
	if v.ContainsMarked() && !l.deferredEnv(expr.Range(), v) {
		l.recordRedaction(expr.Range(), cty.NilVal, false)
		return cty.NilVal
	}
	if v.ContainsMarked() {
		sensitive, input := hasMark(v, sensitiveMark), hasMark(v, inputMark)
		v, _ = v.UnmarkDeep()
		l.recordRedaction(expr.Range(), v, input)
		if sensitive && !l.allowSensitive {
			l.errorf(expr.Range(), "Sensitive value in a plain attribute",
				"This value comes from a sensitive variable, but this attribute is not secret: it appears in plan output, logs and the journal. "+
					"Use sensitive variables only in password and client_secret, or declare the variable without sensitive = true.")
			return cty.NilVal
		}
	}
	l.recordRedaction(expr.Range(), cty.NilVal, false)
	if v.IsNull() {
		return cty.NilVal
	}
	return v
}

// unsetEnvMark marks the placeholder that env() returns for an unset (or
// empty) variable under WithSecretsDeferred.
type unsetEnvMark struct {
	name  string
	empty bool
}

// deferredEnv handles env() placeholders in v: in a secret attribute it
// warns once per variable and notes the secret as deferred; elsewhere it
// reports the variable as unset. It returns false when v is unusable.
func (l *loader) deferredEnv(rng hcl.Range, v cty.Value) bool {
	_, pvm := v.UnmarkDeepWithPaths()
	ok := true
	for _, pm := range pvm {
		for m := range pm.Marks {
			u, is := m.(unsetEnvMark)
			if !is {
				continue
			}
			state := "is not set"
			if u.empty {
				state = "is set but empty"
			}
			if !l.allowSensitive {
				l.errorf(rng, "Unset environment variable",
					"The environment variable %s %s. Export it before running mailmig (for example `export %s=...`), or remove the env(%q) call from the plan.", u.name, state, u.name, u.name)
				ok = false
				continue
			}
			l.secretDeferred = true
			l.warnDeferred(rng, u.name, state)
		}
	}
	return ok
}

// warnDeferred warns once per variable that a secret is missing.
func (l *loader) warnDeferred(rng hcl.Range, name, state string) {
	if l.deferredWarned[name] {
		return
	}
	if l.deferredWarned == nil {
		l.deferredWarned = map[string]bool{}
	}
	l.deferredWarned[name] = true
	r := rng
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Secret not set",
		Detail: fmt.Sprintf("The environment variable %s %s. This command does not log in and does not need it; "+
			"the commands that log in (plan with -refresh, plan -check, apply, rollback, proxy) do: export it before running them.", name, state),
		Subject: &r,
	})
}

// sensitiveMark marks values of sensitive variables.
const sensitiveMark = "sensitive"

// fixFuncDiags rewords diagnostics from the plan's own functions.
func fixFuncDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		extra, ok := hcl.DiagnosticExtra[hclsyntax.FunctionCallDiagExtra](d)
		if !ok {
			continue
		}
		var fe *funcError
		if errors.As(extra.FunctionCallError(), &fe) {
			d.Summary, d.Detail = fe.summary, fe.detail
			if call, ok := d.Expression.(*hclsyntax.FunctionCallExpr); ok {
				r := call.Range()
				d.Subject = &r
			}
		}
	}
	return diags
}

// typeName names a cty type for a user.
func typeName(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "an object"
	}
	return t.FriendlyName()
}

func (l *loader) typeErr(attr *hcl.Attribute, want string, got cty.Value, example string) {
	l.errorf(attr.Expr.Range(), "Incorrect attribute value type",
		"The attribute %q must be %s, but the value is %s. %s", attr.Name, want, typeName(got.Type()), example)
}

// attrString decodes a string attribute; ok is false when absent or
// invalid.
func (l *loader) attrString(attrs hcl.Attributes, name string) (string, *hcl.Attribute, bool) {
	attr := attrs[name]
	if attr == nil {
		return "", nil, false
	}
	v := l.eval(attr.Expr)
	if v == cty.NilVal {
		return "", attr, false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || !v.Type().IsPrimitiveType() {
		l.typeErr(attr, "a string", v, fmt.Sprintf("Write it in quotes, for example %s = \"...\".", name))
		return "", attr, false
	}
	return s.AsString(), attr, true
}

// attrSecret decodes a string attribute as a Secret.
func (l *loader) attrSecret(attrs hcl.Attributes, name string) (Secret, *hcl.Attribute, bool) {
	l.allowSensitive, l.secretDeferred = true, false
	s, attr, ok := l.attrString(attrs, name)
	l.allowSensitive = false
	if !ok {
		return Secret{}, attr, false
	}
	if l.secretDeferred {
		// Set, so that the plan's checks ("needs a password") pass;
		// the loader warned that the value is missing.
		return deferredSecret(), attr, true
	}
	return NewSecret(s), attr, true
}

// attrBool decodes a bool attribute.
func (l *loader) attrBool(attrs hcl.Attributes, name string) (bool, *hcl.Attribute, bool) {
	attr := attrs[name]
	if attr == nil {
		return false, nil, false
	}
	v := l.eval(attr.Expr)
	if v == cty.NilVal {
		return false, attr, false
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil {
		l.typeErr(attr, "a bool", v, fmt.Sprintf("Write %s = true or %s = false.", name, name))
		return false, attr, false
	}
	return b.True(), attr, true
}

// attrNumber decodes a number attribute.
func (l *loader) attrNumber(attrs hcl.Attributes, name string) (*big.Float, *hcl.Attribute, bool) {
	attr := attrs[name]
	if attr == nil {
		return nil, nil, false
	}
	v := l.eval(attr.Expr)
	if v == cty.NilVal {
		return nil, attr, false
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		l.typeErr(attr, "a number", v, fmt.Sprintf("Write a number without quotes, for example %s = 4.", name))
		return nil, attr, false
	}
	return n.AsBigFloat(), attr, true
}

// attrInt decodes a whole number attribute that must be at least min.
func (l *loader) attrInt(attrs hcl.Attributes, name string, min int64) (int, *hcl.Attribute, bool) {
	f, attr, ok := l.attrNumber(attrs, name)
	if !ok {
		return 0, attr, false
	}
	i, acc := f.Int64()
	if acc != big.Exact || !f.IsInt() {
		l.errorf(attr.Expr.Range(), "Invalid number",
			"The attribute %q must be a whole number, for example %s = 4.", name, name)
		return 0, attr, false
	}
	if i < min || i > 1<<31-1 {
		l.errorf(attr.Expr.Range(), "Number out of range",
			"The attribute %q must be between %d and %d; the value is %d.", name, min, 1<<31-1, i)
		return 0, attr, false
	}
	return int(i), attr, true
}

// attrStringList decodes a list of strings.
func (l *loader) attrStringList(attrs hcl.Attributes, name string) ([]string, *hcl.Attribute, bool) {
	attr := attrs[name]
	if attr == nil {
		return nil, nil, false
	}
	v := l.eval(attr.Expr)
	if v == cty.NilVal {
		return nil, attr, false
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || !(v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType()) {
		l.typeErr(attr, "a list of strings", v, fmt.Sprintf("Write it in brackets, for example %s = [\"a\", \"b\"].", name))
		return nil, attr, false
	}
	var out []string
	for it := lv.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			l.errorf(attr.Expr.Range(), "Null list element", "The list %q must not contain null.", name)
			return nil, attr, false
		}
		out = append(out, e.AsString())
	}
	return out, attr, true
}

// refName decodes an attribute that must be a reference kind.NAME
// (backend.legacy). It reports the problem and returns "" otherwise.
func (l *loader) refName(expr hcl.Expression, kind, attrName, example string) (string, hcl.Range) {
	tr, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() || tr.RootName() != kind {
		l.errorf(expr.Range(), "Invalid reference",
			"The attribute %q must be a reference to a %s, written without quotes, for example %s.", attrName, kind, example)
		return "", expr.Range()
	}
	name, rng := traversalAttr(tr)
	if name == "" || len(tr) != 2 {
		l.errorf(expr.Range(), "Invalid reference",
			"The attribute %q must be a reference to a %s, written without quotes, for example %s.", attrName, kind, example)
		return "", expr.Range()
	}
	return name, rng
}

// didYouMean returns ` Did you mean "x"?` when a candidate is close to
// name, else "".
func didYouMean(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
