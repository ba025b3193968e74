package executor

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// Files ride along with the account's mail steps like contacts and
// calendars: import after the mail import, export after the mail export,
// verify beside the mail verify, when the account's data has "files",
// the source has a webdav endpoint and the account a password (WebDAV
// servers take the user's own login) — or the source is a JMAP mail
// source whose session offers FileNode — and the target has a webdav or
// jmap endpoint: the export uses FileNode when the target's session
// offers it (decided at the step, jmapdata.go), else WebDAV. The webdav
// endpoint's URL names the folder of all users ("http://host/files/"):
// the account's tree is the login's folder below it, or the URL with
// "{user}" replaced when it has one.

// MovesFiles reports whether apply moves the account's files.
func MovesFiles(m *plan.Migration, acct *plan.Account) bool {
	want := false
	for _, d := range acct.Data {
		want = want || d == plan.DataFiles
	}
	from, to := m.Backend(acct.From), m.Backend(acct.To)
	if !want || from == nil || to == nil || to.Endpoint(plan.ProtoWebDAV) == nil && to.Endpoint(plan.ProtoJMAP) == nil {
		return false
	}
	return filesFrom(from, acct) || jmapMailSource(from)
}

// filesFrom reports whether the account's files are read over the
// backend's WebDAV endpoint.
func filesFrom(b *plan.Backend, acct *plan.Account) bool {
	return b.Endpoint(plan.ProtoWebDAV) != nil && acct.Password.IsSet()
}

// filesTo reports whether the target takes files over WebDAV.
func filesTo(b *plan.Backend, acct *plan.Account) bool {
	return b.Endpoint(plan.ProtoWebDAV) != nil && acct.Password.IsSet()
}

// filesSpec describes a backend's WebDAV tree of the account.
func filesSpec(b *plan.Backend, user string, acct *plan.Account, log *slog.Logger) (*sources.Spec, error) {
	spec, err := davSpec(b, plan.ProtoWebDAV, user, acct, log)
	if err != nil {
		return nil, err
	}
	if u, _ := url.Parse(b.Endpoint(plan.ProtoWebDAV).URL); u != nil && strings.Contains(u.Path, "{user}") {
		spec.Path = u.Path // decoded: "{user}" as written
	} else {
		spec.Path = strings.TrimSuffix(spec.Path, "/") + "/{user}/"
	}
	return spec, nil
}

// importFiles syncs the account's tree; file changes count as Objects.
func (x *Executor) importFiles(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) (int64, error) {
	if !MovesFiles(x.m, acct) || !filesFrom(x.m.Backend(acct.From), acct) {
		return 0, nil
	}
	spec, err := filesSpec(x.m.Backend(acct.From), acct.SourceLogin, acct, log)
	if err != nil {
		return 0, err
	}
	src, err := sources.Data["webdav"].NewFiles(spec)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	res, err := vandelay.ImportFiles(ctx, src, a, nil)
	if res == nil {
		return 0, fmt.Errorf("import files from %s: %w", acct.From, err)
	}
	log.Info("files imported", "added", res.Added, "changed", res.Changed, "deleted", res.Deleted, "bytes", res.Bytes)
	if err != nil {
		return int64(res.Changes()), fmt.Errorf("import files from %s: %w", acct.From, err)
	}
	return int64(res.Changes()), nil
}

func (x *Executor) openFileTarget(ctx context.Context, acct *plan.Account, log *slog.Logger) (vandelay.FileTarget, error) {
	b := x.m.Backend(acct.To)
	spec, err := filesSpec(b, acct.TargetLogin, acct, log)
	if err != nil {
		return nil, err
	}
	t, err := sources.FileTargets["webdav"](ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("webdav target %s: %w", b.Name, err)
	}
	return t, nil
}

// exportFiles reconciles the account's files onto the target. Conflicts
// are logged, added to cnt.Conflicts and do not fail the step: the
// target's version is kept.
func (x *Executor) exportFiles(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger, cnt *state.Counts) (int64, error) {
	if !MovesFiles(x.m, acct) {
		return 0, nil
	}
	if !filesTo(x.m.Backend(acct.To), acct) {
		log.Warn("files not moved: the target's session does not offer " + jmap.CapFileNode + " and it has no webdav endpoint (or the account no password)")
		return 0, nil
	}
	t, err := x.openFileTarget(ctx, acct, log)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	res, err := vandelay.ExportFiles(ctx, a, t, nil)
	if res == nil {
		return 0, fmt.Errorf("export files to %s: %w", acct.To, err)
	}
	for _, p := range res.Conflicts {
		log.Warn("file conflict: the target's own version kept", "path", p)
	}
	cnt.Conflicts += int64(len(res.Conflicts))
	if err != nil {
		return int64(res.Changes()), fmt.Errorf("export files to %s: %w", acct.To, err)
	}
	log.Info("files exported", "folders", res.Folders, "put", res.Put, "updated", res.Updated, "deleted", res.Deleted)
	return int64(res.Changes()), nil
}

// verifyFiles counts files missing or different at the target;
// conflicts are added to cnt.Conflicts.
func (x *Executor) verifyFiles(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger, named *[]state.Mismatch, cnt *state.Counts) (int64, error) {
	if !MovesFiles(x.m, acct) || !filesTo(x.m.Backend(acct.To), acct) {
		return 0, nil
	}
	t, err := x.openFileTarget(ctx, acct, log)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	rep, err := vandelay.VerifyFiles(ctx, a, t)
	if err != nil {
		return 0, fmt.Errorf("verify files: %w", err)
	}
	for _, p := range rep.Conflicts {
		log.Warn("file conflict: the target's own version kept; not counted as a mismatch", "path", p)
	}
	cnt.Conflicts += int64(len(rep.Conflicts))
	for _, mm := range rep.Mismatches {
		*named = append(*named, state.Mismatch{Kind: "files-" + mm.Kind, Item: mm.Path})
		log.Warn("verify mismatch", "kind", "files "+mm.Kind, "item", mm.Path)
	}
	return int64(len(rep.Mismatches)), nil
}

// Transports says how each data kind of the account moves with this
// executor (what plan and apply -dry-run print): mail over JMAP; Sieve
// and files over JMAP when the target's session offers RFC 9661 or
// FileNode, else over ManageSieve or WebDAV — decided at the step from
// the session, so a target with both is printed "jmap (urn:…) or
// managesieve"; contacts and calendars over CardDAV and CalDAV; each
// where the source can give it (and, for the HTTP kinds, the account has
// a password); the others stay at the source.
func Transports(m *plan.Migration, acct *plan.Account) []engine.DataTransport {
	var out []engine.DataTransport
	to := m.Backend(acct.To)
	over := func(cap string, dedicated plan.Protocol, hasDedicated bool) string {
		j := to != nil && to.Endpoint(plan.ProtoJMAP) != nil
		switch {
		case j && hasDedicated:
			return "jmap (" + cap + ") or " + string(dedicated)
		case j:
			return "jmap (" + cap + ")"
		}
		return string(dedicated)
	}
	for _, k := range acct.Data {
		t := engine.DataTransport{Kind: k}
		switch k {
		case plan.DataMail:
			t.Via = "jmap"
		case plan.DataSieve:
			if MovesSieve(m, acct) {
				t.Via = over(jmap.CapSieve, plan.ProtoManageSieve, to.Endpoint(plan.ProtoManageSieve) != nil)
			} else {
				t.Note = "needs a managesieve endpoint (or a jmap source) at the source and a managesieve or jmap endpoint at the target"
			}
		case plan.DataContacts, plan.DataCalendars:
			if MovesDAV(m, acct, k) {
				t.Via = over(davCaps[k], davKinds[k].proto, davTo(to, acct, k))
			} else {
				t.Note = "needs a " + string(davKinds[k].proto) + " endpoint with the account's password, or a jmap source, at the source, and a " + string(davKinds[k].proto) + " or jmap endpoint at the target"
			}
		case plan.DataFiles:
			if MovesFiles(m, acct) {
				t.Via = over(jmap.CapFileNode, plan.ProtoWebDAV, filesTo(to, acct))
			} else {
				t.Note = "needs a webdav endpoint with the account's password, or a jmap source, at the source, and a webdav or jmap endpoint at the target"
			}
		default:
			t.Note = "not moved by this build"
		}
		out = append(out, t)
	}
	return out
}
