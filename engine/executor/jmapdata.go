package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
	"github.com/mailmig/mailmig/vandelay/targets/jmapdata"
)

// The data kinds beside mail pick their transport per kind, at the step,
// from the target's JMAP session (the one the mail export opened): a kind
// whose standard capability the session offers moves over JMAP ("sieve
// over jmap": RFC 9661 SieveScript, FileNode, RFC 8621 Identity and
// VacationResponse); else over the dedicated endpoint the plan gives the
// target (managesieve, webdav, caldav, carddav); else it stays at the
// source, with a warning in the log. The plan cannot know a session's
// capabilities without asking it, so plan output says both ("sieve over
// jmap (urn:ietf:params:jmap:sieve) or managesieve"), and the step's log
// says which one was used.
//
// Identities and the vacation response are no kind of the plan's data:
// they ride with the mail, over JMAP only (a DAV or ManageSieve target
// has no such objects; onto Cyrus the vacation travels inside the Sieve
// script).
//
// From a JMAP mail source (a backend whose only mail endpoint is jmap),
// the import reads every kind the source's session offers over JMAP too
// (vandelay.ImportJMAPData), each with its own /changes cursor.

// jmapOutcome is what one kind's export or verify over JMAP found, in
// the executor's terms.
type jmapOutcome struct {
	changes    int64
	conflicts  []string
	refused    map[string]string // export: name → the target's text; logged
	missing    []string          // verify: no re-run brings them; logged, not counted
	mismatches []state.Mismatch  // verify: counted
}

// jmapEnv is what a kind's function gets.
type jmapEnv struct {
	a         *archive.Archive
	c         *jmap.Client
	accountID string
	acct      *plan.Account
	m         *plan.Migration
}

// jmapKind is one data kind that can move over a JMAP target's session.
// Adding a kind is one entry (contacts and calendars use the DAV
// functions' result types through davExport and davVerify).
type jmapKind struct {
	// name is the log's name of the kind, and vandelay.JMAPKind* where
	// the import reads it from a JMAP source.
	name string
	// data is the plan's data kind the account must name; "" for the
	// kinds that ride with mail.
	data plan.DataKind
	// cap is the session capability that carries the kind.
	cap    string
	export func(ctx context.Context, e *jmapEnv) (jmapOutcome, error)
	// verify is nil for a kind its export compares whole on every run.
	verify func(ctx context.Context, e *jmapEnv) (jmapOutcome, error)
	// skip, when set, says why the kind does not move over JMAP for this
	// account even though the session offers it ("" moves).
	skip func(ctx context.Context, e *jmapEnv) string
}

var jmapKinds = []jmapKind{
	{name: vandelay.JMAPKindSieve, data: plan.DataSieve, cap: jmap.CapSieve, export: exportSieveJMAP, verify: verifySieveJMAP},
	{name: vandelay.JMAPKindIdentity, cap: jmap.CapSubmission, export: exportIdentitiesJMAP, verify: verifyIdentitiesJMAP},
	{name: vandelay.JMAPKindVacation, cap: jmap.CapVacationResponse, export: exportVacationJMAP, skip: vacationInScript},
	{name: vandelay.JMAPKindFiles, data: plan.DataFiles, cap: jmap.CapFileNode, export: exportFilesJMAP, verify: verifyFilesJMAP},
	{name: "contacts", data: plan.DataContacts, cap: vandelay.CapContacts,
		export: davExport(vandelay.ExportContactsJMAP), verify: davVerify("contacts", vandelay.VerifyContactsJMAP)},
	{name: "calendars", data: plan.DataCalendars, cap: vandelay.CapCalendars,
		export: davExport(vandelay.ExportCalendarsJMAP), verify: davVerify("calendars", vandelay.VerifyCalendarsJMAP)},
}

// davCaps names the JMAP capability of each DAV kind.
var davCaps = map[plan.DataKind]string{
	plan.DataContacts:  vandelay.CapContacts,
	plan.DataCalendars: vandelay.CapCalendars,
}

// wants reports whether the account's data names k (kinds that ride with
// mail always move).
func (k *jmapKind) wants(acct *plan.Account) bool {
	if k.data == "" {
		return true
	}
	for _, d := range acct.Data {
		if d == k.data {
			return true
		}
	}
	return false
}

func exportSieveJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	t, err := jmapdata.NewSieveTarget(e.c, e.accountID)
	if err != nil {
		return jmapOutcome{}, err
	}
	res, err := vandelay.ExportSieve(ctx, e.a, t, nil)
	if res == nil {
		return jmapOutcome{}, err
	}
	return jmapOutcome{changes: int64(res.Changes()), conflicts: res.Conflicts, refused: res.Refused}, err
}

func verifySieveJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	t, err := jmapdata.NewSieveTarget(e.c, e.accountID)
	if err != nil {
		return jmapOutcome{}, err
	}
	rep, err := vandelay.VerifySieve(ctx, e.a, t)
	if err != nil {
		return jmapOutcome{}, err
	}
	out := jmapOutcome{conflicts: rep.Conflicts}
	for _, mm := range rep.Mismatches {
		if mm.Kind == "missing" {
			out.missing = append(out.missing, mm.Name)
			continue
		}
		out.mismatches = append(out.mismatches, state.Mismatch{Kind: "sieve-" + mm.Kind, Item: mm.Name})
	}
	return out, nil
}

func exportIdentitiesJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	res, err := vandelay.ExportIdentitiesJMAP(ctx, e.a, e.c, e.accountID, nil)
	if res == nil {
		return jmapOutcome{}, err
	}
	return jmapOutcome{changes: int64(res.Changes()), conflicts: res.Conflicts, refused: res.Refused}, err
}

func verifyIdentitiesJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	rep, err := vandelay.VerifyIdentitiesJMAP(ctx, e.a, e.c, e.accountID)
	if err != nil {
		return jmapOutcome{}, err
	}
	out := jmapOutcome{conflicts: rep.Conflicts, missing: rep.Missing}
	for _, email := range rep.Mismatches {
		out.mismatches = append(out.mismatches, state.Mismatch{Kind: "identity-content", Item: email})
	}
	return out, nil
}

func exportVacationJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	res, err := vandelay.ExportVacationJMAP(ctx, e.a, e.c, e.accountID, nil)
	if err != nil {
		return jmapOutcome{}, err
	}
	out := jmapOutcome{}
	if res.Set {
		out.changes = 1
	}
	if res.Conflict {
		out.conflicts = []string{"vacation response"}
	}
	return out, nil
}

// vacationInScript keeps the VacationResponse export off when the
// archived response was read from a Sieve script that moves to the
// target itself: the script carries the vacation action byte for byte,
// and a server that keeps the two apart would answer a sender twice.
func vacationInScript(ctx context.Context, e *jmapEnv) string {
	v, err := e.a.Vacation(ctx)
	if err != nil || v == nil || !strings.HasPrefix(v.SourceRef, "sieve:") {
		return ""
	}
	for _, d := range e.acct.Data {
		if d == plan.DataSieve && MovesSieve(e.m, e.acct) {
			return "the vacation response travels in its Sieve script (" + strings.TrimPrefix(v.SourceRef, "sieve:") + ")"
		}
	}
	return ""
}

func exportFilesJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	t, err := jmapdata.NewFileTarget(e.c, e.accountID)
	if err != nil {
		return jmapOutcome{}, err
	}
	res, err := vandelay.ExportFiles(ctx, e.a, t, nil)
	if res == nil {
		return jmapOutcome{}, err
	}
	return jmapOutcome{changes: int64(res.Changes()), conflicts: res.Conflicts}, err
}

func verifyFilesJMAP(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
	t, err := jmapdata.NewFileTarget(e.c, e.accountID)
	if err != nil {
		return jmapOutcome{}, err
	}
	rep, err := vandelay.VerifyFiles(ctx, e.a, t)
	if err != nil {
		return jmapOutcome{}, err
	}
	out := jmapOutcome{conflicts: rep.Conflicts}
	for _, mm := range rep.Mismatches {
		out.mismatches = append(out.mismatches, state.Mismatch{Kind: "files-" + mm.Kind, Item: mm.Path})
	}
	return out, nil
}

// davExport adapts a JMAP export with the DAV export's signature (the
// contacts and calendars functions) to a table entry.
func davExport(fn func(context.Context, *archive.Archive, *jmap.Client, string, *vandelay.DAVExportOptions) (*vandelay.DAVExportResult, error)) func(context.Context, *jmapEnv) (jmapOutcome, error) {
	return func(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
		res, err := fn(ctx, e.a, e.c, e.accountID, nil)
		if res == nil {
			return jmapOutcome{}, err
		}
		return jmapOutcome{changes: int64(res.Changes()), conflicts: res.Conflicts, refused: res.Refused}, err
	}
}

// davVerify adapts a JMAP verify with the DAV verify's report.
func davVerify(kind string, fn func(context.Context, *archive.Archive, *jmap.Client, string) (*vandelay.DAVVerifyReport, error)) func(context.Context, *jmapEnv) (jmapOutcome, error) {
	return func(ctx context.Context, e *jmapEnv) (jmapOutcome, error) {
		rep, err := fn(ctx, e.a, e.c, e.accountID)
		if err != nil {
			return jmapOutcome{}, err
		}
		out := jmapOutcome{conflicts: rep.Conflicts}
		for _, mm := range rep.Mismatches {
			out.mismatches = append(out.mismatches, state.Mismatch{Kind: kind + "-" + mm.Kind, Mailbox: mm.Collection, Item: mm.Href})
		}
		return out, nil
	}
}

// jmapKindsFor returns the kinds that move over the target's session for
// the account: wanted, offered, not skipped. The others are logged.
func jmapKindsFor(ctx context.Context, e *jmapEnv, log *slog.Logger) []jmapKind {
	var out []jmapKind
	for _, k := range jmapKinds {
		if !k.wants(e.acct) || !e.c.Session().Offers(k.cap) {
			continue
		}
		if k.skip != nil {
			if why := k.skip(ctx, e); why != "" {
				log.Debug("not over jmap", "kind", k.name, "why", why)
				continue
			}
		}
		out = append(out, k)
	}
	return out
}

// exportJMAPData runs the export of every kind the target's session
// takes; the plan kinds it moved are set in via (their dedicated paths are
// skipped). A kind the target turns out not to take (a read-only
// Identity/set) is logged, not an error; refused objects are logged with
// the target's text; conflicts are logged and counted.
func (x *Executor) exportJMAPData(ctx context.Context, acct *plan.Account, a *archive.Archive, t *vandelay.Target, log *slog.Logger, cnt *state.Counts, via map[plan.DataKind]bool) (int64, error) {
	e := &jmapEnv{a: a, c: t.Client, accountID: t.AccountID, acct: acct, m: x.m}
	var n int64
	for _, k := range jmapKindsFor(ctx, e, log) {
		out, err := k.export(ctx, e)
		// A kind the account turns out not to take over JMAP (the
		// session's capability without the account's) is left to its
		// dedicated path: via is set only for a kind that moved.
		if k.data != "" && !errors.Is(err, vandelay.ErrNoCapability) {
			via[k.data] = true
		}
		for name, text := range out.refused {
			log.Warn("refused by the target", "kind", k.name, "item", name, "err", text)
		}
		for _, c := range out.conflicts {
			log.Warn("conflict: the target's own version kept", "kind", k.name, "item", c)
		}
		cnt.Conflicts += int64(len(out.conflicts))
		n += out.changes
		if errors.Is(err, vandelay.ErrNoCapability) {
			log.Warn("not moved: the target does not take it", "kind", k.name, "err", err)
			continue
		}
		if err != nil {
			return n, fmt.Errorf("export %s over jmap to %s: %w", k.name, acct.To, err)
		}
		log.Info("exported over jmap", "kind", k.name, "changes", out.changes)
	}
	return n, nil
}

// verifyJMAPData verifies the kinds exportJMAPData moves; the mismatches
// are appended to named and counted.
func (x *Executor) verifyJMAPData(ctx context.Context, acct *plan.Account, a *archive.Archive, t *vandelay.Target, log *slog.Logger, named *[]state.Mismatch, cnt *state.Counts, via map[plan.DataKind]bool) (int64, error) {
	e := &jmapEnv{a: a, c: t.Client, accountID: t.AccountID, acct: acct, m: x.m}
	var n int64
	for _, k := range jmapKindsFor(ctx, e, log) {
		if k.verify == nil {
			if k.data != "" {
				via[k.data] = true
			}
			continue
		}
		out, err := k.verify(ctx, e)
		if errors.Is(err, vandelay.ErrNoCapability) {
			continue // verified over its dedicated path, as exported
		}
		if k.data != "" {
			via[k.data] = true
		}
		if err != nil {
			return n, fmt.Errorf("verify %s over jmap: %w", k.name, err)
		}
		for _, c := range out.conflicts {
			log.Warn("conflict: the target's own version kept; not counted as a mismatch", "kind", k.name, "item", c)
		}
		cnt.Conflicts += int64(len(out.conflicts))
		for _, m := range out.missing {
			log.Warn("missing at the target (refused by it)", "kind", k.name, "item", m)
		}
		for _, mm := range out.mismatches {
			log.Warn("verify mismatch", "kind", mm.Kind, "item", mm.Item)
		}
		*named = append(*named, out.mismatches...)
		n += int64(len(out.mismatches))
	}
	return n, nil
}

// jmapMailSource reports whether the backend's mail is read over JMAP
// (its only mail endpoint is jmap).
func jmapMailSource(b *plan.Backend) bool {
	if b == nil {
		return false
	}
	for _, k := range sourceKinds {
		if b.Endpoint(k) != nil {
			return k == plan.ProtoJMAP
		}
	}
	return false
}

// jmapDataSource is a mail source that also reads the other kinds over
// its session (vandelay/sources/jmap).
type jmapDataSource interface {
	DataClient(ctx context.Context) (*jmap.Client, string, error)
	Describe() archive.Source
}

// importJMAPData reads, from a JMAP mail source, the kinds its session
// offers that the account moves and no dedicated endpoint of the source
// carries (a backend with managesieve keeps reading Sieve from there):
// identities and the vacation response always, Sieve and files when the
// account's data names them. Changes count as Objects.
func (x *Executor) importJMAPData(ctx context.Context, acct *plan.Account, src any, a *archive.Archive, log *slog.Logger) (int64, error) {
	ds, ok := src.(jmapDataSource)
	if !ok || !jmapMailSource(x.m.Backend(acct.From)) {
		return 0, nil
	}
	b := x.m.Backend(acct.From)
	kinds := []string{vandelay.JMAPKindIdentity}
	if !sieveFrom(b) {
		kinds = append(kinds, vandelay.JMAPKindVacation)
	}
	for _, d := range acct.Data {
		switch {
		case d == plan.DataSieve && !sieveFrom(b):
			kinds = append(kinds, vandelay.JMAPKindSieve)
		case d == plan.DataFiles && b.Endpoint(plan.ProtoWebDAV) == nil:
			kinds = append(kinds, vandelay.JMAPKindFiles)
		}
	}
	c, accountID, err := ds.DataClient(ctx)
	if err != nil {
		return 0, err
	}
	res, err := vandelay.ImportJMAPData(ctx, c, accountID, ds.Describe(), a, &vandelay.JMAPDataOptions{Kinds: kinds})
	if err != nil {
		return 0, fmt.Errorf("import from %s over jmap: %w", acct.From, err)
	}
	log.Info("imported over jmap", "changes", res.Changes(), "unchanged", strings.Join(res.Unchanged, ","), "full", strings.Join(res.Full, ","))
	n := int64(res.Changes())
	// Contacts and calendars the source's session offers, when no DAV
	// endpoint of the source carries them.
	for _, d := range []struct {
		k  plan.DataKind
		fn func(context.Context, *jmap.Client, string, *archive.Archive, *vandelay.ImportOptions) (*vandelay.DAVImportResult, error)
	}{{plan.DataContacts, vandelay.ImportContactsJMAP}, {plan.DataCalendars, vandelay.ImportCalendarsJMAP}} {
		if !MovesDAV(x.m, acct, d.k) || davFrom(b, acct, d.k) {
			continue
		}
		if !c.Session().Offers(davCaps[d.k]) {
			log.Warn("not moved: the source's session does not offer it", "kind", string(d.k), "capability", davCaps[d.k])
			continue
		}
		r, err := d.fn(ctx, c, accountID, a, nil)
		if err != nil {
			return n, fmt.Errorf("import %s from %s over jmap: %w", d.k, acct.From, err)
		}
		n += int64(r.Changes())
		log.Info("imported over jmap", "kind", string(d.k), "added", r.Added, "changed", r.Changed, "deleted", r.Deleted)
		for coll, e := range r.Failed {
			return n, fmt.Errorf("import %s from %s over jmap: collection %s: %s", d.k, acct.From, coll, e)
		}
	}
	return n, nil
}
