package maildir

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Probe looks cheaply at the Maildir for changes since the archive's last
// import: it lists the folders and counts the files in new/ and cur/ (no
// message is read), and marks a folder changed when new/ or cur/ was
// modified after the folder's cursor was saved (flag changes rename files
// in cur/). known are archive.Overview's Cursors; the scope is Sync's.
// Before the first import (no cursor saved) it also adds up the files'
// sizes.
func Probe(ctx context.Context, opts *Options, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	src, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	folders, err := s.folders()
	if err != nil {
		return nil, err
	}
	saved := map[string]time.Time{}
	for _, k := range known {
		saved[k.Path] = k.Cursor.Updated
	}
	// Before the first import the plan shows the account's size: one stat
	// per file, still no message read.
	sized := vandelay.NeverSynced(known)
	subs := s.subscriptions()
	var list []vandelay.ProbeMailbox
	for _, f := range folders {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !s.cfg.InScope(f.path) || (s.cfg.SubscribedOnly && !subs[f.path] && f.path != "INBOX") {
			continue
		}
		files, err := listFiles(f.dir)
		if err != nil {
			return nil, err
		}
		pm := vandelay.ProbeMailbox{Path: f.path, Messages: int64(len(files))}
		if sized {
			pm.SizeFrom = "files"
			for _, mf := range files {
				// A file gone since the listing (delivered mail moved
				// from new/ to cur/) is counted without its size.
				if fi, err := os.Stat(mf.file); err == nil {
					pm.Size += fi.Size()
				}
			}
		}
		if v, ok := strings.CutPrefix(f.ref, "uidvalidity:"); ok {
			pm.UIDValidity, _ = strconv.ParseUint(v, 10, 32) // for renames only
		}
		if at, ok := saved[f.path]; ok && !at.IsZero() {
			for _, sub := range []string{"new", "cur"} {
				if fi, err := os.Stat(filepath.Join(f.dir, sub)); err == nil && fi.ModTime().Truncate(time.Second).After(at) {
					pm.Touched = true
				}
			}
		}
		list = append(list, pm)
	}
	return vandelay.CompareMailboxes(list, known), nil
}
