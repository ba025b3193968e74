package executor

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// closeArchive closes an archive that an import or export wrote and
// saves its summary next to it (ACCOUNT.db.json), stamped with the
// database file's size and modification time after the close, so that
// plan reads a JSON file instead of querying every archive. A summary
// whose stamp no longer matches (someone else wrote the archive since) is
// ignored.
func (x *Executor) closeArchive(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) {
	o, oerr := a.Overview(context.WithoutCancel(ctx))
	a.Close()
	path := x.archivePath(acct) + summarySuffix
	if oerr != nil {
		log.Debug("archive summary", "err", oerr)
		_ = os.Remove(path)
		return
	}
	sum := archiveSummary{Info: archiveInfo(o)}
	sum.DB, sum.WAL = fileStamps(x.archivePath(acct))
	b, err := json.Marshal(&sum)
	if err == nil {
		err = state.WriteFileAtomic(path, b, 0o600)
	}
	if err != nil {
		log.Debug("archive summary", "err", err)
		_ = os.Remove(path)
	}
}

// summarySuffix names an archive's summary file.
const summarySuffix = ".json"

// archiveSummary is the cached overview of one archive.
type archiveSummary struct {
	Info engine.ArchiveInfo `json:"info"`
	DB   fileStamp          `json:"db"`
	WAL  fileStamp          `json:"wal"`
}

// fileStamp identifies a version of a file; the zero value is "absent".
type fileStamp struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime_ns"`
}

// fileStamps returns the stamps of the archive file and its WAL.
func fileStamps(path string) (db, wal fileStamp) {
	for _, x := range []struct {
		p string
		s *fileStamp
	}{{path, &db}, {path + "-wal", &wal}} {
		// An empty WAL (a reader leaves one behind) holds nothing: absent.
		if fi, err := os.Stat(x.p); err == nil && (fi.Size() > 0 || x.s == &db) {
			*x.s = fileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
		}
	}
	return db, wal
}

// ArchiveReader implements engine.ArchiveReader over the archive
// directory: one listing of the directory, then a shared, non-blocking
// open of each archive that exists (or its cached summary).
type ArchiveReader struct {
	x     *Executor
	once  sync.Once
	names map[string]bool
}

var _ engine.ArchiveReader = (*ArchiveReader)(nil)

// NewArchiveReader returns the reader of the archives in dir. A nil log
// discards.
func NewArchiveReader(m *plan.Migration, dir string, log *slog.Logger) *ArchiveReader {
	return &ArchiveReader{x: New(m, dir, log)}
}

// Has looks the account's archive up in one listing of the directory, read
// at the first call: no per-account system call for accounts without one.
func (r *ArchiveReader) Has(acct *plan.Account) bool {
	r.once.Do(func() {
		r.names = map[string]bool{}
		ents, err := os.ReadDir(r.x.dir)
		if err != nil {
			return // no directory: no archives
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".db") {
				r.names[e.Name()] = true
			}
		}
	})
	if len(r.names) == 0 {
		return false // the usual case before the first import: no work per account
	}
	return r.names[archiveName(acct)]
}

// Archive reads the account's archive with a shared, non-blocking lock: a
// running import or export (which holds it exclusively) is reported as
// InUse, never waited for.
func (r *ArchiveReader) Archive(ctx context.Context, acct *plan.Account) (engine.ArchiveInfo, error) {
	path := r.x.archivePath(acct)
	if b, err := os.ReadFile(path + summarySuffix); err == nil {
		var sum archiveSummary
		db, wal := fileStamps(path)
		if json.Unmarshal(b, &sum) == nil && sum.DB == db && sum.WAL == wal {
			return sum.Info, nil
		}
	}
	a, err := archive.Open(ctx, path, &archive.Options{ReadOnly: true, Logger: r.x.log})
	if errors.Is(err, archive.ErrInUse) {
		return engine.ArchiveInfo{InUse: true}, nil
	}
	if err != nil {
		return engine.ArchiveInfo{}, err
	}
	defer a.Close()
	o, err := a.Overview(ctx)
	if err != nil {
		return engine.ArchiveInfo{}, err
	}
	return archiveInfo(o), nil
}

// dataTarget reports whether an export target's name is one of the
// non-mail targets' (vandelay.SieveTarget, DAVTarget, FileTarget Name).
func dataTarget(name string) bool {
	for _, p := range []string{"managesieve ", "carddav ", "caldav ", "webdav "} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// archiveInfo summarises an overview for the engine. Of several export
// targets the most recently written one is the account's current target.
func archiveInfo(o *archive.Overview) engine.ArchiveInfo {
	info := engine.ArchiveInfo{Mailboxes: o.Stats.Mailboxes, Messages: o.Stats.Messages, Bytes: o.Stats.Bytes,
		Unexported: o.Stats.Messages}
	for _, c := range o.Cursors {
		if !c.Cursor.Updated.IsZero() {
			info.Cursors++
		}
	}
	if o.Source != nil {
		info.LastImport, info.LastRun = o.Source.LastComplete, o.Source.LastRun
	}
	var best *archive.ExportStatus
	for i := range o.Exports {
		if dataTarget(o.Exports[i].Name) {
			// The Sieve, DAV and file exports write their mappings after
			// the mail's: taken for the current target, their zero emails
			// made every account moving those kinds look unexported, and
			// apply caught up forever instead of cutting over.
			continue
		}
		if e := &o.Exports[i]; best == nil || !e.LastExport.Before(best.LastExport) {
			best = e
		}
	}
	if best != nil {
		info.LastExport, info.Exported = best.LastExport, best.Exported
		info.Unexported, info.ExportChanged, info.ExportDeleted = best.Unexported, best.Changed, best.Deleted
	}
	return info
}
