package vandelay

import (
	"sort"
	"strconv"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// ProbeMailbox is one in-scope mailbox as a cheap probe sees it at the
// source, without selecting it or fetching anything.
type ProbeMailbox struct {
	// Path is the mailbox's full UTF-8 path, as the archive stores it.
	Path string
	// Messages is the number of messages (IMAP STATUS MESSAGES, POP3
	// STAT, Maildir files).
	Messages int64
	// UIDValidity, UIDNext and HighestModSeq are IMAP STATUS counters;
	// zero for other sources (HighestModSeq zero without CONDSTORE).
	UIDValidity, UIDNext, HighestModSeq uint64
	// Touched reports that the source itself says the mailbox changed
	// since the archive's last sync of it (Maildir: a directory modified
	// after the cursor was saved), even if the count is equal.
	Touched bool
	// Size is the mailbox's size in bytes when the probe could ask for it
	// cheaply (IMAP STATUS SIZE, POP3 STAT, Maildir file sizes); SizeFrom
	// names where it came from ("status-size", "stat", "files"), "" when
	// the size is unknown.
	Size     int64
	SizeFrom string
}

// ProbeResult is what a probe found changed at a source since the
// archive's last import. Message counts are estimates from counters
// (Approx): a message moved between two mailboxes shows as one new and
// one deleted, a flag change only as a changed mailbox.
type ProbeResult struct {
	// NotImported is set when the archive has no completed sync to compare
	// with (no archive, or no cursor at all); the counts are then totals.
	NotImported bool `json:"not_imported,omitempty"`
	// Mailboxes and Messages are the source's in-scope totals.
	Mailboxes int   `json:"mailboxes"`
	Messages  int64 `json:"messages"`
	// Bytes is the in-scope total size, or -1 when the source cannot tell
	// it cheaply (IMAP without STATUS=SIZE, JMAP). BytesFrom says where it
	// comes from, as [SourceCheck.SizeFrom] does ("status-size", "stat",
	// "files", "quota").
	Bytes     int64  `json:"bytes"`
	BytesFrom string `json:"bytes_from,omitempty"`
	// New and Deleted estimate messages added and removed at the source.
	New     int64 `json:"new,omitempty"`
	Deleted int64 `json:"deleted,omitempty"`
	// MailboxesChanged counts mailboxes whose counters differ from the
	// archive's cursors (new or expunged messages, flag changes, a new
	// UIDVALIDITY), including added and removed ones.
	MailboxesChanged int `json:"mailboxes_changed,omitempty"`
	// Added, Removed and Renamed name folders created, deleted or renamed
	// (as "old → new") at the source.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Renamed []string `json:"renamed,omitempty"`
	// Approx is true when the counts are estimates (always, for now).
	Approx bool `json:"approx,omitempty"`
	// Since is the time of the archive's last complete import.
	Since time.Time `json:"since,omitzero"`
}

// Changed reports whether the probe found anything to import.
func (r *ProbeResult) Changed() bool {
	return r.NotImported || r.New > 0 || r.Deleted > 0 || r.MailboxesChanged > 0 ||
		len(r.Added)+len(r.Removed)+len(r.Renamed) > 0
}

// CompareMailboxes compares the source's mailboxes (a probe's LIST/STATUS,
// STAT or directory scan) with the archive's cursors (archive.Overview)
// and estimates what the next import would find.
//
// For IMAP-like counters (UIDValidity set) with an equal UIDVALIDITY:
// UIDNEXT − cursor.Next messages were appended, the cursor's message count
// (archive.Cursor.Extra, as the IMAP source saves it; else the archive's
// own count) plus those minus MESSAGES were expunged, and a different
// HIGHESTMODSEQ alone means re-flagged messages. A different UIDVALIDITY
// counts the mailbox as changed and the growth of its count as new. For
// count-only sources (POP3, Maildir) the difference between the count and
// the cursor's saved count (Extra, else the archive's) is new or deleted,
// and Touched marks the mailbox changed. A
// vanished mailbox and a new one with the same UIDVALIDITY are a rename.
func CompareMailboxes(src []ProbeMailbox, known []archive.MailboxCursor) *ProbeResult {
	r := &ProbeResult{Approx: true, Mailboxes: len(src)}
	byPath := map[string]*archive.MailboxCursor{}
	synced := false
	for i := range known {
		k := &known[i]
		if !k.Selectable {
			continue
		}
		byPath[k.Path] = k
		if !k.Cursor.Updated.IsZero() {
			synced = true
			if k.Cursor.Updated.After(r.Since) {
				r.Since = k.Cursor.Updated
			}
		}
	}
	seen := map[string]bool{}
	var added []ProbeMailbox
	for _, m := range src {
		r.Messages += m.Messages
		r.addSize(m)
		k := byPath[m.Path]
		if k == nil {
			added = append(added, m)
			continue
		}
		seen[m.Path] = true
		r.compareOne(m, k)
	}
	// Renames: a vanished mailbox whose UIDVALIDITY reappears elsewhere.
	gone := map[string]*archive.MailboxCursor{}
	for p, k := range byPath {
		if !seen[p] {
			gone[p] = k
		}
	}
	for _, m := range added {
		var from *archive.MailboxCursor
		if m.UIDValidity != 0 {
			ref := "uidvalidity:" + strconv.FormatUint(m.UIDValidity, 10)
			for _, k := range gone {
				if k.SourceRef == ref || (k.Cursor.Validity == m.UIDValidity && k.SourceRef == "") {
					from = k
					break
				}
			}
		}
		if from != nil {
			delete(gone, from.Path)
			r.Renamed = append(r.Renamed, from.Path+" → "+m.Path)
			r.compareOne(m, from)
			continue
		}
		r.Added = append(r.Added, m.Path)
		r.MailboxesChanged++
		r.New += m.Messages
	}
	for p, k := range gone {
		r.Removed = append(r.Removed, p)
		r.MailboxesChanged++
		r.Deleted += max(0, k.Messages)
	}
	sort.Strings(r.Added)
	sort.Strings(r.Removed)
	sort.Strings(r.Renamed)
	if !synced {
		r.NotImported = true
	}
	return r
}

// NeverSynced reports whether the archive's cursors record no completed
// sync: the probe's counts are then the source's totals, and a probe that
// can ask the size cheaply should (the plan shows the account's size
// before its first import).
func NeverSynced(known []archive.MailboxCursor) bool {
	for _, k := range known {
		if k.Selectable && !k.Cursor.Updated.IsZero() {
			return false
		}
	}
	return true
}

// addSize adds one mailbox's size to the total: the total is known only
// when every mailbox's size is (one unknown makes it -1).
func (r *ProbeResult) addSize(m ProbeMailbox) {
	switch {
	case r.Bytes < 0:
	case m.SizeFrom == "":
		r.Bytes, r.BytesFrom = -1, ""
	default:
		r.Bytes += m.Size
		r.BytesFrom = m.SizeFrom
	}
}

// compareOne adds one mailbox's estimate.
func (r *ProbeResult) compareOne(m ProbeMailbox, k *archive.MailboxCursor) {
	c := k.Cursor
	changed := m.Touched
	switch {
	case c.Updated.IsZero():
		// Never synced completely: the growth of the count is new.
		changed = true
		r.New += max(0, m.Messages-max(0, k.Messages))
	case m.UIDValidity != 0 && c.Validity != 0 && m.UIDValidity != c.Validity:
		changed = true
		d := m.Messages - max(0, k.Messages)
		r.New += max(0, d)
		r.Deleted += max(0, -d)
	case m.UIDValidity != 0 && c.Validity != 0:
		old := k.Messages
		if n, err := strconv.ParseInt(c.Extra, 10, 64); err == nil {
			old = n
		}
		old = max(0, old)
		appended := int64(0)
		if m.UIDNext > c.Next {
			appended = int64(m.UIDNext - c.Next)
		}
		expunged := max(0, old+appended-m.Messages)
		r.New += appended
		r.Deleted += expunged
		if appended > 0 || expunged > 0 || m.Messages != old ||
			(m.HighestModSeq != 0 && c.ModSeq != 0 && m.HighestModSeq != c.ModSeq) {
			changed = true
		}
	default:
		old := k.Messages
		if n, err := strconv.ParseInt(c.Extra, 10, 64); err == nil {
			old = n // POP3 and Maildir save their count there too
		}
		d := m.Messages - max(0, old)
		r.New += max(0, d)
		r.Deleted += max(0, -d)
		if d != 0 {
			changed = true
		}
	}
	if changed {
		r.MailboxesChanged++
	}
}
