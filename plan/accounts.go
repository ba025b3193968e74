package plan

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

var accountsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "from", Required: true},
		{Name: "to", Required: true},
		{Name: "list", Required: true},
		{Name: "data"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "account", LabelNames: []string{"address"}}},
}

var accountOverrideSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "source_login"},
		{Name: "target_login"},
		{Name: "password"},
		{Name: "password_ref"},
		{Name: "data"},
		{Name: "from"},
		{Name: "to"},
	},
}

// checkAddress reports why s is not a bare e-mail address, or nil.
func checkAddress(s string) error {
	if s == "" {
		return fmt.Errorf("it is empty")
	}
	if len(s) > 64+1+maxHostLen {
		return fmt.Errorf("it is %d characters long; an address has at most %d", len(s), 64+1+maxHostLen)
	}
	if strings.ContainsAny(s, " \t\r\n<>(),;:\"[]\\") {
		return fmt.Errorf("it contains a space or one of <>(),;:\"[]\\")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return fmt.Errorf("it has no @domain part")
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return fmt.Errorf("the part before @ is empty")
	}
	if strings.Contains(local, "@") {
		return fmt.Errorf("it contains more than one @")
	}
	if len(local) > 64 {
		return fmt.Errorf("the part before @ is longer than 64 characters")
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return fmt.Errorf("the part before @ has a misplaced dot")
	}
	if domain == "" {
		return fmt.Errorf("the domain after @ is empty")
	}
	if len(domain) > 253 {
		return fmt.Errorf("the domain is longer than 253 characters")
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" {
			return fmt.Errorf("the domain %q has an empty label", domain)
		}
		if len(label) > maxLabelLen {
			return fmt.Errorf("the domain %q has a label longer than %d characters (RFC 1035)", domain, maxLabelLen)
		}
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("the domain %q has a label starting or ending with a dash", domain)
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127) {
				return fmt.Errorf("the domain %q contains %q", domain, r)
			}
		}
	}
	return nil
}

// accountEntry is one element of an accounts list before flattening.
type accountEntry struct {
	address, sourceLogin, targetLogin, passwordRef string
	rng                                            hcl.Range
}

func (l *loader) decodeAccountGroup(b *hcl.Block) {
	name := b.Labels[0]
	if !hclsyntax.ValidIdentifier(name) {
		l.errorf(labelRange(b), "Invalid accounts name",
			"The accounts block name %q is not valid: use letters, digits, underscores and dashes, starting with a letter, so that waves can refer to it as accounts.<name>.", name)
		return
	}
	if prev := l.groupByName[name]; prev != nil {
		l.errorf(labelRange(b), "Duplicate accounts block",
			"An accounts block named %q was already declared at %s. Names must be unique; rename one of them or merge the lists.", name, prev.DeclRange)
		return
	}
	g := &AccountGroup{Name: name, DeclRange: blockRange(b)}
	l.groupByName[name] = g
	l.m.AccountGroups = append(l.m.AccountGroups, g)

	content, diags := b.Body.Content(accountsSchema)
	l.addDiags(diags)

	from, fromOK := l.backendRef(content.Attributes["from"])
	to, toOK := l.backendRef(content.Attributes["to"])
	g.From, g.To = from, to
	if fromOK && toOK && from == to {
		l.errorf(content.Attributes["to"].Expr.Range(), "Same source and target",
			"The accounts block %q moves accounts from backend %q to itself. Set to = backend.<target> to the backend the accounts move onto.", name, from)
	}
	if a := content.Attributes["data"]; a != nil {
		g.Data = l.dataKinds(a, from, to)
	} else {
		g.Data = l.defaultData(from, to)
	}

	// Override blocks by address.
	overrides := map[string]*hcl.Block{}
	for _, ob := range content.Blocks {
		addr := ob.Labels[0]
		key := normAddress(addr)
		if prev := overrides[key]; prev != nil {
			l.errorf(labelRange(ob), "Duplicate account override",
				"The account %q already has an override block at %s. Merge the two blocks.", addr, toRange(prev.DefRange))
			continue
		}
		overrides[key] = ob
	}

	listed := map[string]bool{}
	add := func(e *accountEntry) {
		if err := checkAddress(e.address); err != nil {
			l.errorf(e.rng, "Invalid address",
				"The account %s is not an e-mail address: %v. Write each account as a bare address such as \"alice@example.org\".", shortQuote(e.address), err)
			return
		}
		key := normAddress(e.address)
		if prev := l.acctByKey[key]; prev != nil {
			where := ""
			if prev.Group != name {
				where = fmt.Sprintf(" in accounts %q", prev.Group)
			}
			l.errorf(e.rng, "Duplicate account",
				"The account %q is already listed%s at %s. Each account may appear only once in a plan; remove one of the entries.", e.address, where, prev.DeclRange)
			return
		}
		acct := &Account{
			Address:     e.address,
			Group:       name,
			From:        from,
			To:          to,
			SourceLogin: e.sourceLogin,
			TargetLogin: e.targetLogin,
			Data:        g.Data,
			DeclRange:   toRange(e.rng),
		}
		if acct.SourceLogin == "" {
			acct.SourceLogin = e.address
		}
		if acct.TargetLogin == "" {
			acct.TargetLogin = e.address
		}
		if e.passwordRef != "" {
			acct.PasswordRef = e.passwordRef
			acct.Password, _ = l.resolvePasswordRef(e.passwordRef, e.rng)
		}
		if ob := overrides[key]; ob != nil {
			listed[key] = true
			l.applyOverride(acct, ob)
		}
		l.acctByKey[key] = acct
		g.Accounts = append(g.Accounts, acct)
		l.m.Accounts = append(l.m.Accounts, acct)
	}
	if a := content.Attributes["list"]; a != nil {
		if n := l.accountEntries(a, g, add); n == 0 && isEmptyListExpr(a.Expr) {
			l.warnf(a.Expr.Range(), "Empty accounts list",
				"The accounts block %q lists no accounts. Add addresses to list, or remove the block.", name)
		}
	}
	for _, ob := range content.Blocks {
		addr := ob.Labels[0]
		if !listed[normAddress(addr)] && overrides[normAddress(addr)] == ob {
			if err := checkAddress(addr); err != nil {
				l.errorf(labelRange(ob), "Invalid address",
					"The account override %q is not an e-mail address: %v.", addr, err)
				continue
			}
			l.errorf(labelRange(ob), "Override for an unlisted account",
				"The account %q has an override block but is not in the list of accounts %q. Add it to list, or fix the address in the block label.", addr, name)
		}
	}
}

// backendRef decodes from/to = backend.NAME and checks that the backend
// exists.
func (l *loader) backendRef(attr *hcl.Attribute) (string, bool) {
	if attr == nil {
		return "", false
	}
	name, rng := l.refName(attr.Expr, "backend", attr.Name, "backend.legacy")
	if name == "" {
		return "", false
	}
	if l.backendByName[name] == nil {
		l.errorf(rng, "Undefined backend",
			"No backend named %q is declared.%s Declare it with a backend %q { ... } block, or fix the reference.",
			name, didYouMean(name, l.backendNames()), name)
		return name, false
	}
	return name, true
}

// defaultData is every data kind that both backends can hold.
func (l *loader) defaultData(from, to string) []DataKind {
	fb, tb := l.backendByName[from], l.backendByName[to]
	var out []DataKind
	for _, k := range DataKinds {
		if fb != nil && !fb.Provides(k) {
			continue
		}
		if tb != nil && !tb.Provides(k) {
			continue
		}
		out = append(out, k)
	}
	return out
}

func (l *loader) dataKinds(attr *hcl.Attribute, from, to string) []DataKind {
	list, _, ok := l.attrStringList(hcl.Attributes{attr.Name: attr}, attr.Name)
	if !ok {
		return l.defaultData(from, to)
	}
	var out []DataKind
	seen := map[DataKind]bool{}
	names := make([]string, len(DataKinds))
	for i, k := range DataKinds {
		names[i] = string(k)
	}
	for _, s := range list {
		k := DataKind(s)
		valid := false
		for _, dk := range DataKinds {
			valid = valid || dk == k
		}
		if !valid {
			l.errorf(attr.Expr.Range(), "Invalid data kind",
				"The data kind %q is not known.%s The kinds are mail, sieve, calendars, contacts and files.", s, didYouMean(s, names))
			continue
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if fb := l.backendByName[from]; fb != nil && !fb.Provides(k) {
			l.errorf(attr.Expr.Range(), "Data kind not available at the source",
				"The backend %q has no endpoint that holds %s, so it cannot be migrated from there. Add an endpoint for it (for example %s) or remove %q from data.",
				from, k, endpointHint(k), s)
			continue
		}
		if tb := l.backendByName[to]; tb != nil && !tb.Provides(k) {
			l.errorf(attr.Expr.Range(), "Data kind not available at the target",
				"The backend %q has no endpoint that can receive %s. Add an endpoint for it (for example %s) or remove %q from data.",
				to, k, endpointHint(k), s)
			continue
		}
		out = append(out, k)
	}
	return out
}

func endpointHint(k DataKind) string {
	switch k {
	case DataMail:
		return "imap or jmap"
	case DataSieve:
		return "managesieve or jmap"
	case DataCalendars:
		return "caldav or jmap"
	case DataContacts:
		return "carddav or jmap"
	}
	return "webdav or jmap"
}

// accountEntries decodes an accounts list: strings, objects with the CSV
// columns, lists of those (csv() results), in any combination, and calls
// yield for each entry. It returns the number of entries.
//
// list = csv("file"), or csv("file") as an element of a literal list, is
// streamed from the file straight into entries: a million accounts held
// as cty objects took about 70 times the file's size.
func (l *loader) accountEntries(attr *hcl.Attribute, g *AccountGroup, yield func(*accountEntry)) int {
	n := 0
	count := func(e *accountEntry) { n++; yield(e) }
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		// Not a literal list: a function call or a variable.
		if l.streamCSV(attr.Expr, g, count) {
			return n
		}
		v := l.eval(attr.Expr)
		if v == cty.NilVal {
			return 0
		}
		if !(v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType()) {
			l.typeErr(attr, "a list of addresses", v, "Write list = [\"alice@example.org\", ...] or list = csv(\"accounts.csv\").")
			return 0
		}
		l.entriesFromValue(v, attr.Expr.Range(), g, count)
		return n
	}
	for _, e := range exprs {
		if l.streamCSV(e, g, count) {
			continue
		}
		v := l.eval(e)
		if v == cty.NilVal {
			continue
		}
		l.entriesFromValue(v, e.Range(), g, count)
	}
	return n
}

// streamCSV handles expr when it is a call csv(path): it reads the file and
// yields its rows, and reports true. Any other expression is left to eval.
func (l *loader) streamCSV(expr hcl.Expression, g *AccountGroup, yield func(*accountEntry)) bool {
	call, ok := expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "csv" || len(call.Args) != 1 || call.ExpandFinal {
		return false
	}
	pv := l.eval(call.Args[0])
	if pv == cty.NilVal {
		return true
	}
	if pv.Type() != cty.String {
		// Let HCL word the type error as it does for any call.
		return false
	}
	path := l.resolvePath(pv.AsString())
	var e accountEntry
	err := l.loadCSV(path, func(r *csvRow) {
		e = accountEntry{
			address:     r.fields[0],
			sourceLogin: r.fields[1],
			targetLogin: r.fields[2],
			passwordRef: r.fields[3],
			rng:         l.csvRowRange(path, r.line),
		}
		if g.CSVFile == "" {
			g.CSVFile = path
		}
		yield(&e)
	})
	if err != nil {
		fe := err.(*funcError)
		rng := call.Range()
		l.errorf(rng, fe.summary, "%s", fe.detail)
	}
	return true
}

func (l *loader) entriesFromValue(v cty.Value, rng hcl.Range, g *AccountGroup, yield func(*accountEntry)) {
	t := v.Type()
	switch {
	case t == cty.String:
		yield(&accountEntry{address: strings.TrimSpace(v.AsString()), rng: rng})
		return
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() {
				continue
			}
			l.entriesFromValue(e, rng, g, yield)
		}
		return
	case t.IsObjectType() || t.IsMapType():
		get := func(k string) string {
			if t.IsObjectType() && !t.HasAttribute(k) {
				return ""
			}
			if t.IsMapType() && !v.HasIndex(cty.StringVal(k)).True() {
				return ""
			}
			var x cty.Value
			if t.IsObjectType() {
				x = v.GetAttr(k)
			} else {
				x = v.Index(cty.StringVal(k))
			}
			if x.IsNull() || x.Type() != cty.String {
				return ""
			}
			return x.AsString()
		}
		e := accountEntry{
			address:     strings.TrimSpace(get("address")),
			sourceLogin: get("source_login"),
			targetLogin: get("target_login"),
			passwordRef: get("password_ref"),
			rng:         rng,
		}
		if file := get("file"); file != "" && t.IsObjectType() && t.HasAttribute("row") {
			if rv := v.GetAttr("row"); rv.Type() == cty.Number && !rv.IsNull() {
				row, _ := rv.AsBigFloat().Int64()
				e.rng = l.csvRowRange(file, int(row))
				if g.CSVFile == "" {
					g.CSVFile = file
				}
			}
		}
		if e.address == "" {
			l.errorf(e.rng, "Missing address",
				"An account object needs an address attribute, for example { address = \"alice@example.org\" }.")
			return
		}
		yield(&e)
		return
	}
	l.errorf(rng, "Incorrect account value",
		"An account must be an address string, an object with address, source_login, target_login and password_ref, or the result of csv(\"file\"); this value is %s.", typeName(t))
}

// resolvePasswordRef resolves "env:NAME" or "file:PATH".
func (l *loader) resolvePasswordRef(ref string, rng hcl.Range) (Secret, bool) {
	kind, arg, ok := strings.Cut(ref, ":")
	if !ok || arg == "" {
		l.errorf(rng, "Invalid password reference",
			"The password reference %q is not valid. Write env:NAME to read the environment variable NAME, or file:PATH to read a file (one trailing newline is removed).", ref)
		return Secret{}, false
	}
	switch kind {
	case "env":
		v, found := l.cfg.lookupEnv(arg)
		if l.cfg.deferSecrets && (!found || v == "") {
			state := "is not set"
			if found {
				state = "is set but empty"
			}
			l.warnDeferred(rng, arg, state)
			return deferredSecret(), true
		}
		if !found {
			l.errorf(rng, "Unset environment variable",
				"The environment variable %s, named by the password reference %q, is not set. Export it before running mailmig.", arg, ref)
			return Secret{}, false
		}
		if v == "" {
			l.errorf(rng, "Empty environment variable",
				"The environment variable %s, named by the password reference %q, is set but empty. Give it the account's password.", arg, ref)
			return Secret{}, false
		}
		return NewSecret(v), true
	case "file":
		p := l.resolvePath(arg)
		b, err := readLimited(p, MaxFileSize)
		if err != nil {
			l.errorf(rng, "Unreadable file",
				"The password file %s cannot be read: %v. Paths are relative to the plan's directory.", p, unwrapPathErr(err))
			return Secret{}, false
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		return NewSecret(s), true
	}
	l.errorf(rng, "Invalid password reference",
		"The password reference %q uses the unknown kind %q. Write env:NAME or file:PATH.", ref, kind)
	return Secret{}, false
}

func (l *loader) applyOverride(acct *Account, ob *hcl.Block) {
	content, diags := ob.Body.Content(accountOverrideSchema)
	l.addDiags(diags)
	if s, _, ok := l.attrString(content.Attributes, "source_login"); ok && s != "" {
		acct.SourceLogin = s
	}
	if s, _, ok := l.attrString(content.Attributes, "target_login"); ok && s != "" {
		acct.TargetLogin = s
	}
	if a := content.Attributes["from"]; a != nil {
		if name, ok := l.backendRef(a); ok {
			acct.From = name
		}
	}
	if a := content.Attributes["to"]; a != nil {
		if name, ok := l.backendRef(a); ok {
			acct.To = name
		}
	}
	pw, pwr := content.Attributes["password"], content.Attributes["password_ref"]
	if pw != nil && pwr != nil {
		l.errorf(pwr.NameRange, "Conflicting password settings",
			"The account %q sets both password and password_ref. Keep one of them.", acct.Address)
	}
	if s, _, ok := l.attrSecret(content.Attributes, "password"); ok {
		acct.PasswordRef, acct.Password = "", s
	}
	if s, attr, ok := l.attrString(content.Attributes, "password_ref"); ok && pw == nil {
		acct.PasswordRef = s
		acct.Password, _ = l.resolvePasswordRef(s, attr.Expr.Range())
	}
	if a := content.Attributes["data"]; a != nil {
		acct.Data = l.dataKinds(a, acct.From, acct.To)
	}
}

// csvColumns are the columns csv() understands; address is required.
var csvColumns = []string{"address", "source_login", "target_login", "password_ref"}

var csvRowType = cty.Object(map[string]cty.Type{
	"address":      cty.String,
	"source_login": cty.String,
	"target_login": cty.String,
	"password_ref": cty.String,
	"file":         cty.String,
	"row":          cty.Number,
})

func (l *loader) csvRowRange(file string, row int) hcl.Range {
	end := 1
	widths, ok := l.lineWidths[file]
	if !ok {
		widths = lineWidths(l.m.Sources[file])
		l.lineWidths[file] = widths
	}
	if row >= 1 && row <= len(widths) {
		end = int(widths[row-1]) + 1
	}
	return hcl.Range{
		Filename: file,
		Start:    hcl.Pos{Line: row, Column: 1},
		End:      hcl.Pos{Line: row, Column: end},
	}
}

// lineWidths returns the width in characters of each line of src, without
// its line ending. It scans in place: splitting a CSV file of a million
// rows into strings would copy the whole file.
func lineWidths(src []byte) []int32 {
	if src == nil {
		return nil
	}
	out := make([]int32, 0, bytes.Count(src, []byte{'\n'})+1)
	for {
		i := bytes.IndexByte(src, '\n')
		line := src
		if i >= 0 {
			line = src[:i]
		}
		out = append(out, int32(utf8.RuneCount(bytes.TrimRight(line, "\r"))))
		if i < 0 {
			return out
		}
		src = src[i+1:]
	}
}

// loadCSV reads an accounts file once per load and streams its valid rows
// to yield (a second csv() of the same file reads the cached bytes again).
// It reports false when the file cannot be read; the problem is in err.
func (l *loader) loadCSV(path string, yield func(*csvRow)) error {
	src, ok := l.csvSrc[path]
	if !ok {
		var err error
		src, err = readLimited(path, MaxCSVFileSize)
		if err != nil {
			return &funcError{
				summary: "Unreadable file",
				detail:  fmt.Sprintf("The accounts file %s cannot be read: %v. Paths are relative to the plan's directory.", path, unwrapPathErr(err)),
			}
		}
		l.csvSrc[path] = src
		// Rows of an accounts file are shown in snippets; a file whose
		// first row is not an accounts header may be anything (a secret
		// read by mistake) and is not.
		l.m.Sources[path] = src
		if !parseAccountsCSV(path, src, l, yield) {
			delete(l.m.Sources, path)
			delete(l.lineWidths, path)
		}
		return nil
	}
	// Diagnostics were reported by the first read.
	var quiet loader = *l
	quiet.diags = nil
	parseAccountsCSV(path, src, &quiet, yield)
	return nil
}

// readCSV reads an accounts CSV file as a cty list of objects; see
// csvFunc. It serves csv() used inside an expression; list = csv("file")
// itself is streamed by accountEntries without building cty values.
func (l *loader) readCSV(path string) (cty.Value, error) {
	var vals []cty.Value
	err := l.loadCSV(path, func(r *csvRow) {
		// Marked as inputs: used outside a list of accounts (a host
		// taken from a row), they are not shown in diagnostics.
		vals = append(vals, cty.ObjectVal(map[string]cty.Value{
			"address":      cty.StringVal(r.fields[0]).Mark(inputMark),
			"source_login": cty.StringVal(r.fields[1]).Mark(inputMark),
			"target_login": cty.StringVal(r.fields[2]).Mark(inputMark),
			"password_ref": cty.StringVal(r.fields[3]).Mark(inputMark),
			"file":         cty.StringVal(path),
			"row":          cty.NumberIntVal(int64(r.line)),
		}))
	})
	if err != nil {
		return cty.NilVal, err
	}
	if len(vals) == 0 {
		return cty.ListValEmpty(csvRowType), nil
	}
	return cty.ListVal(vals), nil
}

// isEmptyListExpr reports whether e is the literal [].
func isEmptyListExpr(e hcl.Expression) bool {
	exprs, d := hcl.ExprList(e)
	return !d.HasErrors() && len(exprs) == 0
}
