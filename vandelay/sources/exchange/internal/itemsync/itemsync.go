// Package itemsync applies one folder's item changes, as Graph delta and
// EWS SyncFolderItems report them, to an archive run. Both protocols say
// per item "created or changed, with these properties" or "removed"; the
// archive's locations (keyed by the item id) decide what is new, so that
// a repeated or resumed change set adds nothing twice.
package itemsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Item is one change of a folder.
type Item struct {
	// Key is the source's item id, the location key in the archive.
	Key string
	// Removed reports that the item left the folder (deleted or moved).
	Removed bool
	// Keywords are the item's JMAP keywords ($seen, $flagged, categories).
	Keywords []string
	// Received is the item's received date.
	Received time.Time
}

// Fetch fetches the MIME bytes of keys and hands each to deliver (which
// is safe for concurrent use). An item that vanished meanwhile is left
// out without error.
type Fetch func(ctx context.Context, keys []string, deliver func(key string, body []byte) error) error

// Known maps item keys to the hash of the message they were archived
// with, across all folders: a message moved with an id that survives the
// move (Graph's immutable ids) is then recorded without fetching it again.
type Known map[string]string

// Stats are the counts of one Apply.
type Stats struct {
	Added, Removed, Reflagged, Fetched int
}

// Apply records items in the mailbox. With full set, items are the
// folder's complete contents (a first sync or a resync after an expired
// cursor), and copies the archive holds that are not among them are
// removed.
func Apply(ctx context.Context, run *archive.Run, mailboxID int64, items []Item, full bool, known Known, fetch Fetch, prog vandelay.Progress) (Stats, error) {
	var st Stats
	locs, err := run.Locations(ctx, mailboxID)
	if err != nil {
		return st, err
	}
	// The last change of an id wins (a delta may list an item twice).
	last := map[string]*Item{}
	var order []string
	for i := range items {
		it := &items[i]
		if _, ok := last[it.Key]; !ok {
			order = append(order, it.Key)
		}
		last[it.Key] = it
	}
	if full {
		for k := range locs {
			if _, ok := last[k]; !ok {
				if err := run.Remove(ctx, mailboxID, k); err != nil {
					return st, err
				}
				st.Removed++
			}
		}
	}
	var need []string
	for _, k := range order {
		it := last[k]
		loc, have := locs[k]
		switch {
		case it.Removed:
			if have {
				if err := run.Remove(ctx, mailboxID, k); err != nil {
					return st, err
				}
				st.Removed++
			}
		case have:
			if !slices.Equal(loc.Keywords, archive.NormalizeKeywords(it.Keywords)) {
				if err := run.SetKeywords(ctx, mailboxID, k, it.Keywords, 0); err != nil {
					return st, err
				}
				st.Reflagged++
			}
		default:
			if h, ok := known[k]; ok {
				added, err := run.AddKnown(ctx, mailboxID, k, h, it.Keywords, 0)
				if err != nil {
					return st, err
				}
				if added {
					st.Added++
					continue
				}
			}
			need = append(need, k)
		}
	}
	if len(need) == 0 {
		return st, nil
	}
	prog.Discovered(len(need), 0)
	err = fetch(ctx, need, func(key string, body []byte) error {
		it := last[key]
		if it == nil {
			return fmt.Errorf("server sent item %q that was not asked for", key)
		}
		h := archive.Hash(body)
		if err := run.Add(ctx, mailboxID, key, &archive.NewMessage{Body: body, Hash: h, ReceivedAt: it.Received, Keywords: it.Keywords}); err != nil {
			return err
		}
		prog.Done(1, int64(len(body)))
		return nil
	})
	st.Fetched = len(need)
	st.Added += len(need)
	return st, err
}

// Category turns an Outlook category name into a JMAP keyword (RFC 8621
// 4.1.1: printable ASCII without ( ) { ] % * " \ and space): characters
// outside that set become "_", so "Red category" is "Red_category". The
// mapping is lossy for non-ASCII names; docs/import.md says so.
func Category(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r > 0x20 && r < 0x7f && !strings.ContainsRune(`(){]%*"\`, r) {
			b.WriteRune(r)
		} else if !unicode.IsControl(r) || r == ' ' {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// separators are the hierarchy separators an Exchange mailbox's archive
// paths may use, in order of preference.
var separators = []string{"/", ".", "\\", "|"}

// Separator picks the hierarchy separator for a mailbox whose folders
// have these display names: "/" unless a name contains it, else the
// first of ".", "\", "|" that no name contains, so that a folder named
// "Q1/Q2" is kept whole, as an IMAP source keeps a name that contains
// a character other than its server's delimiter (the archive stores the
// separator with each mailbox, and the export creates one JMAP mailbox
// per level by name). Only when every candidate occurs is "/" kept and
// the names' "/" replaced (Name does it); the log says so.
func Separator(names []string) string {
	for _, sep := range separators {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, sep) }) {
			return sep
		}
	}
	return "/"
}

// Name is a folder's display name as one level of a path with sep:
// unchanged, unless it contains sep (Separator found no free one).
func Name(displayName, sep string) string {
	return strings.ReplaceAll(displayName, sep, "_")
}

// Probe reports what the next import would find, for Graph and EWS
// alike: every folder in scope with its message count, and for a folder
// whose archive cursor holds a delta link or SyncState, whether touched
// (one cheap request of the API's own, no item fetched) says it changed.
// Folders without a cursor are new. info gives a folder's path and
// message count.
func Probe[F any](folders []F, info func(F) (string, int64), inScope func(string) bool, known []archive.MailboxCursor, touched func(f F, cursor string) (bool, error)) (*vandelay.ProbeResult, error) {
	cursors := map[string]archive.MailboxCursor{}
	for _, k := range known {
		cursors[k.Path] = k
	}
	var src []vandelay.ProbeMailbox
	for _, f := range folders {
		path, n := info(f)
		if !inScope(path) {
			continue
		}
		pm := vandelay.ProbeMailbox{Path: path, Messages: n}
		if k, ok := cursors[path]; ok && k.Cursor.Extra != "" {
			t, err := touched(f, k.Cursor.Extra)
			if err != nil {
				return nil, fmt.Errorf("probe %s: %w", path, err)
			}
			pm.Touched = t
		}
		src = append(src, pm)
	}
	return vandelay.CompareMailboxes(src, known), nil
}
