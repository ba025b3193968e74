package vandelay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// FileSource is one account's file tree at a source (a WebDAV folder, a
// Takeout's Drive). Walk lists it whole; Open streams one file. A
// FileSource is used by one goroutine.
type FileSource interface {
	// Describe returns the source's identity; the tree is kept per
	// source and root.
	Describe() archive.Source
	// Root is the tree's root at the source (a URL path, a member
	// prefix), the collection's href in the archive.
	Root() string
	// Walk returns every file and folder below the root (Hash unset),
	// and a tag of the whole tree ("" when the source has none).
	Walk(ctx context.Context) ([]archive.NewFile, string, error)
	// Open streams the bytes of the file at path.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// Close releases the connections.
	Close() error
}

// FilesImportResult counts what [ImportFiles] changed.
type FilesImportResult struct {
	archive.FilesResult
	// Bytes is what was fetched from the source.
	Bytes  int64 `json:"bytes"`
	DryRun bool  `json:"dry_run,omitempty"`
}

// filesBatch bounds what one archive transaction of a files import holds
// (entries, and bytes fetched since the last commit): a killed import
// fetches at most that again.
const (
	filesBatch      = 20
	filesBatchBytes = 32 << 20
)

// StrongETag returns an ETag without a weak prefix. Apache answers with
// W/"…" for a file written less than a second ago and with "…" later,
// for the same version; compared and sent in If-Match, the strong form
// is what names the version.
func StrongETag(e string) string { return strings.TrimPrefix(e, "W/") }

// sameFile reports whether a listed entry is the archived version: equal
// ETag (when the source has ETags) or else equal size and modified time.
func sameFile(o archive.File, e archive.NewFile) bool {
	if o.IsDir != e.IsDir {
		return false
	}
	if e.IsDir {
		// A folder's time changes with what it holds; that is no
		// change of the folder (its files are compared one by one).
		return true
	}
	if e.ETag != "" && StrongETag(e.ETag) != StrongETag(o.ETag) {
		return false
	}
	return o.Size == e.Size && o.MTime.Unix() == e.MTime.Unix() && o.MediaType == e.MediaType
}

// FileChanges counts the entries of a listing (now) that differ from the
// archived tree (had) as [ImportFiles] would see them: added, changed and
// gone. It fetches nothing: a refresh asks it.
func FileChanges(had []archive.File, now []archive.NewFile) int {
	old := map[string]archive.File{}
	for _, f := range had {
		old[f.Path] = f
	}
	n := 0
	for _, e := range now {
		o, ok := old[e.Path]
		if !ok || !sameFile(o, e) {
			n++
		}
		delete(old, e.Path)
	}
	return n + len(old)
}

// ImportFiles syncs the source's tree into the archive: a file whose ETag
// (or, without ETags, size and modified time) changed is fetched and its
// bytes streamed into the blob store; what vanished is tombstoned; a
// folder is kept with its modified time. Batches are committed as they
// fill, so a killed import fetches at most one batch again.
func ImportFiles(ctx context.Context, src FileSource, a *archive.Archive, opts *ImportOptions) (*FilesImportResult, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	entries, tag, err := src.Walk(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the files of %s: %w", src.Root(), err)
	}
	desc := src.Describe()
	res := &FilesImportResult{DryRun: opts.DryRun}
	coll, err := a.FileCollection(ctx, desc, src.Root())
	if err != nil {
		return nil, err
	}
	old := map[string]archive.File{}
	if coll != 0 {
		fs, err := a.Files(ctx, coll, false)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			old[f.Path] = f
		}
	}
	var batch []archive.NewFile
	var batchBytes int64
	flush := func(deleted []string, tag string) error {
		if opts.DryRun || len(batch) == 0 && len(deleted) == 0 && tag == "" {
			return nil
		}
		r, err := a.SyncFiles(ctx, desc, src.Root(), batch, deleted, tag)
		if err != nil {
			return err
		}
		res.Added += r.Added
		res.Changed += r.Changed
		res.Deleted += r.Deleted
		batch, batchBytes = batch[:0], 0
		return nil
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Path] = true
		o, known := old[e.Path]
		if known && sameFile(o, e) {
			res.Unchanged++
			continue
		}
		if opts.DryRun {
			if known {
				res.Changed++
			} else {
				res.Added++
			}
			continue
		}
		if !e.IsDir {
			r, err := src.Open(ctx, e.Path)
			if err != nil {
				return res, fmt.Errorf("fetch %s: %w", e.Path, err)
			}
			hash, size, err := a.PutBlobStream(ctx, r)
			r.Close()
			if err != nil {
				return res, fmt.Errorf("fetch %s: %w", e.Path, err)
			}
			e.Hash, e.Size = hash, size
			res.Bytes += size
			batchBytes += size
		}
		batch = append(batch, e)
		if len(batch) >= filesBatch || batchBytes >= filesBatchBytes {
			if err := flush(nil, ""); err != nil {
				return res, err
			}
		}
	}
	var deleted []string
	for p := range old {
		if !seen[p] {
			deleted = append(deleted, p)
		}
	}
	if opts.DryRun {
		res.Deleted = len(deleted)
		return res, nil
	}
	if err := flush(deleted, tag); err != nil {
		return res, err
	}
	return res, nil
}

// FileTarget is one account's file tree at a target (a WebDAV folder).
// Paths are relative to the target's root, as in the archive.
type FileTarget interface {
	// Name is the target's stable identity in the export mapping.
	Name() string
	// Walk returns every file and folder below the root.
	Walk(ctx context.Context) ([]archive.NewFile, error)
	// Mkdir creates a folder (one already there is success).
	Mkdir(ctx context.Context, path string) error
	// Put streams size bytes to path: with ifMatch "" only when nothing
	// is there, else replacing the version with that ETag (a failed
	// precondition is [ErrDAVPrecondition]). It returns the new ETag.
	Put(ctx context.Context, path string, body io.Reader, size int64, ifMatch string) (string, error)
	// Open streams the bytes stored at path.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// Delete deletes path if its ETag is still ifMatch (folders: "").
	Delete(ctx context.Context, path, ifMatch string) error
	// Close releases the connections.
	Close() error
}

// FilesExportResult counts what [ExportFiles] did (or would do).
type FilesExportResult struct {
	Folders   int `json:"folders_created"`
	Put       int `json:"put"`
	Updated   int `json:"updated"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
	// Conflicts lists paths the user changed at the target (or had there
	// before the export, with other bytes): the target's version kept.
	Conflicts []string `json:"conflicts,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
}

// Changes is the number of changes made at the target.
func (r *FilesExportResult) Changes() int { return r.Folders + r.Put + r.Updated + r.Deleted }

// liveFiles returns every file and folder of the archive's live file
// collections by path (the tombstones too when withDeleted). Several
// collections share the target's root: their paths are merged.
func liveFiles(ctx context.Context, a *archive.Archive, withDeleted bool) ([]archive.File, error) {
	cols, err := a.FileCollections(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []archive.File
	for _, c := range cols {
		if c.Deleted && !withDeleted {
			continue
		}
		fs, err := a.Files(ctx, c.ID, withDeleted)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ExportFiles reconciles the archive's file trees onto t, convergent like
// [ExportDAV]:
//
//   - a folder is created (MKCOL) when missing; a new file is PUT with
//     If-None-Match: *, a changed one with If-Match and the ETag the
//     target had after the last PUT;
//   - a file the user changed at the target since (or had there before,
//     with other bytes) is a conflict: reported, the target's version
//     kept; equal bytes already there are adopted;
//   - a file deleted (or renamed) at the source is deleted at the target
//     only when the export created it and the target still has that
//     version; a folder only when the export created it and it is empty.
//
// The intent is recorded before each PUT, so a killed export re-runs
// without doubling anything. The target sets its own modified times and
// media types (WebDAV has no way to send them; Apache derives the type
// from the name).
func ExportFiles(ctx context.Context, a *archive.Archive, t FileTarget, opts *DAVExportOptions) (*FilesExportResult, error) {
	if opts == nil {
		opts = &DAVExportOptions{}
	}
	res := &FilesExportResult{DryRun: opts.DryRun}
	et, err := a.ExportTarget(ctx, t.Name())
	if err != nil {
		return nil, err
	}
	maps, err := et.Mappings(ctx, archive.KindFile)
	if err != nil {
		return nil, err
	}
	all, err := liveFiles(ctx, a, true)
	if err != nil {
		return nil, err
	}
	listed, err := t.Walk(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the target's files: %w", err)
	}
	there := map[string]archive.NewFile{}
	for _, f := range listed {
		there[f.Path] = f
	}
	x := &filesExport{ctx: ctx, a: a, et: et, t: t, opts: opts, res: res, maps: maps, there: there}
	// Live entries first, by path (folders before what they hold), then
	// the tombstones deepest first (files before their folders).
	var gone []archive.File
	for _, f := range all {
		if f.Deleted {
			gone = append(gone, f)
			continue
		}
		if err := x.live(f); err != nil {
			return res, err
		}
	}
	sort.SliceStable(gone, func(i, j int) bool { return gone[i].Path > gone[j].Path })
	for _, f := range gone {
		if err := x.gone(f); err != nil {
			return res, err
		}
	}
	if !opts.DryRun {
		if err := saveConflicts(ctx, et, "file-conflicts", res.Conflicts); err != nil {
			return res, err
		}
	}
	return res, nil
}

// saveConflicts records the conflicts of the last export under key in the
// export target's state (every run finds them again while they last), so
// that verify reports those items as conflicts — the target's version
// kept on purpose — and not as mismatches that would fail a cut-over.
func saveConflicts(ctx context.Context, et *archive.ExportTarget, key string, list []string) error {
	b, _ := json.Marshal(list)
	if len(list) == 0 {
		b = nil
	}
	return et.SetState(ctx, key, string(b))
}

// loadConflicts returns the conflicts saveConflicts recorded.
func loadConflicts(ctx context.Context, et *archive.ExportTarget, key string) (map[string]bool, error) {
	v, err := et.State(ctx, key)
	if err != nil || v == "" {
		return nil, err
	}
	var list []string
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return nil, fmt.Errorf("read the conflicts of the last export: %w", err)
	}
	out := map[string]bool{}
	for _, h := range list {
		out[h] = true
	}
	return out, nil
}

type filesExport struct {
	ctx   context.Context
	a     *archive.Archive
	et    *archive.ExportTarget
	t     FileTarget
	opts  *DAVExportOptions
	res   *FilesExportResult
	maps  map[int64]archive.Mapping
	there map[string]archive.NewFile
}

func (x *filesExport) record(m archive.Mapping) error {
	if x.opts.DryRun {
		return nil
	}
	x.maps[m.ArchiveID] = m
	return x.et.PutMappings(x.ctx, []archive.Mapping{m})
}

func (x *filesExport) unmap(id int64) error {
	if x.opts.DryRun {
		return nil
	}
	return x.et.DeleteMappings(x.ctx, archive.KindFile, []int64{id})
}

func (x *filesExport) lastETag(p string) (string, error) {
	return x.et.State(x.ctx, "file-etag:"+p)
}

func (x *filesExport) setETag(p, etag string) error {
	if x.opts.DryRun {
		return nil
	}
	return x.et.SetState(x.ctx, "file-etag:"+p, StrongETag(etag))
}

// put streams the archived bytes of f to the target; ok is false when
// the precondition failed (a conflict, recorded).
func (x *filesExport) put(f archive.File, ifMatch string) (bool, error) {
	if x.opts.DryRun {
		return true, nil
	}
	r, size, err := x.a.Blob(x.ctx, f.Hash)
	if err != nil {
		return false, err
	}
	defer r.Close()
	etag, err := x.t.Put(x.ctx, f.Path, r, size, ifMatch)
	if errors.Is(err, ErrDAVPrecondition) {
		x.res.Conflicts = append(x.res.Conflicts, f.Path)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("put %s: %w", f.Path, err)
	}
	return true, x.setETag(f.Path, etag)
}

// targetHash returns the SHA-256 of what the target stores at p.
func (x *filesExport) targetHash(p string) (string, error) {
	r, err := x.t.Open(x.ctx, p)
	if err != nil {
		return "", fmt.Errorf("get %s from the target: %w", p, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("get %s from the target: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (x *filesExport) live(f archive.File) error {
	m, mapped := x.maps[f.ID]
	cur, present := x.there[f.Path]
	if f.IsDir {
		switch {
		case present && cur.IsDir:
			if !mapped {
				return x.record(archive.Mapping{Kind: archive.KindFile, ArchiveID: f.ID, RemoteID: f.Path, ModSeq: f.ModSeq})
			}
			return nil
		case present:
			x.res.Conflicts = append(x.res.Conflicts, f.Path)
			return nil
		}
		created := !mapped || m.Created
		if err := x.record(archive.Mapping{Kind: archive.KindFile, ArchiveID: f.ID, RemoteID: f.Path, Created: created, ModSeq: f.ModSeq}); err != nil {
			return err
		}
		x.res.Folders++
		if !x.opts.DryRun {
			if err := x.t.Mkdir(x.ctx, f.Path); err != nil {
				return fmt.Errorf("create folder %s at the target: %w", f.Path, err)
			}
			x.there[f.Path] = archive.NewFile{Path: f.Path, IsDir: true}
		}
		return nil
	}
	if present && cur.IsDir {
		x.res.Conflicts = append(x.res.Conflicts, f.Path)
		return nil
	}
	var last string
	if mapped {
		var err error
		if last, err = x.lastETag(f.Path); err != nil {
			return err
		}
	}
	curTag := StrongETag(cur.ETag)
	switch {
	case !mapped && !present:
		// The intent first (Created, ModSeq 0): a run killed after the
		// PUT finds the mapping and knows the export made the file.
		m = archive.Mapping{Kind: archive.KindFile, ArchiveID: f.ID, RemoteID: f.Path, Created: true}
		if err := x.record(m); err != nil {
			return err
		}
		ok, err := x.put(f, "")
		if err != nil || !ok {
			if err == nil {
				err = x.unmap(f.ID)
			}
			return err
		}
		x.res.Put++
	case mapped && !present:
		// Deleted at the target since, or a killed run's PUT that never
		// happened: put it (back).
		ok, err := x.put(f, "")
		if err != nil || !ok {
			return err
		}
		x.res.Put++
	case !mapped || m.ModSeq == 0 || (m.ModSeq < f.ModSeq && curTag != last):
		// The user's own file under this name, a killed run's PUT whose
		// result was not recorded, or a file changed at the target since
		// the last export: equal bytes are adopted, others a conflict.
		if x.opts.DryRun {
			x.res.Unchanged++
			return nil
		}
		got, err := x.targetHash(f.Path)
		if err != nil {
			return err
		}
		switch {
		case got == f.Hash:
			x.res.Unchanged++
			if err := x.setETag(f.Path, curTag); err != nil {
				return err
			}
		case mapped && m.ModSeq == 0 && m.Created:
			// A killed run's intent: its PUT did not land whole (or
			// landed an older version): put now over what is there.
			ok, err := x.put(f, curTag)
			if err != nil || !ok {
				return err
			}
			x.res.Updated++
		default:
			x.res.Conflicts = append(x.res.Conflicts, f.Path)
			return nil
		}
		if !mapped {
			m = archive.Mapping{Kind: archive.KindFile, ArchiveID: f.ID, RemoteID: f.Path}
		}
	case m.ModSeq < f.ModSeq:
		ok, err := x.put(f, last)
		if err != nil || !ok {
			return err
		}
		x.res.Updated++
	default:
		x.res.Unchanged++
		return nil
	}
	m.ModSeq = f.ModSeq
	return x.record(m)
}

func (x *filesExport) gone(f archive.File) error {
	m, mapped := x.maps[f.ID]
	if !mapped {
		return nil
	}
	cur, present := x.there[f.Path]
	if m.Created && present && cur.IsDir == f.IsDir {
		if f.IsDir {
			// Only an empty folder goes: the user's own files below
			// it stay.
			for p := range x.there {
				if strings.HasPrefix(p, f.Path+"/") {
					return x.unmap(f.ID)
				}
			}
			x.res.Deleted++
			if !x.opts.DryRun {
				if err := x.t.Delete(x.ctx, f.Path, ""); err != nil {
					return fmt.Errorf("delete folder %s: %w", f.Path, err)
				}
				delete(x.there, f.Path)
			}
			return x.unmap(f.ID)
		}
		last, err := x.lastETag(f.Path)
		if err != nil {
			return err
		}
		if StrongETag(cur.ETag) != last {
			x.res.Conflicts = append(x.res.Conflicts, f.Path)
			return x.unmap(f.ID)
		}
		x.res.Deleted++
		if !x.opts.DryRun {
			err := x.t.Delete(x.ctx, f.Path, last)
			switch {
			case errors.Is(err, ErrDAVPrecondition):
				x.res.Deleted--
				x.res.Conflicts = append(x.res.Conflicts, f.Path)
			case err != nil:
				return fmt.Errorf("delete %s: %w", f.Path, err)
			default:
				delete(x.there, f.Path)
			}
		}
	}
	return x.unmap(f.ID)
}

// FilesVerifyReport is what [VerifyFiles] found.
type FilesVerifyReport struct {
	// Matched counts files equal by path, size and SHA-256, and folders
	// present.
	Matched    int             `json:"matched"`
	Mismatches []FilesMismatch `json:"mismatches,omitempty"`
	// Conflicts are paths that differ because the last export found them
	// changed at the target and kept the target's version: reported, not
	// mismatches.
	Conflicts []string `json:"conflicts,omitempty"`
}

// FilesMismatch is one archived file or folder the target lacks or
// holds with other bytes.
type FilesMismatch struct {
	// Kind is "missing", "size" or "content".
	Kind string `json:"kind"`
	Path string `json:"path"`
}

// VerifyFiles compares the archive's live files with the target: every
// folder present, every file present with the same size and SHA-256 (its
// bytes are read back, unless a verify found them equal under the strong
// ETag the target still lists: verifiedCache). Files only the target has
// are not reported.
func VerifyFiles(ctx context.Context, a *archive.Archive, t FileTarget) (*FilesVerifyReport, error) {
	all, err := liveFiles(ctx, a, false)
	if err != nil {
		return nil, err
	}
	listed, err := t.Walk(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the target's files: %w", err)
	}
	there := map[string]archive.NewFile{}
	for _, f := range listed {
		there[f.Path] = f
	}
	x := &filesExport{ctx: ctx, t: t}
	rep := &FilesVerifyReport{}
	var conflicts map[string]bool
	et, err := a.ExportTarget(ctx, t.Name())
	if err == nil {
		if conflicts, err = loadConflicts(ctx, et, "file-conflicts"); err != nil {
			return nil, err
		}
	} else if errors.Is(err, archive.ErrNotFound) {
		et = nil
	} else {
		return nil, err
	}
	cache, err := loadVerified(ctx, et, "file-verified")
	if err != nil {
		return nil, err
	}
	for _, f := range all {
		cur, ok := there[f.Path]
		n := len(rep.Mismatches)
		switch {
		case !ok || cur.IsDir != f.IsDir:
			rep.Mismatches = append(rep.Mismatches, FilesMismatch{"missing", f.Path})
		case f.IsDir:
			rep.Matched++
		case cur.Size != f.Size:
			rep.Mismatches = append(rep.Mismatches, FilesMismatch{"size", f.Path})
		case cache.ok(f.Path, cur.ETag, f.Hash):
			rep.Matched++
		default:
			h, err := x.targetHash(f.Path)
			if err != nil {
				return rep, err
			}
			if h != f.Hash {
				rep.Mismatches = append(rep.Mismatches, FilesMismatch{"content", f.Path})
			} else {
				cache.equal(f.Path, cur.ETag, f.Hash)
				rep.Matched++
			}
		}
		if len(rep.Mismatches) > n && conflicts[f.Path] {
			rep.Mismatches = rep.Mismatches[:n]
			rep.Conflicts = append(rep.Conflicts, f.Path)
		}
	}
	// Best effort, as in VerifyDAV.
	_ = cache.save(ctx, et)
	return rep, nil
}
