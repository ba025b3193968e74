package executor

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// dataCopyBack counts, per data kind, what a rollback copies back besides
// mail (scripts, contacts, calendar objects, files), and what it wrote.
type dataCopyBack struct {
	Sieve, Contacts, Calendars, Files int64
	// Copied is the number of items written by this run.
	Copied int64
}

// copyBackData copies back (or, countOnly, counts) the account's Sieve
// scripts, contacts, calendars and files created or changed on the target
// after the cut-over (vandelay.CopyBackSieve, CopyBackDAV, CopyBackFiles),
// for each kind the plan moves. The target is read with the export's own
// target clients; the source is written with a second one pointed at the
// source's endpoint (ManageSieve, CardDAV/CalDAV, WebDAV), with the
// source login. A source that cannot take a kind back (Sieve from
// Graph's rules, contacts from Exchange) fails the copy-back when there is
// something of that kind to copy, like mail without an IMAP endpoint.
func (x *Executor) copyBackData(ctx context.Context, acct *plan.Account, a *archive.Archive, countOnly bool, log *slog.Logger) (dataCopyBack, error) {
	var out dataCopyBack
	opts := &vandelay.DataCopyBackOptions{CountOnly: countOnly, Logger: log}
	src := x.m.Backend(acct.From)
	cannot := func(n int, what string, proto plan.Protocol) error {
		return fmt.Errorf("%d %s created or changed on %s after the cut-over, and backend %s has no %s endpoint to copy them back to; add one to the plan, or copy them by hand and release the account", n, what, acct.To, acct.From, proto)
	}
	if MovesSieve(x.m, acct) {
		from, err := x.openSieveTarget(ctx, acct)
		if err != nil {
			return out, err
		}
		defer from.Close()
		writable := src.Endpoint(plan.ProtoManageSieve) != nil
		var to vandelay.SieveTarget
		if writable && !countOnly {
			spec, err := x.sieveSpec(acct, log)
			if err != nil {
				return out, err
			}
			if to, err = sources.SieveTargets["managesieve"](ctx, spec); err != nil {
				return out, fmt.Errorf("sieve at %s: %w", acct.From, err)
			}
			defer to.Close()
		}
		res, err := vandelay.CopyBackSieve(ctx, a, from, to, &vandelay.DataCopyBackOptions{CountOnly: countOnly || !writable, Logger: log})
		if res != nil {
			out.Sieve, out.Copied = int64(res.Items), out.Copied+int64(res.Copied)
			logConflicts(log, "sieve", res.Conflicts)
		}
		if err != nil {
			return out, fmt.Errorf("copy back sieve scripts from %s: %w", acct.To, err)
		}
		if !writable && !countOnly && res.Items > 0 {
			return out, cannot(res.Items, "sieve script(s)", plan.ProtoManageSieve)
		}
	}
	for _, k := range []plan.DataKind{plan.DataContacts, plan.DataCalendars} {
		if !MovesDAV(x.m, acct, k) {
			continue
		}
		dk := davKinds[k]
		from, err := x.openDAVTarget(ctx, acct, k, log)
		if err != nil {
			return out, err
		}
		writable := src.Endpoint(dk.proto) != nil
		var to vandelay.DAVTarget
		if writable && !countOnly {
			spec, err := davSpec(src, dk.proto, acct.SourceLogin, acct, log)
			if err != nil {
				from.Close()
				return out, err
			}
			if to, err = sources.DAVTargets[dk.kind](ctx, spec); err != nil {
				from.Close()
				return out, fmt.Errorf("%s at %s: %w", dk.kind, acct.From, err)
			}
		}
		res, err := vandelay.CopyBackDAV(ctx, a, dk.coll, from, to, &vandelay.DataCopyBackOptions{CountOnly: countOnly || !writable, Logger: log})
		from.Close()
		if to != nil {
			to.Close()
		}
		if res != nil {
			if k == plan.DataContacts {
				out.Contacts = int64(res.Items)
			} else {
				out.Calendars = int64(res.Items)
			}
			out.Copied += int64(res.Copied)
			logConflicts(log, string(k), res.Conflicts)
		}
		if err != nil {
			return out, fmt.Errorf("copy back %s from %s: %w", k, acct.To, err)
		}
		if !writable && !countOnly && res.Items > 0 {
			return out, cannot(res.Items, string(k)+" item(s)", dk.proto)
		}
	}
	if MovesFiles(x.m, acct) {
		from, err := x.openFileTarget(ctx, acct, log)
		if err != nil {
			return out, err
		}
		defer from.Close()
		var to vandelay.FileTarget
		if !countOnly {
			spec, err := filesSpec(src, acct.SourceLogin, acct, log)
			if err != nil {
				return out, err
			}
			if to, err = sources.FileTargets["webdav"](ctx, spec); err != nil {
				return out, fmt.Errorf("webdav at %s: %w", acct.From, err)
			}
			defer to.Close()
		}
		res, err := vandelay.CopyBackFiles(ctx, a, from, to, opts)
		if res != nil {
			out.Files, out.Copied = int64(res.Items), out.Copied+int64(res.Copied)
			logConflicts(log, "files", res.Conflicts)
		}
		if err != nil {
			return out, fmt.Errorf("copy back files from %s: %w", acct.To, err)
		}
	}
	return out, nil
}

func logConflicts(log *slog.Logger, kind string, items []string) {
	for _, it := range items {
		log.Warn("not copied back: the export kept the target's own version of it, the source keeps its own", "kind", kind, "item", it)
	}
}
