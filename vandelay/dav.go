package vandelay

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// DAVSource is one account's address books (CardDAV) or calendars
// (CalDAV) at a source. Collections discovers them; Sync returns what
// changed in one since the archive's cursor. A DAVSource is used by one
// goroutine. Close releases its connections.
type DAVSource interface {
	// Describe returns the source's identity; collections are kept per
	// source (kind, endpoint, account) and href.
	Describe() archive.Source
	// Kind is archive.CollectionAddressBook or archive.CollectionCalendar.
	Kind() string
	// Collections lists every collection the user owns.
	Collections(ctx context.Context) ([]archive.NewCollection, error)
	// Sync returns the items added or changed and the hrefs removed since
	// cur, with the new cursor. Items keep the bytes the source served.
	Sync(ctx context.Context, c archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error)
	// Close releases the connections.
	Close() error
}

// DAVImportResult counts what [ImportDAV] changed.
type DAVImportResult struct {
	Collections int `json:"collections"`
	archive.ItemsResult
	// Retired counts collections gone from the source (tombstoned).
	Retired int `json:"retired,omitempty"`
	// Failed maps a collection's href to the error that stopped its sync
	// (a 403, 404 or 507 of one collection does not stop the others).
	Failed map[string]string `json:"failed,omitempty"`
	// Unparsable lists the hrefs of items kept as bytes that did not
	// parse.
	Unparsable []string `json:"unparsable,omitempty"`
	DryRun     bool     `json:"dry_run,omitempty"`
}

// Changes is the number of item changes.
func (r *DAVImportResult) Changes() int { return r.ItemsResult.Changes() + r.Retired }

// ImportDAV syncs every collection of src into the archive, one
// transaction per collection: a collection whose sync fails is reported
// in Failed and the others go on. The error is non-nil when discovery or
// the archive failed.
func ImportDAV(ctx context.Context, src DAVSource, a *archive.Archive, opts *ImportOptions) (*DAVImportResult, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	hintCursor(ctx, a, src)
	cols, err := src.Collections(ctx)
	if err != nil {
		return nil, err
	}
	res := &DAVImportResult{DryRun: opts.DryRun}
	desc := src.Describe()
	var live []string
	for _, c := range cols {
		live = append(live, c.Href)
		cur, err := a.DAVCursor(ctx, src.Kind(), desc, c.Href)
		if err != nil {
			return res, err
		}
		cs, err := src.Sync(ctx, c, cur)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if res.Failed == nil {
				res.Failed = map[string]string{}
			}
			res.Failed[c.Href] = err.Error()
			continue
		}
		for _, it := range cs.Items {
			if it.ParseError != "" {
				res.Unparsable = append(res.Unparsable, it.Href)
			}
		}
		r, err := a.SyncDAVCollection(ctx, src.Kind(), desc, cs, opts.DryRun)
		if err != nil {
			return res, err
		}
		res.Collections++
		res.Added += r.Added
		res.Changed += r.Changed
		res.Deleted += r.Deleted
		res.Unchanged += r.Unchanged
	}
	if !opts.DryRun {
		n, err := a.RetireDAVCollections(ctx, src.Kind(), desc, live)
		if err != nil {
			return res, err
		}
		res.Retired = n
	}
	return res, nil
}

// DAVTarget is one account's CardDAV or CalDAV store at a target (Cyrus's
// DAV endpoints, the fallback where the target's JMAP lacks the standard
// capability). Implementations store the bytes they are given as the
// server does (it may rewrite them: see [Normalize]).
type DAVTarget interface {
	// Name is the target's stable identity in the export mapping.
	Name() string
	// Home returns the href of the user's home set of the kind.
	Home(ctx context.Context) (string, error)
	// Collections returns the hrefs of the collections below Home.
	Collections(ctx context.Context) ([]string, error)
	// MakeCollection creates a collection at href with c's properties.
	MakeCollection(ctx context.Context, href string, c archive.Collection) error
	// DeleteCollection deletes the collection at href.
	DeleteCollection(ctx context.Context, href string) error
	// Members returns the ETag of every item of a collection by href.
	Members(ctx context.Context, collection string) (map[string]string, error)
	// Get returns an item's bytes as stored; like is the archived item,
	// so that a server storing several versions of a format (Cyrus:
	// vCard 3.0 and 4.0) is asked for the one that was put.
	Get(ctx context.Context, href string, like []byte) ([]byte, error)
	// Put creates (ifMatch "", If-None-Match: *) or replaces (If-Match)
	// an item and returns its new ETag. A failed precondition is
	// [ErrDAVPrecondition]; a refused item a *[DAVRefusedError].
	Put(ctx context.Context, href, mediaType string, body []byte, ifMatch string) (string, error)
	// Delete deletes an item if its ETag is still ifMatch.
	Delete(ctx context.Context, href, ifMatch string) error
	// Close releases the connections.
	Close() error
}

// ErrDAVPrecondition reports that a conditional PUT or DELETE found
// another version at the target.
var ErrDAVPrecondition = errors.New("the item changed at the target")

// DAVRefusedError reports that the target refused an item (its status
// and text).
type DAVRefusedError struct {
	Href string
	Text string
}

func (e *DAVRefusedError) Error() string { return fmt.Sprintf("target refused %s: %s", e.Href, e.Text) }

// DAVExportOptions configure [ExportDAV]. A nil pointer means the
// defaults.
type DAVExportOptions struct {
	// DryRun counts and writes nothing.
	DryRun bool
}

// DAVExportResult counts what [ExportDAV] did (or would do).
type DAVExportResult struct {
	Collections int `json:"collections_created"`
	Put         int `json:"put"`
	Updated     int `json:"updated"`
	Deleted     int `json:"deleted"`
	Unchanged   int `json:"unchanged"`
	// Conflicts lists target hrefs the user changed at the target (or
	// had before the export): the target's version was kept.
	Conflicts []string `json:"conflicts,omitempty"`
	// Refused maps a target href to the target's error text.
	Refused map[string]string `json:"refused,omitempty"`
	DryRun  bool              `json:"dry_run,omitempty"`
}

// Changes is the number of changes made at the target.
func (r *DAVExportResult) Changes() int { return r.Collections + r.Put + r.Updated + r.Deleted }

// targetName returns the last path segment of a source href, the name an
// exported collection or item gets below its parent at the target, so
// that a re-run finds what an earlier (killed) run made.
func targetName(href string) string {
	return path.Base(strings.TrimSuffix(href, "/"))
}

// ExportDAV reconciles the archive's collections of kind onto t,
// convergent like the mail export:
//
//   - a collection new in the archive is created below the target's home
//     under its source name, with display name, colour, description and
//     components (one of that name already there is adopted, not created);
//   - a new item is PUT with its bytes and If-None-Match: *, a changed
//     one with If-Match and the ETag the target gave at the last PUT; an
//     item the user changed at the target since (or had before, under the
//     same name) is a conflict: reported, the target's version kept;
//   - an item deleted at the source is deleted at the target only when
//     the export created it and the target still has that version;
//   - an exported item deleted at the target is put back.
//
// The intent is recorded before each PUT, so a killed export re-runs
// without doubling anything.
func ExportDAV(ctx context.Context, a *archive.Archive, kind string, t DAVTarget, opts *DAVExportOptions) (*DAVExportResult, error) {
	if opts == nil {
		opts = &DAVExportOptions{}
	}
	res := &DAVExportResult{DryRun: opts.DryRun}
	et, err := a.ExportTarget(ctx, t.Name())
	if err != nil {
		return nil, err
	}
	cmaps, err := et.Mappings(ctx, archive.KindDAVCollection)
	if err != nil {
		return nil, err
	}
	imaps, err := et.Mappings(ctx, archive.KindDAVItem)
	if err != nil {
		return nil, err
	}
	home, err := t.Home(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the target's home: %w", err)
	}
	hrefs, err := t.Collections(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the target's collections: %w", err)
	}
	there := map[string]bool{}
	for _, h := range hrefs {
		there[strings.TrimSuffix(h, "/")] = true
	}
	record := func(m archive.Mapping) error {
		if opts.DryRun {
			return nil
		}
		return et.PutMappings(ctx, []archive.Mapping{m})
	}
	unmap := func(kind string, id int64) error {
		if opts.DryRun {
			return nil
		}
		return et.DeleteMappings(ctx, kind, []int64{id})
	}
	setETag := func(href, etag string) error {
		if opts.DryRun {
			return nil
		}
		return et.SetState(ctx, "etag:"+href, etag)
	}
	cols, err := a.DAVCollections(ctx, kind, true)
	if err != nil {
		return nil, err
	}
	for _, c := range cols {
		cm, cmapped := cmaps[c.ID]
		if c.Deleted && !cmapped {
			continue
		}
		if !cmapped {
			href := strings.TrimSuffix(home, "/") + "/" + targetName(c.Href) + "/"
			cm = archive.Mapping{Kind: archive.KindDAVCollection, ArchiveID: c.ID, RemoteID: href, Created: !there[strings.TrimSuffix(href, "/")]}
			if cm.Created {
				if err := record(cm); err != nil {
					return res, err
				}
				res.Collections++
				if !opts.DryRun {
					if err := t.MakeCollection(ctx, href, c); err != nil {
						return res, fmt.Errorf("create collection %s at the target: %w", href, err)
					}
				}
			}
			cm.ModSeq = c.ModSeq
			if err := record(cm); err != nil {
				return res, err
			}
		} else if !c.Deleted && !there[strings.TrimSuffix(cm.RemoteID, "/")] {
			// Exported before and deleted at the target since: make it
			// again, its items are put back below.
			res.Collections++
			if !opts.DryRun {
				if err := t.MakeCollection(ctx, cm.RemoteID, c); err != nil {
					return res, fmt.Errorf("create collection %s at the target: %w", cm.RemoteID, err)
				}
			}
		}
		members := map[string]string{}
		if there[strings.TrimSuffix(cm.RemoteID, "/")] {
			if members, err = t.Members(ctx, cm.RemoteID); err != nil {
				return res, fmt.Errorf("list %s at the target: %w", cm.RemoteID, err)
			}
		}
		items, err := a.DAVItems(ctx, c.ID, true)
		if err != nil {
			return res, err
		}
		for _, it := range items {
			if err := exportItem(ctx, a, kind, et, t, opts, res, cm.RemoteID, it, imaps, members, record, unmap, setETag); err != nil {
				return res, err
			}
		}
		if c.Deleted {
			if cm.Created && !opts.DryRun {
				left, err := t.Members(ctx, cm.RemoteID)
				if err == nil && len(left) == 0 {
					if err := t.DeleteCollection(ctx, cm.RemoteID); err != nil {
						return res, fmt.Errorf("delete collection %s at the target: %w", cm.RemoteID, err)
					}
				}
			}
			if err := unmap(archive.KindDAVCollection, c.ID); err != nil {
				return res, err
			}
		}
	}
	if !opts.DryRun {
		if err := saveConflicts(ctx, et, "dav-conflicts", res.Conflicts); err != nil {
			return res, err
		}
	}
	return res, nil
}

func exportItem(ctx context.Context, a *archive.Archive, kind string, et *archive.ExportTarget, t DAVTarget, opts *DAVExportOptions, res *DAVExportResult,
	colHref string, it archive.Item, imaps map[int64]archive.Mapping, members map[string]string,
	record func(archive.Mapping) error, unmap func(string, int64) error, setETag func(string, string) error) error {
	m, mapped := imaps[it.ID]
	href := strings.TrimSuffix(colHref, "/") + "/" + targetName(it.Href)
	if mapped {
		href = m.RemoteID
	}
	cur, present := members[href]
	if !present {
		// Servers differ in escaping hrefs; match by the decoded name.
		for h, e := range members {
			if sameHref(h, href) {
				cur, present = e, true
				break
			}
		}
	}
	var last string
	if mapped {
		var err error
		if last, err = et.State(ctx, "etag:"+href); err != nil {
			return err
		}
	}
	put := func(ifMatch string) (bool, error) {
		if opts.DryRun {
			return true, nil
		}
		body, err := a.BlobBytes(ctx, it.Hash)
		if err != nil {
			return false, err
		}
		etag, err := t.Put(ctx, href, it.MediaType, body, ifMatch)
		var re *DAVRefusedError
		switch {
		case errors.As(err, &re):
			if res.Refused == nil {
				res.Refused = map[string]string{}
			}
			res.Refused[href] = re.Text
			return false, nil
		case errors.Is(err, ErrDAVPrecondition):
			res.Conflicts = append(res.Conflicts, href)
			return false, nil
		case err != nil:
			return false, fmt.Errorf("put %s: %w", href, err)
		}
		return true, setETag(href, etag)
	}
	switch {
	case it.Deleted:
		if !mapped {
			return nil
		}
		if m.Created && present {
			if cur != last {
				res.Conflicts = append(res.Conflicts, href)
			} else {
				res.Deleted++
				if !opts.DryRun {
					err := t.Delete(ctx, href, last)
					if errors.Is(err, ErrDAVPrecondition) {
						res.Deleted--
						res.Conflicts = append(res.Conflicts, href)
					} else if err != nil {
						return fmt.Errorf("delete %s: %w", href, err)
					}
				}
			}
		}
		return unmap(archive.KindDAVItem, it.ID)
	case !mapped && !present:
		// The intent first (Created, ModSeq 0): a run killed after the
		// PUT finds the mapping and knows the export made the item.
		m = archive.Mapping{Kind: archive.KindDAVItem, ArchiveID: it.ID, RemoteID: href, Created: true}
		if err := record(m); err != nil {
			return err
		}
		ok, err := put("")
		if err != nil || !ok {
			if err == nil {
				err = unmap(archive.KindDAVItem, it.ID)
			}
			return err
		}
		res.Put++
	case mapped && !present:
		// Deleted at the target since (or a killed run's PUT never
		// happened): put it (back).
		ok, err := put("")
		if err != nil || !ok {
			return err
		}
		res.Put++
	case !mapped || m.ModSeq == 0 || (m.ModSeq < it.ModSeq && cur != last):
		// The user's own item under this name, a killed run's PUT whose
		// result was not recorded, or an item changed at the target
		// since the last export: equal bytes are adopted, others are a
		// conflict (the target's version is kept).
		if opts.DryRun {
			res.Unchanged++
			return nil
		}
		want, err := a.BlobBytes(ctx, it.Hash)
		if err != nil {
			return err
		}
		got, err := t.Get(ctx, href, want)
		if err != nil {
			return fmt.Errorf("get %s from the target: %w", href, err)
		}
		if !mapped && Normalize(kind, got) != Normalize(kind, want) || mapped && m.ModSeq != 0 {
			res.Conflicts = append(res.Conflicts, href)
			return nil
		}
		if Normalize(kind, got) != Normalize(kind, want) {
			// A killed run's intent whose PUT did not land: put now.
			ok, err := put(cur)
			if err != nil || !ok {
				return err
			}
			res.Updated++
		} else {
			res.Unchanged++
			if err := setETag(href, cur); err != nil {
				return err
			}
		}
		if !mapped {
			m = archive.Mapping{Kind: archive.KindDAVItem, ArchiveID: it.ID, RemoteID: href, Created: false}
		}
	case m.ModSeq < it.ModSeq:
		ok, err := put(last)
		if err != nil || !ok {
			return err
		}
		res.Updated++
	default:
		res.Unchanged++
		return nil
	}
	m.ModSeq = it.ModSeq
	return record(m)
}

func sameHref(a, b string) bool {
	return unescapePath(a) == unescapePath(b)
}
