package vandelay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// A rollback returns to the source what the user created or changed on
// the target after the cut-over, for every data kind, not only mail: the
// functions below do it for Sieve scripts, address books and calendars,
// and files. Each reads the target with the same interface the export
// writes it with (SieveTarget, DAVTarget, FileTarget: they list and read
// as well), and writes the source with a second instance of it pointed
// at the source's endpoint (Dovecot's ManageSieve, Radicale, Apache).
//
// What counts as created or changed on the target is decided against the
// export's own records, never against a snapshot taken at the flip:
//
//   - an item the archive does not hold under that name (a script name,
//     a member href of an exported collection, a path) is new;
//   - an item the export put there whose bytes (after [Normalize] for DAV)
//     differ from the archive's is changed; for DAV items and files the
//     ETag the export recorded after its last PUT spares the download of
//     every unchanged one;
//   - an item the last export kept as a conflict (the user's own version
//     that was there before the export) is left alone: the source has its
//     own version, and neither wins over the other silently;
//   - deletions on the target are not carried back (like mail).
//
// Each copied item is recorded in the archive (archive.DataReturn, in the
// export target's states) before and after its write, and writes are by
// name (PUTSCRIPT, PUT to an href or path), so a rollback killed in the
// middle and run again writes what is missing and doubles nothing: an
// item already copied with the same bytes is skipped. After the
// copy-back the export's recorded ETag of a changed item is the target's
// current one, so the next cut-over's export, which reads the copied
// version back from the source, treats it as the same version and not as
// a conflict, and its verify expects it on the target.

// DataCopyBackOptions configure the data copy-backs. A nil pointer means
// the defaults.
type DataCopyBackOptions struct {
	// CountOnly finds what would be copied and writes nothing anywhere.
	CountOnly bool
	// Logger receives a line per item copied. Default: discard.
	Logger *slog.Logger
}

func (o *DataCopyBackOptions) log() *slog.Logger {
	if o == nil || o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// DataCopyBackResult counts what a data copy-back found and wrote.
type DataCopyBackResult struct {
	// Items are the scripts, contacts, calendar objects or files created
	// or changed on the target that are not at the source yet (an
	// interrupted run's copies with the same bytes are not counted).
	Items int `json:"items"`
	// Copied is how many of them this run wrote to the source.
	Copied int `json:"copied"`
	// Extra counts the folders, collections and activations to write
	// besides.
	Extra int `json:"extra,omitempty"`
	// Conflicts names items left alone because the export kept the
	// target's own version of them.
	Conflicts []string `json:"conflicts,omitempty"`
}

// copyBackTarget returns the export target of the migration target named
// name, nil when nothing was ever exported there (so nothing can have
// come after the cut-over that the archive would know from new).
func copyBackTarget(ctx context.Context, a *archive.Archive, name string) (*archive.ExportTarget, error) {
	et, err := a.ExportTarget(ctx, name)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, nil
	}
	return et, err
}

// found is one item to copy back, with its bytes.
type found struct {
	r    archive.DataReturn
	body []byte
	// mediaType of a DAV item; lastETag is the target's ETag to record
	// for a changed DAV item or file once copied.
	mediaType, etag string
	// stateKey is the export state holding the ETag the export last saw
	// for a changed item ("" for a new one).
	stateKey string
}

// done reports whether recs says r was copied with these bytes already.
func done(recs map[string]archive.DataReturn, r archive.DataReturn) bool {
	old, ok := recs[r.Remote]
	return ok && !old.Copied.IsZero() && old.Hash == r.Hash
}

// copyOne records the item as found, writes it with write and records it
// as copied.
func copyOne(ctx context.Context, et *archive.ExportTarget, f *found, write func() error) error {
	f.r.Found = time.Now().UTC()
	if err := et.PutDataReturn(ctx, f.r); err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	f.r.Copied = time.Now().UTC()
	return et.PutDataReturn(ctx, f.r)
}

// CopyBackSieve copies to the source (to) the Sieve scripts created or
// changed on the target (from) after the cut-over, and makes the source's
// active script the target's when the user activated another one there.
// A script the source refuses fails the copy-back (and so the rollback):
// the route stays where the script works.
func CopyBackSieve(ctx context.Context, a *archive.Archive, from, to SieveTarget, opts *DataCopyBackOptions) (*DataCopyBackResult, error) {
	res := &DataCopyBackResult{}
	et, err := copyBackTarget(ctx, a, from.Name())
	if et == nil || err != nil {
		return res, err
	}
	scripts, err := a.SieveScripts(ctx, false)
	if err != nil {
		return res, err
	}
	byName, wantActive := map[string]archive.SieveScript{}, ""
	for _, s := range scripts {
		byName[s.Name] = s
		if s.Active {
			wantActive = s.Name
		}
	}
	conflicts, err := loadConflicts(ctx, et, "sieve-conflicts")
	if err != nil {
		return res, err
	}
	recs, err := et.DataReturns(ctx, archive.CollectionSieve)
	if err != nil {
		return res, err
	}
	remote, err := from.List(ctx)
	if err != nil {
		return res, fmt.Errorf("list sieve scripts at the target: %w", err)
	}
	var todo []*found
	remoteActive := ""
	for _, r := range remote {
		if r.Active {
			remoteActive = r.Name
		}
		body, err := from.Get(ctx, r.Name)
		if err != nil {
			return res, fmt.Errorf("get sieve script %q from the target: %w", r.Name, err)
		}
		h := archive.Hash(body)
		s, known := byName[r.Name]
		switch {
		case known && s.Hash == h:
			continue
		case conflicts[r.Name]:
			res.Conflicts = append(res.Conflicts, r.Name)
			continue
		}
		f := &found{r: archive.DataReturn{Kind: archive.CollectionSieve, Remote: r.Name, Dest: r.Name, Hash: h, Size: int64(len(body)), What: "new"}, body: body}
		if known {
			f.r.What = "changed"
		}
		if !done(recs, f.r) {
			res.Items++
			todo = append(todo, f)
		}
	}
	// Deactivating every script on the target is not carried back (a
	// deletion, in effect); activating another one is.
	var activate *found
	if remoteActive != "" && remoteActive != wantActive && !conflicts[remoteActive] {
		activate = &found{r: archive.DataReturn{Kind: "sieve-active", Dest: remoteActive, What: "active"}}
		arecs, err := et.DataReturns(ctx, "sieve-active")
		if err != nil {
			return res, err
		}
		if done(arecs, activate.r) {
			activate = nil
		} else {
			res.Extra++
		}
	}
	if opts != nil && opts.CountOnly {
		return res, nil
	}
	log := opts.log()
	for _, f := range todo {
		err := copyOne(ctx, et, f, func() error {
			err := to.Put(ctx, f.r.Dest, f.body)
			var re *ScriptRefusedError
			if errors.As(err, &re) {
				return fmt.Errorf("the source refused sieve script %q, %s on the target after the cut-over (%s): fix it on the target or copy it by hand, then roll back again", f.r.Dest, f.r.What, re.Text)
			}
			return err
		})
		if err != nil {
			return res, fmt.Errorf("copy back sieve script %q: %w", f.r.Dest, err)
		}
		res.Copied++
		log.Info("sieve script copied back", "script", f.r.Dest, "what", f.r.What)
	}
	if activate != nil {
		if err := copyOne(ctx, et, activate, func() error { return to.SetActive(ctx, activate.r.Dest) }); err != nil {
			return res, fmt.Errorf("activate sieve script %q at the source: %w", activate.r.Dest, err)
		}
		log.Info("sieve script activated at the source as on the target", "script", activate.r.Dest)
	}
	return res, nil
}

// davMediaType is the media type of a new item of kind.
func davMediaType(kind string) string {
	if kind == archive.CollectionCalendar {
		return "text/calendar; charset=utf-8"
	}
	return "text/vcard; charset=utf-8"
}

// CopyBackDAV copies to the source (to) the address book or calendar
// items (kind) created or changed on the target (from) after the
// cut-over: in the collections the export wrote, and in collections the
// user created on the target (created at the source under the same name
// first; an empty one is left out).
func CopyBackDAV(ctx context.Context, a *archive.Archive, kind string, from, to DAVTarget, opts *DataCopyBackOptions) (*DataCopyBackResult, error) {
	res := &DataCopyBackResult{}
	et, err := copyBackTarget(ctx, a, from.Name())
	if et == nil || err != nil {
		return res, err
	}
	cmaps, err := et.Mappings(ctx, archive.KindDAVCollection)
	if err != nil {
		return res, err
	}
	imaps, err := et.Mappings(ctx, archive.KindDAVItem)
	if err != nil {
		return res, err
	}
	conflicts, err := loadConflicts(ctx, et, "dav-conflicts")
	if err != nil {
		return res, err
	}
	recs, err := et.DataReturns(ctx, kind)
	if err != nil {
		return res, err
	}
	cols, err := a.DAVCollections(ctx, kind, false)
	if err != nil {
		return res, err
	}
	hrefs, err := from.Collections(ctx)
	if err != nil {
		return res, fmt.Errorf("list the target's collections: %w", err)
	}
	onTarget := map[string]string{} // unescaped, no trailing slash → href
	for _, h := range hrefs {
		onTarget[unescapePath(strings.TrimSuffix(h, "/"))] = h
	}
	type colTodo struct {
		make  *found // nil: the collection is at the source
		items []*found
	}
	var todo []colTodo
	exported := map[string]bool{}
	for _, c := range cols {
		cm, ok := cmaps[c.ID]
		if !ok {
			continue
		}
		exported[unescapePath(strings.TrimSuffix(cm.RemoteID, "/"))] = true
		if _, there := onTarget[unescapePath(strings.TrimSuffix(cm.RemoteID, "/"))]; !there {
			continue // deleted on the target: not carried back
		}
		items, err := a.DAVItems(ctx, c.ID, false)
		if err != nil {
			return res, err
		}
		known := map[string]archive.Item{} // the target href, unescaped
		for _, it := range items {
			href := strings.TrimSuffix(cm.RemoteID, "/") + "/" + targetName(it.Href)
			if m, ok := imaps[it.ID]; ok {
				href = m.RemoteID
			}
			known[unescapePath(href)] = it
		}
		members, err := from.Members(ctx, cm.RemoteID)
		if err != nil {
			return res, fmt.Errorf("list %s at the target: %w", cm.RemoteID, err)
		}
		ct := colTodo{}
		for _, href := range sortedKeys(members) {
			etag := members[href]
			it, isKnown := known[unescapePath(href)]
			var want []byte
			if isKnown {
				last, err := et.State(ctx, "etag:"+href)
				if err != nil {
					return res, err
				}
				if last == "" {
					// Recorded under the mapping's spelling of the href.
					if m, ok := imaps[it.ID]; ok {
						if last, err = et.State(ctx, "etag:"+m.RemoteID); err != nil {
							return res, err
						}
					}
				}
				if last != "" && last == etag {
					continue
				}
				if want, err = a.BlobBytes(ctx, it.Hash); err != nil {
					return res, err
				}
			}
			got, err := from.Get(ctx, href, want)
			if err != nil {
				return res, fmt.Errorf("get %s from the target: %w", href, err)
			}
			if isKnown && Normalize(kind, got) == Normalize(kind, want) {
				continue
			}
			if isKnown && conflicts[href] {
				res.Conflicts = append(res.Conflicts, href)
				continue
			}
			f := &found{r: archive.DataReturn{Kind: kind, Remote: href, Hash: archive.Hash(got), Size: int64(len(got)), What: "new"},
				body: got, mediaType: davMediaType(kind), etag: etag}
			if isKnown {
				f.r.What, f.r.Dest = "changed", it.Href
				if it.MediaType != "" {
					f.mediaType = it.MediaType
				}
			} else {
				f.r.Dest = strings.TrimSuffix(c.Href, "/") + "/" + targetName(href)
			}
			if isKnown {
				if m, ok := imaps[it.ID]; ok {
					f.stateKey = "etag:" + m.RemoteID
				}
			}
			if !done(recs, f.r) {
				res.Items++
				ct.items = append(ct.items, f)
			}
		}
		todo = append(todo, ct)
	}
	// Collections the user made on the target after the cut-over.
	var home string
	for _, key := range sortedKeys(onTarget) {
		if exported[key] {
			continue
		}
		h := onTarget[key]
		members, err := from.Members(ctx, h)
		if err != nil {
			return res, fmt.Errorf("list %s at the target: %w", h, err)
		}
		if len(members) == 0 {
			continue
		}
		if home == "" && !(opts != nil && opts.CountOnly) {
			if home, err = to.Home(ctx); err != nil {
				return res, fmt.Errorf("find the source's home: %w", err)
			}
		}
		dest := strings.TrimSuffix(home, "/") + "/" + targetName(h) + "/"
		ct := colTodo{make: &found{r: archive.DataReturn{Kind: kind, Remote: h, Dest: dest, What: "collection"}}}
		if done(recs, ct.make.r) {
			ct.make = nil
		} else {
			res.Extra++
		}
		for _, href := range sortedKeys(members) {
			got, err := from.Get(ctx, href, nil)
			if err != nil {
				return res, fmt.Errorf("get %s from the target: %w", href, err)
			}
			f := &found{r: archive.DataReturn{Kind: kind, Remote: href, Dest: dest + targetName(href), Hash: archive.Hash(got), Size: int64(len(got)), What: "new"},
				body: got, mediaType: davMediaType(kind)}
			if !done(recs, f.r) {
				res.Items++
				ct.items = append(ct.items, f)
			}
		}
		todo = append(todo, ct)
	}
	if opts != nil && opts.CountOnly {
		return res, nil
	}
	log := opts.log()
	var sourceCols map[string]bool
	for _, ct := range todo {
		if ct.make != nil {
			if sourceCols == nil {
				hs, err := to.Collections(ctx)
				if err != nil {
					return res, fmt.Errorf("list the source's collections: %w", err)
				}
				sourceCols = map[string]bool{}
				for _, h := range hs {
					sourceCols[unescapePath(strings.TrimSuffix(h, "/"))] = true
				}
			}
			m := ct.make
			err := copyOne(ctx, et, m, func() error {
				if sourceCols[unescapePath(strings.TrimSuffix(m.r.Dest, "/"))] {
					return nil // made by a run killed before its record
				}
				name := unescapePath(targetName(m.r.Remote))
				return to.MakeCollection(ctx, m.r.Dest, archive.Collection{DisplayName: name})
			})
			if err != nil {
				return res, fmt.Errorf("create collection %s at the source: %w", m.r.Dest, err)
			}
		}
		for _, f := range ct.items {
			err := copyOne(ctx, et, f, func() error { return putDAV(ctx, to, f) })
			if err != nil {
				return res, fmt.Errorf("copy back %s to %s: %w", f.r.Remote, f.r.Dest, err)
			}
			if f.stateKey != "" && f.etag != "" {
				if err := et.SetState(ctx, f.stateKey, f.etag); err != nil {
					return res, err
				}
			}
			res.Copied++
			log.Info("dav item copied back", "kind", kind, "item", f.r.Remote, "to", f.r.Dest, "what", f.r.What)
		}
	}
	return res, nil
}

// putDAV writes f at the source: created when nothing is there, else
// over whatever version is there (the source's version is the one the
// archive holds, or the same bytes from a killed run).
func putDAV(ctx context.Context, to DAVTarget, f *found) error {
	_, err := to.Put(ctx, f.r.Dest, f.mediaType, f.body, "")
	if !errors.Is(err, ErrDAVPrecondition) {
		return err
	}
	dir := f.r.Dest[:strings.LastIndex(f.r.Dest, "/")+1]
	members, err := to.Members(ctx, dir)
	if err != nil {
		return fmt.Errorf("list %s at the source: %w", dir, err)
	}
	for h, etag := range members {
		if sameHref(h, f.r.Dest) {
			_, err = to.Put(ctx, f.r.Dest, f.mediaType, f.body, etag)
			return err
		}
	}
	return fmt.Errorf("put %s at the source: it exists, and its collection does not list it", f.r.Dest)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CopyBackFiles copies to the source (to) the files created or changed on
// the target (from) after the cut-over, and the folders created there.
// The bytes go through the archive's blob store (read once from the
// target, hashed, then written), so the record names exactly what was
// written.
func CopyBackFiles(ctx context.Context, a *archive.Archive, from, to FileTarget, opts *DataCopyBackOptions) (*DataCopyBackResult, error) {
	res := &DataCopyBackResult{}
	et, err := copyBackTarget(ctx, a, from.Name())
	if et == nil || err != nil {
		return res, err
	}
	all, err := liveFiles(ctx, a, false)
	if err != nil {
		return res, err
	}
	byPath := map[string]archive.File{}
	for _, f := range all {
		byPath[f.Path] = f
	}
	conflicts, err := loadConflicts(ctx, et, "file-conflicts")
	if err != nil {
		return res, err
	}
	recs, err := et.DataReturns(ctx, archive.CollectionFiles)
	if err != nil {
		return res, err
	}
	listed, err := from.Walk(ctx)
	if err != nil {
		return res, fmt.Errorf("list the target's files: %w", err)
	}
	sort.SliceStable(listed, func(i, j int) bool { return listed[i].Path < listed[j].Path })
	countOnly := opts != nil && opts.CountOnly
	var todo []*found
	for _, e := range listed {
		f, known := byPath[e.Path]
		if e.IsDir {
			if known && f.IsDir {
				continue
			}
			d := &found{r: archive.DataReturn{Kind: archive.CollectionFiles, Remote: e.Path, Dest: e.Path, What: "folder"}}
			if !done(recs, d.r) {
				res.Extra++
				todo = append(todo, d)
			}
			continue
		}
		known = known && !f.IsDir
		if known {
			last, err := et.State(ctx, "file-etag:"+e.Path)
			if err != nil {
				return res, err
			}
			if last != "" && last == StrongETag(e.ETag) {
				continue
			}
		}
		var h string
		var size int64
		if countOnly {
			h, size, err = hashFile(ctx, from, e.Path)
		} else {
			h, size, err = storeFile(ctx, a, from, e.Path)
		}
		if err != nil {
			return res, err
		}
		switch {
		case known && h == f.Hash:
			continue
		case known && conflicts[e.Path]:
			res.Conflicts = append(res.Conflicts, e.Path)
			continue
		}
		r := archive.DataReturn{Kind: archive.CollectionFiles, Remote: e.Path, Dest: e.Path, Hash: h, Size: size, What: "new"}
		if known {
			r.What = "changed"
		}
		if !done(recs, r) {
			res.Items++
			todo = append(todo, &found{r: r, etag: StrongETag(e.ETag)})
		}
	}
	if countOnly {
		return res, nil
	}
	log := opts.log()
	var sourceTags map[string]string
	for _, f := range todo {
		if f.r.What == "folder" {
			if err := copyOne(ctx, et, f, func() error { return to.Mkdir(ctx, f.r.Dest) }); err != nil {
				return res, fmt.Errorf("create folder %s at the source: %w", f.r.Dest, err)
			}
			continue
		}
		err := copyOne(ctx, et, f, func() error {
			put := func(ifMatch string) error {
				r, size, err := a.Blob(ctx, f.r.Hash)
				if err != nil {
					return err
				}
				defer r.Close()
				_, err = to.Put(ctx, f.r.Dest, r, size, ifMatch)
				return err
			}
			err := put("")
			if !errors.Is(err, ErrDAVPrecondition) {
				return err
			}
			if sourceTags == nil {
				ls, err := to.Walk(ctx)
				if err != nil {
					return fmt.Errorf("list the source's files: %w", err)
				}
				sourceTags = map[string]string{}
				for _, l := range ls {
					sourceTags[l.Path] = StrongETag(l.ETag)
				}
			}
			return put(sourceTags[f.r.Dest])
		})
		if err != nil {
			return res, fmt.Errorf("copy back %s: %w", f.r.Dest, err)
		}
		if f.r.What == "changed" && f.etag != "" {
			if err := et.SetState(ctx, "file-etag:"+f.r.Remote, f.etag); err != nil {
				return res, err
			}
		}
		res.Copied++
		log.Info("file copied back", "path", f.r.Dest, "what", f.r.What)
	}
	return res, nil
}

func hashFile(ctx context.Context, from FileTarget, p string) (string, int64, error) {
	r, err := from.Open(ctx, p)
	if err != nil {
		return "", 0, fmt.Errorf("get %s from the target: %w", p, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, fmt.Errorf("get %s from the target: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func storeFile(ctx context.Context, a *archive.Archive, from FileTarget, p string) (string, int64, error) {
	r, err := from.Open(ctx, p)
	if err != nil {
		return "", 0, fmt.Errorf("get %s from the target: %w", p, err)
	}
	defer r.Close()
	h, n, err := a.PutBlobStream(ctx, r)
	if err != nil {
		return "", 0, fmt.Errorf("get %s from the target: %w", p, err)
	}
	return h, n, nil
}
