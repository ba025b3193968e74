package executor

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// Sieve scripts ride along with the account's mail steps: the import
// reads them after the mail (same archive), the export writes them after
// the mail, verify compares them. They move when the account's data has
// "sieve", the source has a managesieve endpoint — or is Exchange, whose
// inbox rules become one Sieve script (exchange-graph-rules or
// exchange-ews-rules), or a
// JMAP mail source whose session offers RFC 9661 — and the target has a
// managesieve or jmap endpoint. Which of the two the export uses is
// decided at the step from the target's session (jmapdata.go: over JMAP
// when it offers urn:ietf:params:jmap:sieve); a target that offers
// neither keeps nothing, with a warning. MovesSieve says so, and the
// plan's warning uses it.

// MovesSieve reports whether apply moves the account's Sieve scripts.
func MovesSieve(m *plan.Migration, acct *plan.Account) bool {
	want := false
	for _, k := range acct.Data {
		want = want || k == plan.DataSieve
	}
	if !want {
		return false
	}
	from, to := m.Backend(acct.From), m.Backend(acct.To)
	return from != nil && to != nil && (sieveFrom(from) || jmapMailSource(from)) &&
		(to.Endpoint(plan.ProtoManageSieve) != nil || to.Endpoint(plan.ProtoJMAP) != nil)
}

// sieveFrom reports whether the backend's scripts are read from a
// dedicated source (ManageSieve, or Exchange's inbox rules) rather than
// over its JMAP session.
func sieveFrom(b *plan.Backend) bool {
	return b.Endpoint(plan.ProtoManageSieve) != nil || exchangeRules(b) != ""
}

// exchangeRules names the registry kind that reads the backend's Sieve
// scripts from its Outlook inbox rules (an exchange endpoint and no
// managesieve endpoint), "" when they do not come from there.
func exchangeRules(b *plan.Backend) string {
	if b.Endpoint(plan.ProtoManageSieve) != nil || b.Exchange == nil {
		return ""
	}
	switch b.Exchange.API {
	case "graph":
		return "exchange-graph-rules"
	case "ews":
		return "exchange-ews-rules"
	}
	return ""
}

// sieveServer is the backend's ManageSieve endpoint with the backend's
// timeouts.
func sieveServer(b *plan.Backend) vandelay.Server {
	ep := b.Endpoint(plan.ProtoManageSieve)
	return vandelay.Server{Address: ep.Address, ServerName: ep.ServerName, InsecureSkipVerify: ep.InsecureSkipVerify,
		TLS: vandelay.TLSMode(ep.TLS), AllowCleartext: ep.TLS == plan.TLSNone, Timeouts: Timeouts(b)}
}

// sieveSpec describes the account's ManageSieve source like sourceSpec
// does its mail source (same logins and master credentials).
func (x *Executor) sieveSpec(acct *plan.Account, log *slog.Logger) (*sources.Spec, error) {
	b := x.m.Backend(acct.From)
	spec := &sources.Spec{Login: vandelay.Login{User: acct.SourceLogin}, Logger: log, Server: sieveServer(b)}
	if spec.User == "" {
		spec.User = acct.Address
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		spec.MasterUser, spec.Password = b.Master.User, b.Master.Password.Reveal()
	case acct.Password.IsSet():
		spec.Password = acct.Password.Reveal()
	default:
		return nil, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	return spec, nil
}

// sieveSource names the registry kind of the account's Sieve source and
// its spec: ManageSieve, or Exchange's inbox rules.
func (x *Executor) sieveSource(acct *plan.Account, log *slog.Logger) (string, *sources.Spec, error) {
	if kind := exchangeRules(x.m.Backend(acct.From)); kind != "" {
		_, spec, err := x.sourceSpec(acct, nil, log)
		return kind, spec, err
	}
	spec, err := x.sieveSpec(acct, log)
	return "managesieve", spec, err
}

// importSieve syncs the account's scripts into a; the result's changes
// are counted as Objects.
func (x *Executor) importSieve(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) (int64, error) {
	if !sieveFrom(x.m.Backend(acct.From)) {
		return 0, nil // read over the source's JMAP session (importJMAPData)
	}
	kind, spec, err := x.sieveSource(acct, log)
	if err != nil {
		return 0, err
	}
	src, err := sources.Data[kind].NewSieve(spec)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	res, err := vandelay.ImportSieve(ctx, src, a, nil)
	if err != nil {
		return 0, fmt.Errorf("import sieve scripts from %s: %w", acct.From, err)
	}
	log.Info("sieve scripts imported", "added", res.Added, "changed", res.Changed, "deleted", res.Deleted, "activated", res.Activated)
	return int64(res.Changes()), nil
}

// openSieveTarget logs in to the target's ManageSieve endpoint: with the
// backend's master as SASL PLAIN authzid (how Cyrus admins act for a
// user), else with the account's password.
func (x *Executor) openSieveTarget(ctx context.Context, acct *plan.Account) (vandelay.SieveTarget, error) {
	b := x.m.Backend(acct.To)
	o := &sources.Spec{Server: sieveServer(b), Login: vandelay.Login{User: acct.TargetLogin}}
	if o.User == "" {
		o.User = acct.Address
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		o.MasterUser, o.Password, o.MasterForm = b.Master.User, b.Master.Password.Reveal(), vandelay.MasterAuthzID
	case acct.Password.IsSet():
		o.Password = acct.Password.Reveal()
	default:
		return nil, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	t, err := sources.SieveTargets["managesieve"](ctx, o)
	if err != nil {
		return nil, fmt.Errorf("sieve target %s: %w", b.Name, err)
	}
	return t, nil
}

// exportSieve reconciles the scripts onto the target. A script the target
// refuses is logged with the target's text and does not fail the step
// (re-running cannot fix it; verify lists it as missing); conflicts are
// logged and added to cnt.Conflicts. The changes are returned.
func (x *Executor) exportSieve(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger, cnt *state.Counts) (int64, error) {
	if x.m.Backend(acct.To).Endpoint(plan.ProtoManageSieve) == nil {
		log.Warn("sieve scripts not moved: the target's session does not offer " + jmap.CapSieve + " and it has no managesieve endpoint")
		return 0, nil
	}
	t, err := x.openSieveTarget(ctx, acct)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	res, err := vandelay.ExportSieve(ctx, a, t, nil)
	if res != nil {
		for name, text := range res.Refused {
			log.Warn("sieve script refused by the target", "script", name, "err", text)
		}
		for _, name := range res.Conflicts {
			log.Warn("sieve script conflict: the target's own version kept", "script", name)
		}
		cnt.Conflicts += int64(len(res.Conflicts))
	}
	if err != nil {
		return 0, fmt.Errorf("export sieve scripts to %s: %w", acct.To, err)
	}
	log.Info("sieve scripts exported", "put", res.Put, "updated", res.Updated, "deleted", res.Deleted, "activated", res.Activated)
	return int64(res.Changes()), nil
}

// verifySieve counts content and activation differences as mismatches;
// scripts missing at the target (refused ones) are logged, not counted,
// since no re-run can bring them; conflicts (the user's own script of
// that name kept) are logged and added to cnt.Conflicts.
func (x *Executor) verifySieve(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger, named *[]state.Mismatch, cnt *state.Counts) (int64, error) {
	if x.m.Backend(acct.To).Endpoint(plan.ProtoManageSieve) == nil {
		return 0, nil
	}
	t, err := x.openSieveTarget(ctx, acct)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	rep, err := vandelay.VerifySieve(ctx, a, t)
	if err != nil {
		return 0, fmt.Errorf("verify sieve scripts: %w", err)
	}
	for _, name := range rep.Conflicts {
		log.Warn("sieve script conflict: the target's own version kept; not counted as a mismatch", "script", name)
	}
	cnt.Conflicts += int64(len(rep.Conflicts))
	var n int64
	for _, mm := range rep.Mismatches {
		if mm.Kind == "missing" {
			log.Warn("sieve script missing at the target", "script", mm.Name)
			continue
		}
		n++
		*named = append(*named, state.Mismatch{Kind: "sieve-" + mm.Kind, Item: mm.Name})
		log.Warn("verify mismatch", "kind", "sieve "+mm.Kind, "item", mm.Name)
	}
	return n, nil
}
