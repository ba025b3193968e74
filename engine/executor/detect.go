package executor

import (
	"context"
	"log/slog"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// dataCheck asks the source how many items of one kind changed since
// what the archive held when the check was made.
type dataCheck struct {
	kind plan.DataKind
	run  func(ctx context.Context) (int64, error)
}

// dataChecks reads what the archive holds of each non-mail kind the
// account moves and returns one check per kind, to run after the archive
// is closed: Sieve scripts by name, content and activation; contacts and
// calendars by a sync of each collection (items whose bytes differ, and
// removals); files by a walk compared by ETag (or size and time). Nothing
// is written. A kind whose snapshot cannot be read is logged and left out:
// the next import finds its changes all the same. An Exchange source's
// other kinds are not probed: Graph's calendars have no cheap change
// query (they are read whole by the import), and the mail probe already
// decides whether the account needs a pass.
func (x *Executor) dataChecks(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) []dataCheck {
	var out []dataCheck
	if b := x.m.Backend(acct.From); b != nil && b.Exchange != nil {
		return nil
	}
	add := func(k plan.DataKind, run func(context.Context) (int64, error), err error) {
		if err != nil {
			log.Warn("not probed", "kind", string(k), "err", err)
			return
		}
		out = append(out, dataCheck{k, run})
	}
	// Kinds read over a JMAP source's session are not probed here: the
	// mail probe's /changes already decides whether the account needs a
	// pass, and the import asks each type's /changes.
	from := x.m.Backend(acct.From)
	if MovesSieve(x.m, acct) && sieveFrom(from) {
		run, err := x.sieveCheck(ctx, acct, a, log)
		add(plan.DataSieve, run, err)
	}
	for _, k := range []plan.DataKind{plan.DataCalendars, plan.DataContacts} {
		if MovesDAV(x.m, acct, k) && davFrom(from, acct, k) {
			run, err := x.davCheck(ctx, acct, k, a, log)
			add(k, run, err)
		}
	}
	if MovesFiles(x.m, acct) && filesFrom(from, acct) {
		run, err := x.filesCheck(ctx, acct, a, log)
		add(plan.DataFiles, run, err)
	}
	return out
}

// runDataChecks runs the checks; kinds without changes are left out.
func runDataChecks(ctx context.Context, checks []dataCheck, log *slog.Logger) []engine.DataDelta {
	var out []engine.DataDelta
	for _, c := range checks {
		n, err := c.run(ctx)
		if err != nil {
			log.Warn("not probed", "kind", string(c.kind), "err", err)
			continue
		}
		if n > 0 {
			out = append(out, engine.DataDelta{Kind: c.kind, Changed: n})
		}
	}
	return out
}

func (x *Executor) sieveCheck(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) (func(context.Context) (int64, error), error) {
	kind, spec, err := x.sieveSource(acct, log)
	if err != nil {
		return nil, err
	}
	had, err := a.SieveScripts(ctx, false)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (int64, error) {
		src, err := sources.Data[kind].NewSieve(spec)
		if err != nil {
			return 0, err
		}
		defer src.Close()
		now, err := src.Scripts(ctx)
		if err != nil {
			return 0, err
		}
		old := map[string]archive.SieveScript{}
		for _, s := range had {
			old[s.Name] = s
		}
		var n int64
		for _, s := range now {
			o, ok := old[s.Name]
			if !ok || o.Hash != archive.Hash(s.Body) || o.Active != s.Active {
				n++
			}
			delete(old, s.Name)
		}
		return n + int64(len(old)), nil
	}, nil
}

func (x *Executor) davCheck(ctx context.Context, acct *plan.Account, k plan.DataKind, a *archive.Archive, log *slog.Logger) (func(context.Context) (int64, error), error) {
	dk := davKinds[k]
	kind, spec, err := x.davSource(acct, k, log)
	if err != nil {
		return nil, err
	}
	src, err := sources.Data[kind].NewDAV(spec)
	if err != nil {
		return nil, err
	}
	desc := src.Describe()
	// The archive's collections of this source: cursor and item hashes
	// by href.
	type held struct {
		cur    *archive.DAVCursor
		hashes map[string]string
	}
	snap := map[string]held{}
	cols, err := a.DAVCollections(ctx, dk.coll, false)
	if err != nil {
		return nil, err
	}
	for _, c := range cols {
		if id, err := a.CollectionID(ctx, dk.coll, desc, c.Href); err != nil || id != c.ID {
			continue // another source's
		}
		cur, err := a.DAVCursor(ctx, dk.coll, desc, c.Href)
		if err != nil {
			return nil, err
		}
		items, err := a.DAVItems(ctx, c.ID, false)
		if err != nil {
			return nil, err
		}
		h := held{cur: cur, hashes: map[string]string{}}
		for _, it := range items {
			h.hashes[it.Href] = it.Hash
		}
		snap[c.Href] = h
	}
	return func(ctx context.Context) (int64, error) {
		defer src.Close()
		cols, err := src.Collections(ctx)
		if err != nil {
			return 0, err
		}
		var n int64
		for _, c := range cols {
			h, ok := snap[c.Href]
			if !ok {
				h = held{cur: &archive.DAVCursor{ETags: map[string]string{}}}
			}
			cs, err := src.Sync(ctx, c, h.cur)
			if err != nil {
				return n, err
			}
			for _, it := range cs.Items {
				if h.hashes[it.Href] != archive.Hash(it.Body) {
					n++
				}
			}
			for _, d := range cs.Deleted {
				if _, ok := h.hashes[d]; ok {
					n++
				}
			}
		}
		return n, nil
	}, nil
}

func (x *Executor) filesCheck(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) (func(context.Context) (int64, error), error) {
	spec, err := filesSpec(x.m.Backend(acct.From), acct.SourceLogin, acct, log)
	if err != nil {
		return nil, err
	}
	src, err := sources.Data["webdav"].NewFiles(spec)
	if err != nil {
		return nil, err
	}
	var had []archive.File
	id, err := a.FileCollection(ctx, src.Describe(), src.Root())
	if err == nil && id != 0 {
		had, err = a.Files(ctx, id, false)
	}
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (int64, error) {
		defer src.Close()
		now, _, err := src.Walk(ctx)
		if err != nil {
			return 0, err
		}
		return int64(vandelay.FileChanges(had, now)), nil
	}, nil
}
