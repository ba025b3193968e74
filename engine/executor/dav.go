package executor

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// Contacts and calendars ride along with the account's mail steps like
// Sieve scripts: import after the mail import, export after the mail
// export, verify beside the mail verify, when the account's data has
// "contacts" (or "calendars"). They are read over the source's carddav
// (caldav) endpoint — or its exchange endpoint, through Graph or EWS —
// or, from a JMAP mail source, over its session (RFC 9610, JMAP
// Calendars); they are written over the target's JMAP session when it
// offers the capability, else over its carddav (caldav) endpoint. The DAV
// paths need the account's password: DAV servers take the user's own
// login (Cyrus's DAV has no admin impersonation), so a master login
// cannot be used. MovesDAV says so, and plan output names the kinds that
// stay behind.

// davKinds maps a data kind to its protocol, registry kind and archive
// collection kind.
var davKinds = map[plan.DataKind]struct {
	proto      plan.Protocol
	kind, coll string
}{
	plan.DataContacts:  {plan.ProtoCardDAV, "carddav", archive.CollectionAddressBook},
	plan.DataCalendars: {plan.ProtoCalDAV, "caldav", archive.CollectionCalendar},
}

// MovesDAV reports whether apply moves the account's data kind k
// (contacts or calendars).
// The kind is read over the source's DAV endpoint (or Exchange), or over
// a JMAP mail source's session when it offers RFC 9610 / JMAP Calendars;
// it is written over the target's JMAP session when that offers the
// capability (decided at the step, jmapdata.go), else over the target's
// DAV endpoint.
func MovesDAV(m *plan.Migration, acct *plan.Account, k plan.DataKind) bool {
	if _, ok := davKinds[k]; !ok {
		return false
	}
	want := false
	for _, d := range acct.Data {
		want = want || d == k
	}
	from, to := m.Backend(acct.From), m.Backend(acct.To)
	return want && from != nil && to != nil &&
		(davFrom(from, acct, k) || jmapMailSource(from)) &&
		(davTo(to, acct, k) || to.Endpoint(plan.ProtoJMAP) != nil)
}

// davFrom reports whether the account's kind k is read over the source's
// CalDAV/CardDAV endpoint or its Exchange API (with the account's own
// password: DAV servers have no admin impersonation).
func davFrom(b *plan.Backend, acct *plan.Account, k plan.DataKind) bool {
	return acct.Password.IsSet() && (b.Endpoint(davKinds[k].proto) != nil || b.Exchange != nil)
}

// davTo reports whether the target takes the kind k over its
// CalDAV/CardDAV endpoint.
func davTo(b *plan.Backend, acct *plan.Account, k plan.DataKind) bool {
	return acct.Password.IsSet() && b.Endpoint(davKinds[k].proto) != nil
}

// davRoute says how the export and verify write the account's kind k
// once the JMAP table has run (via): "jmap" when the target's session
// took it, else the target's CalDAV/CardDAV protocol when it has that
// endpoint (and the account its password), else "" — the kind stays at
// the source (the export logs why when MovesDAV promised a path: a
// target with only a jmap endpoint whose session turned out not to offer
// the capability).
func davRoute(m *plan.Migration, acct *plan.Account, k plan.DataKind, via map[plan.DataKind]bool) plan.Protocol {
	switch {
	case !MovesDAV(m, acct, k):
		return ""
	case via[k]:
		return plan.ProtoJMAP
	case davTo(m.Backend(acct.To), acct, k):
		return davKinds[k].proto
	}
	return ""
}

// davSource returns the registry kind and the settings of the account's
// source of the data kind k: the backend's carddav/caldav endpoint, else
// its exchange endpoint (exchange-graph-contacts, exchange-ews-calendars
// …, with the mail source's credentials).
func (x *Executor) davSource(acct *plan.Account, k plan.DataKind, log *slog.Logger) (string, *sources.Spec, error) {
	dk := davKinds[k]
	b := x.m.Backend(acct.From)
	if b.Endpoint(dk.proto) == nil && b.Exchange != nil {
		_, spec, err := x.sourceSpec(acct, nil, log)
		if err != nil {
			return "", nil, err
		}
		return "exchange-" + b.Exchange.API + "-" + string(k), spec, nil
	}
	spec, err := davSpec(b, dk.proto, acct.SourceLogin, acct, log)
	return dk.kind, spec, err
}

// davSpec describes a backend's DAV endpoint with the account's login.
func davSpec(b *plan.Backend, proto plan.Protocol, user string, acct *plan.Account, log *slog.Logger) (*sources.Spec, error) {
	ep := b.Endpoint(proto)
	u, err := url.Parse(ep.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%s endpoint of %s: want a URL http(s)://host[:port]/path, got %q", proto, b.Name, ep.URL)
	}
	srv := vandelay.Server{Address: u.Host, ServerName: ep.ServerName, InsecureSkipVerify: ep.InsecureSkipVerify, TLS: vandelay.TLSImplicit}
	if u.Scheme == "http" {
		srv.TLS, srv.AllowCleartext = vandelay.TLSNone, true
	}
	if user == "" {
		user = acct.Address
	}
	return &sources.Spec{Server: srv, Login: vandelay.Login{User: user, Password: acct.Password.Reveal()}, Path: u.Path, Logger: log}, nil
}

// importDAV syncs the account's collections of every moved DAV kind; the
// item changes are counted as Objects. A collection that failed is an
// error of the step after the others were synced.
func (x *Executor) importDAV(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) (int64, error) {
	var n int64
	for _, k := range []plan.DataKind{plan.DataContacts, plan.DataCalendars} {
		if !MovesDAV(x.m, acct, k) || !davFrom(x.m.Backend(acct.From), acct, k) {
			continue // or read over a JMAP source's session (importJMAPData)
		}
		kind, spec, err := x.davSource(acct, k, log)
		if err != nil {
			return n, err
		}
		src, err := sources.Data[kind].NewDAV(spec)
		if err != nil {
			return n, err
		}
		res, err := vandelay.ImportDAV(ctx, src, a, nil)
		src.Close()
		if err != nil {
			return n, fmt.Errorf("import %s from %s: %w", k, acct.From, err)
		}
		n += int64(res.Changes())
		log.Info("dav collections imported", "kind", string(k), "added", res.Added, "changed", res.Changed, "deleted", res.Deleted)
		for href, e := range res.Failed {
			return n, fmt.Errorf("import %s from %s: collection %s: %s", k, acct.From, href, e)
		}
	}
	return n, nil
}

func (x *Executor) openDAVTarget(ctx context.Context, acct *plan.Account, k plan.DataKind, log *slog.Logger) (vandelay.DAVTarget, error) {
	dk := davKinds[k]
	b := x.m.Backend(acct.To)
	spec, err := davSpec(b, dk.proto, acct.TargetLogin, acct, log)
	if err != nil {
		return nil, err
	}
	t, err := sources.DAVTargets[dk.kind](ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("%s target %s: %w", dk.kind, b.Name, err)
	}
	return t, nil
}

// exportDAV reconciles every moved DAV kind onto the target. Refused items
// and conflicts are logged and do not fail the step (a re-run cannot fix
// them; the target's version is kept); conflicts are added to
// cnt.Conflicts.
func (x *Executor) exportDAV(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger, cnt *state.Counts, via map[plan.DataKind]bool) (int64, error) {
	var n int64
	for _, k := range []plan.DataKind{plan.DataContacts, plan.DataCalendars} {
		r := davRoute(x.m, acct, k, via)
		if r == "" && MovesDAV(x.m, acct, k) {
			log.Warn("not moved: the target's session does not offer it and the target has no endpoint for it",
				"kind", string(k), "capability", davCaps[k], "endpoint", string(davKinds[k].proto))
		}
		if r != davKinds[k].proto {
			continue
		}
		t, err := x.openDAVTarget(ctx, acct, k, log)
		if err != nil {
			return n, err
		}
		res, err := vandelay.ExportDAV(ctx, a, davKinds[k].coll, t, nil)
		t.Close()
		if res != nil {
			for href, text := range res.Refused {
				log.Warn("dav item refused by the target", "item", href, "err", text)
			}
			for _, href := range res.Conflicts {
				log.Warn("dav item conflict: the target's own version kept", "item", href)
			}
			cnt.Conflicts += int64(len(res.Conflicts))
			n += int64(res.Changes())
		}
		if err != nil {
			return n, fmt.Errorf("export %s to %s: %w", k, acct.To, err)
		}
		log.Info("dav collections exported", "kind", string(k), "put", res.Put, "updated", res.Updated, "deleted", res.Deleted)
	}
	return n, nil
}

// verifyDAV counts items missing or different at the target; conflicts
// are added to cnt.Conflicts.
func (x *Executor) verifyDAV(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger, named *[]state.Mismatch, cnt *state.Counts, via map[plan.DataKind]bool) (int64, error) {
	var n int64
	for _, k := range []plan.DataKind{plan.DataContacts, plan.DataCalendars} {
		if davRoute(x.m, acct, k, via) != davKinds[k].proto {
			continue
		}
		t, err := x.openDAVTarget(ctx, acct, k, log)
		if err != nil {
			return n, err
		}
		rep, err := vandelay.VerifyDAV(ctx, a, davKinds[k].coll, t)
		t.Close()
		if err != nil {
			return n, fmt.Errorf("verify %s: %w", k, err)
		}
		for _, href := range rep.Conflicts {
			log.Warn("dav item conflict: the target's own version kept; not counted as a mismatch", "kind", string(k), "item", href)
		}
		cnt.Conflicts += int64(len(rep.Conflicts))
		for _, mm := range rep.Mismatches {
			n++
			*named = append(*named, state.Mismatch{Kind: string(k) + "-" + mm.Kind, Mailbox: mm.Collection, Item: mm.Href})
			log.Warn("verify mismatch", "kind", string(k)+" "+mm.Kind, "item", mm.Href)
		}
	}
	return n, nil
}
