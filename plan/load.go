package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// MaxFileSize bounds the size of a file read by file(), a password file
// and a certificate or key, so a wrong path cannot make mailmig read a disk
// image. Plan files and CSV files have their own limits (MaxPlanFileSize,
// MaxCSVFileSize).
const MaxFileSize = 4 << 20

// Load loads a plan from path: a single file, or a directory whose *.hcl
// files together form the plan (see [LoadDir]).
func Load(path string, opts ...Option) (*Migration, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		return LoadDir(path, opts...)
	}
	return LoadFile(path, opts...)
}

// LoadFile loads a plan from one file.
func LoadFile(path string, opts ...Option) (*Migration, hcl.Diagnostics) {
	l := newLoader(filepath.Dir(path), opts)
	src, err := readLimited(path, MaxPlanFileSize)
	if err != nil {
		l.diags = append(l.diags, readPlanDiag(path, err,
			" Pass the plan with -f FILE (or a directory of *.hcl files)."))
		return l.m, l.diags
	}
	l.addFile(path, src)
	return l.finish()
}

// LoadDir loads every *.hcl file in dir (not recursively, in name order) as
// one plan. Blocks may be spread over the files in any way.
func LoadDir(dir string, opts ...Option) (*Migration, hcl.Diagnostics) {
	l := newLoader(dir, opts)
	names, err := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if err != nil || len(names) == 0 {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No plan files",
			Detail:   fmt.Sprintf("The directory %s contains no *.hcl files. Pass the plan with -f FILE, or run mailmig in the plan's directory.", dir),
		})
		return l.m, l.diags
	}
	sort.Strings(names)
	for _, n := range names {
		src, err := readLimited(n, MaxPlanFileSize)
		if err != nil {
			l.diags = append(l.diags, readPlanDiag(n, err, ""))
			continue
		}
		l.addFile(n, src)
	}
	return l.finish()
}

// Parse loads a plan from src, reporting positions against filename.
// Relative paths resolve against the directory of filename unless
// [WithBaseDir] says otherwise.
func Parse(filename string, src []byte, opts ...Option) (*Migration, hcl.Diagnostics) {
	l := newLoader(filepath.Dir(filename), opts)
	l.addFile(filename, src)
	return l.finish()
}

// readPlanDiag reports a plan file that cannot be read. A file that is too
// large is reported at its first line, so the diagnostic has a place.
func readPlanDiag(path string, err error, hint string) *hcl.Diagnostic {
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Cannot read plan file",
		Detail:   fmt.Sprintf("The plan file %s cannot be read: %v.%s", path, unwrapPathErr(err), hint),
	}
	var tl *tooLargeError
	if errors.As(err, &tl) {
		d.Summary = "Plan file too large"
		d.Detail = fmt.Sprintf("The plan file %s is larger than %d MiB. Put long lists of accounts in a CSV file and read it with csv(\"accounts.csv\") (up to %d MiB).",
			path, tl.limit>>20, MaxCSVFileSize>>20)
		d.Subject = &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}
	}
	return d
}

// tooLargeError is returned by readLimited for a file over its limit.
type tooLargeError struct{ limit int }

func (e *tooLargeError) Error() string { return fmt.Sprintf("larger than %d MiB", e.limit>>20) }

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("is a directory")
	}
	if fi.Mode()&os.ModeDevice != 0 {
		return nil, fmt.Errorf("is a device, not a file")
	}
	// Stat sizes can lie (pipes, /proc): bound the read itself.
	if fi.Size() > int64(limit) {
		return nil, &tooLargeError{limit}
	}
	// Read into a buffer of the file's size (plus room to see the end):
	// io.ReadAll would double its way up and leave the halves as garbage.
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	_, err = buf.ReadFrom(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if len(b) > limit {
		return nil, &tooLargeError{limit}
	}
	return b, nil
}

// loader holds the state of one load. Decoding runs in dependency order:
// variables, then state/routes/backends/proxy, then accounts, then waves,
// then the checks that need everything.
type loader struct {
	cfg     *config
	baseDir string
	m       *Migration
	diags   hcl.Diagnostics
	bodies  []*hcl.File

	ctx       *hcl.EvalContext
	varVals   []varVal
	varByName map[string]*Variable

	backendByName map[string]*Backend
	groupByName   map[string]*AccountGroup
	acctByKey     map[string]*Account
	waveByName    map[string]*Wave
	waveAfter     map[string][]afterRef
	csvSrc        map[string][]byte
	lineWidths    map[string][]int32
	// allowSensitive is set while a secret attribute is evaluated.
	allowSensitive bool
	// secretDeferred is set when the secret attribute being evaluated
	// used an unset variable (WithSecretsDeferred); deferredWarned holds
	// the variables already warned about.
	secretDeferred bool
	deferredWarned map[string]bool
	// pendingInputs are the values env() and file() returned during the
	// evaluation in progress; redactions are where inputs were used.
	pendingInputs []string
	redactions    []redaction
	globalInputs  []string
}

type varVal struct {
	name string
	val  cty.Value
}

func newLoader(dir string, opts []Option) *loader {
	cfg := newConfig(opts)
	base := dir
	if cfg.baseDir != "" {
		base = cfg.baseDir
	}
	return &loader{
		cfg:           cfg,
		baseDir:       base,
		m:             &Migration{Dir: base, Sources: map[string][]byte{}},
		varByName:     map[string]*Variable{},
		backendByName: map[string]*Backend{},
		groupByName:   map[string]*AccountGroup{},
		acctByKey:     map[string]*Account{},
		waveByName:    map[string]*Wave{},
		waveAfter:     map[string][]afterRef{},
		csvSrc:        map[string][]byte{},
		lineWidths:    map[string][]int32{},
	}
}

func (l *loader) addFile(name string, src []byte) {
	l.m.Files = append(l.m.Files, name)
	l.m.Sources[name] = src
	// The parser recurses once per level of nesting and cannot be
	// stopped; refuse what would overflow the stack before it starts.
	if diags := CheckSource(name, src); diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return
	}
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	// One unclosed quote makes HCL report the same error on every later
	// line; keep the first of each kind per file.
	seen := map[string]bool{}
	for _, d := range diags {
		if seen[d.Summary] {
			continue
		}
		seen[d.Summary] = true
		l.diags = append(l.diags, d)
	}
	if f != nil && f.Body != nil {
		l.bodies = append(l.bodies, f)
	}
}

func (l *loader) addDiags(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Summary == "Missing required argument" && !strings.Contains(d.Detail, "Add it") {
			d.Detail += " Add it to the block; docs/plan.md lists every attribute."
		}
	}
	l.diags = append(l.diags, diags...)
}

func (l *loader) diag(sev hcl.DiagnosticSeverity, rng hcl.Range, summary, format string, args ...any) {
	r := rng
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: sev,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

func (l *loader) errorf(rng hcl.Range, summary, format string, args ...any) {
	l.diag(hcl.DiagError, rng, summary, format, args...)
}

func (l *loader) warnf(rng hcl.Range, summary, format string, args ...any) {
	l.diag(hcl.DiagWarning, rng, summary, format, args...)
}

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "state"},
		{Type: "routes"},
		{Type: "backend", LabelNames: []string{"name"}},
		{Type: "accounts", LabelNames: []string{"name"}},
		{Type: "wave", LabelNames: []string{"name"}},
		{Type: "proxy"},
	},
}

// hash computes Migration.Hash over the plan files in load order, then the
// CSV files read by csv() in name order, each named relative to the plan's
// directory, so the hash does not depend on where the plan is checked out.
// Files read by file() and password files are left out: they hold secrets.
func (l *loader) hash() string {
	h := sha256.New()
	add := func(name string) {
		src := l.m.Sources[name]
		rel, err := filepath.Rel(l.m.Dir, name)
		if err != nil {
			rel = filepath.Base(name)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(src))
		h.Write(src)
	}
	isPlan := map[string]bool{}
	for _, f := range l.m.Files {
		isPlan[f] = true
		add(f)
	}
	for _, name := range sortedKeys(l.m.Sources) {
		if !isPlan[name] {
			add(name)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (l *loader) finish() (*Migration, hcl.Diagnostics) {
	defer func() { l.m.Hash = l.hash() }()
	if l.m.Dir == "" {
		l.m.Dir = "."
	}
	if l.diags.HasErrors() {
		// Syntax errors: the blocks after them are unreliable, and
		// diagnostics about them would only bury the real problem.
		l.sortDiags()
		return l.m, l.diags
	}
	byType := map[string][]*hcl.Block{}
	for _, f := range l.bodies {
		content, diags := f.Body.Content(topSchema)
		l.addDiags(diags)
		for _, b := range content.Blocks {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}
	for _, b := range byType["variable"] {
		l.decodeVariable(b)
	}
	l.decodeState(byType["state"])
	l.decodeRoutes(byType["routes"])
	for _, b := range byType["backend"] {
		l.decodeBackend(b)
	}
	for _, b := range byType["accounts"] {
		l.decodeAccountGroup(b)
	}
	for _, b := range byType["wave"] {
		l.decodeWave(b)
	}
	l.checkWaves()
	l.decodeProxy(byType["proxy"])
	// The loader's index is keyed as the model's: share it rather than
	// build a second map of every account.
	l.m.accountIdx = l.acctByKey
	l.m.index()
	l.scrubDiags()
	l.m.inputs = inputValues(l.globalInputs)
	l.sortDiags()
	return l.m, l.diags
}

// sortDiags orders diagnostics by file (plan files in load order first),
// line and column; diagnostics without a position come last. The order is
// stable so that golden tests and users see the same listing every time.
func (l *loader) sortDiags() {
	fileIdx := map[string]int{}
	for i, f := range l.m.Files {
		fileIdx[f] = i
	}
	key := func(d *hcl.Diagnostic) (int, string, int, int) {
		if d.Subject == nil {
			return 1 << 30, "", 0, 0
		}
		i, ok := fileIdx[d.Subject.Filename]
		if !ok {
			i = len(l.m.Files)
		}
		return i, d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
	}
	sort.SliceStable(l.diags, func(i, j int) bool {
		ai, af, al, ac := key(l.diags[i])
		bi, bf, bl, bc := key(l.diags[j])
		if ai != bi {
			return ai < bi
		}
		if af != bf {
			return af < bf
		}
		if al != bl {
			return al < bl
		}
		return ac < bc
	})
}

// toRange converts an HCL range to a plan Range.
func toRange(r hcl.Range) Range {
	return Range{Filename: r.Filename, Line: r.Start.Line, Column: r.Start.Column, EndLine: r.End.Line, EndColumn: r.End.Column}
}

func blockRange(b *hcl.Block) Range { return toRange(b.DefRange) }

// labelRange returns the range of a block's first label, or the block's
// definition range.
func labelRange(b *hcl.Block) hcl.Range {
	if len(b.LabelRanges) > 0 {
		return b.LabelRanges[0]
	}
	return b.DefRange
}

func (l *loader) varNames() []string { return sortedKeys(l.varByName) }

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
	},
}

func (l *loader) decodeVariable(b *hcl.Block) {
	name := b.Labels[0]
	if !hclsyntax.ValidIdentifier(name) {
		l.errorf(labelRange(b), "Invalid variable name",
			"The variable name %q is not valid: use letters, digits, underscores and dashes, starting with a letter.", name)
		return
	}
	if prev := l.varByName[name]; prev != nil {
		l.errorf(labelRange(b), "Duplicate variable",
			"A variable named %q was already declared at %s. Variable names must be unique; rename or remove one of them.", name, prev.DeclRange)
		return
	}
	content, diags := b.Body.Content(variableSchema)
	l.addDiags(diags)
	v := &Variable{Name: name, DeclRange: blockRange(b)}
	l.varByName[name] = v
	l.m.Variables = append(l.m.Variables, v)
	// Descriptions and sensitive are literals; defaults may not refer to
	// other variables (there is no evaluation context yet).
	if a := content.Attributes["description"]; a != nil {
		val, d := a.Expr.Value(nil)
		l.addDiags(d)
		if !d.HasErrors() && val.Type() == cty.String && !val.IsNull() {
			v.Description = val.AsString()
		}
	}
	if a := content.Attributes["sensitive"]; a != nil {
		val, d := a.Expr.Value(nil)
		l.addDiags(d)
		if !d.HasErrors() {
			if val.Type() != cty.Bool || val.IsNull() {
				l.typeErr(a, "a bool", val, "Write sensitive = true or sensitive = false.")
			} else {
				v.Sensitive = val.True()
			}
		}
	}
	val := cty.NilVal
	var defaultAttr *hcl.Attribute
	if a := content.Attributes["default"]; a != nil {
		defaultAttr = a
		l.pendingInputs = nil
		dv, d := a.Expr.Value(&hcl.EvalContext{Functions: l.functions()})
		l.addDiags(fixFuncDiags(d))
		if !d.HasErrors() && dv.IsWhollyKnown() {
			val = dv
			uv, _ := dv.UnmarkDeep()
			l.recordRedaction(a.Expr.Range(), uv, hasMark(dv, inputMark))
		} else {
			l.recordRedaction(a.Expr.Range(), cty.NilVal, false)
		}
	}
	override, has := l.cfg.vars[name]
	if !has {
		override, has = l.cfg.lookupEnv("MAILMIG_VAR_" + name)
	}
	if has {
		ov, err := convertOverride(override, val)
		if err != nil {
			rng := b.DefRange
			if defaultAttr != nil {
				rng = defaultAttr.Expr.Range()
			}
			l.errorf(rng, "Invalid variable value",
				"The value given for variable %q (by -var or MAILMIG_VAR_%s) %v.", name, name, err)
		} else {
			// -var and MAILMIG_VAR_ values come from outside the plan,
			// like env(): no diagnostic shows them.
			val = ov.Mark(inputMark)
			l.pendingInputs = appendStringLeaves(nil, ov)
			l.recordRedaction(b.DefRange, ov, true)
		}
	}
	if val == cty.NilVal {
		if defaultAttr == nil {
			l.errorf(labelRange(b), "Missing variable value",
				"The variable %q has no default and no value was given. Set it with MAILMIG_VAR_%s=... in the environment, or add a default to the block.",
				name, name)
		}
		val = cty.DynamicVal
	} else {
		uv, _ := val.UnmarkDeep()
		v.Value = goValue(uv)
		if v.Sensitive {
			if s, ok := v.Value.(string); ok {
				v.Value = NewSecret(s)
			} else {
				v.Value = NewSecret(fmt.Sprint(v.Value))
			}
		}
	}
	if v.Sensitive && val.IsKnown() {
		// The mark travels through templates and functions, so eval can
		// tell when a secret would land in a plain attribute.
		val = val.Mark(sensitiveMark)
	}
	l.varVals = append(l.varVals, varVal{name: name, val: val})
}

// convertOverride converts a string given on the command line or in the
// environment to the type of the variable's default.
func convertOverride(s string, def cty.Value) (cty.Value, error) {
	if def == cty.NilVal || def.Type() == cty.String {
		return cty.StringVal(s), nil
	}
	switch def.Type() {
	case cty.Number:
		v, err := cty.ParseNumberVal(strings.TrimSpace(s))
		if err != nil {
			return cty.NilVal, fmt.Errorf("is not a number, like the default")
		}
		return v, nil
	case cty.Bool:
		switch strings.TrimSpace(s) {
		case "true":
			return cty.True, nil
		case "false":
			return cty.False, nil
		}
		return cty.NilVal, fmt.Errorf("is not true or false, like the default")
	}
	if def.Type().IsTupleType() || def.Type().IsListType() {
		var elems []cty.Value
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				elems = append(elems, cty.StringVal(p))
			}
		}
		if len(elems) == 0 {
			return cty.ListValEmpty(cty.String), nil
		}
		return cty.ListVal(elems), nil
	}
	return cty.NilVal, fmt.Errorf("cannot be given as a string for a default of this type")
}

// goValue converts a cty value to plain Go values.
func goValue(v cty.Value) any {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString()
	case t == cty.Bool:
		return v.True()
	case t == cty.Number:
		bf := v.AsBigFloat()
		if i, acc := bf.Int64(); acc == 0 && bf.IsInt() {
			return i
		}
		f, _ := bf.Float64()
		return f
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, goValue(e))
		}
		return out
	case t.IsObjectType() || t.IsMapType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = goValue(e)
		}
		return out
	}
	return nil
}

var stateSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "path"}, {Name: "postgres"}, {Name: "password_ref"}, {Name: "outage_wait"}}}
var routesSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "sqlite"}, {Name: "postgres"}, {Name: "password_ref"},
	{Name: "lease"}, {Name: "barrier_timeout"}}}

// singleton reports duplicates of a block that may appear once and returns
// the first.
func (l *loader) singleton(blocks []*hcl.Block, what string) *hcl.Block {
	if len(blocks) == 0 {
		return nil
	}
	for _, b := range blocks[1:] {
		l.errorf(b.DefRange, "Duplicate "+what+" block",
			"A plan may have only one %s block; the first is at %s. Merge the two blocks.", what, toRange(blocks[0].DefRange))
	}
	return blocks[0]
}

func (l *loader) decodeState(blocks []*hcl.Block) {
	l.m.State.Path = l.resolvePath("state")
	l.m.State.OutageWait = DefaultOutageWait
	b := l.singleton(blocks, "state")
	if b == nil {
		return
	}
	l.m.State.DeclRange = blockRange(b)
	content, diags := b.Body.Content(stateSchema)
	l.addDiags(diags)
	if p, attr, ok := l.attrString(content.Attributes, "path"); ok {
		if strings.TrimSpace(p) == "" {
			l.errorf(attr.Expr.Range(), "Empty state path", "The state path must name a directory, for example path = \"state/\".")
		} else {
			l.m.State.Path = l.resolvePath(p)
		}
	}
	// With postgres, the journal, its snapshot and the apply lock live
	// in the database; path keeps what stays on the machine that does the
	// copying (the accounts' archives and logs).
	l.m.State.Postgres = l.decodePostgres(content.Attributes, "state")
	// How long an apply waits for a PostgreSQL (state or routes) that
	// went away; 0 stops at once.
	if d, ok := l.attrDuration(content.Attributes, "outage_wait"); ok {
		l.m.State.OutageWait = d // attrDuration refuses negative ones
	}
}

func (l *loader) decodeRoutes(blocks []*hcl.Block) {
	l.m.Routes.SQLite = filepath.Join(l.m.State.Path, "routes.db")
	l.m.Routes.Lease, l.m.Routes.BarrierTimeout = DefaultRouteLease, DefaultBarrierTimeout
	b := l.singleton(blocks, "routes")
	if b == nil {
		return
	}
	l.m.Routes.DeclRange = blockRange(b)
	content, diags := b.Body.Content(routesSchema)
	l.addDiags(diags)
	if p, attr, ok := l.attrString(content.Attributes, "sqlite"); ok {
		if strings.TrimSpace(p) == "" {
			l.errorf(attr.Expr.Range(), "Empty routes path", "The routes sqlite attribute must name a file, for example sqlite = \"state/routes.db\".")
		} else {
			l.m.Routes.SQLite = l.resolvePath(p)
		}
	}
	l.m.Routes.Postgres = l.decodePostgres(content.Attributes, "routes")
	if pg := content.Attributes["postgres"]; pg != nil && content.Attributes["sqlite"] != nil {
		l.errorf(pg.Expr.Range(), "Two route tables",
			"The routes block names both a SQLite file and a PostgreSQL database. Keep one: postgres for a fleet of proxies, sqlite for one machine.")
	}
	for _, a := range []struct {
		name string
		dst  *time.Duration
	}{{"lease", &l.m.Routes.Lease}, {"barrier_timeout", &l.m.Routes.BarrierTimeout}} {
		if d, ok := l.attrDuration(content.Attributes, a.name); ok {
			if d < time.Second {
				l.errorf(content.Attributes[a.name].Expr.Range(), "Duration too short",
					"The routes %s must be at least 1s; proxies heartbeat several times per lease.", a.name)
				continue
			}
			*a.dst = d
		}
	}
	if (content.Attributes["lease"] != nil || content.Attributes["barrier_timeout"] != nil) && l.m.Routes.Postgres == nil {
		a := content.Attributes["lease"]
		if a == nil {
			a = content.Attributes["barrier_timeout"]
		}
		l.warnf(a.Expr.Range(), "Setting without effect",
			"lease and barrier_timeout apply to a route table in PostgreSQL only; this plan keeps its routes in SQLite, where the cut-over waits a fixed settle delay.")
	}
}

// decodePostgres reads the postgres and password_ref attributes of a state
// or routes block; nil when postgres is absent.
func (l *loader) decodePostgres(attrs hcl.Attributes, block string) *Postgres {
	ref := attrs["password_ref"]
	dsn, attr, ok := l.attrString(attrs, "postgres")
	if !ok {
		if ref != nil && attr == nil {
			l.errorf(ref.Expr.Range(), "Password without a database",
				"password_ref in the %s block is the password of its postgres database; add postgres = \"postgres://USER@HOST:PORT/DB\" or remove password_ref.", block)
		}
		return nil
	}
	rng := attr.Expr.Range()
	pg := &Postgres{DSN: strings.TrimSpace(dsn), Range: toRange(rng)}
	hasPassword, err := checkPostgresDSN(pg.DSN)
	if err != nil {
		l.errorf(rng, "Invalid PostgreSQL connection string",
			"The %s block's postgres value is not a connection string: %v. Write a URL such as \"postgres://mailmig@db.example.net:5432/mailmig\" or key=value pairs such as \"host=db.example.net dbname=mailmig user=mailmig\", and give the password with password_ref.", block, err)
		return nil
	}
	if ref != nil {
		if hasPassword {
			l.errorf(ref.Expr.Range(), "Two passwords",
				"The %s block's postgres URL already carries a password and password_ref names another. Remove the password from the URL.", block)
		}
		if s, rattr, ok := l.attrString(attrs, "password_ref"); ok {
			pg.PasswordRef = s
			pg.Password, _ = l.resolvePasswordRef(s, rattr.Expr.Range())
		}
	} else if hasPassword {
		l.warnf(rng, "Password in the plan",
			"The %s block's postgres URL carries a password, which ends up in version control with the plan. Move it to password_ref = \"env:NAME\" or \"file:PATH\".", block)
	}
	return pg
}

// checkPostgresDSN checks the shape of a PostgreSQL connection string
// without connecting (libpq's URL and key=value forms) and reports whether
// it carries a password.
func checkPostgresDSN(dsn string) (hasPassword bool, err error) {
	if dsn == "" {
		return false, errors.New("it is empty")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false, errors.New("the URL does not parse")
		}
		if u.Host == "" {
			return false, errors.New("the URL names no host")
		}
		if strings.Trim(u.Path, "/") == "" {
			return false, errors.New("the URL names no database")
		}
		_, pw := u.User.Password()
		return pw || u.Query().Has("password"), nil
	}
	if strings.Contains(dsn, "://") {
		return false, errors.New("a URL must start with postgres:// or postgresql://")
	}
	for _, f := range strings.Fields(dsn) {
		k, _, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return false, fmt.Errorf("%q is not a key=value pair", f)
		}
		if k == "password" {
			hasPassword = true
		}
	}
	return hasPassword, nil
}
