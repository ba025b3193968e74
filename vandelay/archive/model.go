package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"sort"
	"strings"
	"time"
)

// Roles are the special-use roles of mailboxes, named as JMAP names them
// (RFC 8621 2; IANA "IMAP Mailbox Name Attributes"). The empty string is no
// role.
const (
	RoleInbox     = "inbox"
	RoleSent      = "sent"
	RoleDrafts    = "drafts"
	RoleTrash     = "trash"
	RoleJunk      = "junk"
	RoleArchive   = "archive"
	RoleAll       = "all"
	RoleFlagged   = "flagged"
	RoleImportant = "important"
)

// Source describes where an archive's contents come from. Kind, Endpoint and
// Account identify it for the source-change guard; Login is informational
// (a master login and a direct login to the same account are one source).
type Source struct {
	ID       int64
	Kind     string // "imap", "pop3", "maildir", "takeout"
	Endpoint string // host:port, a directory or a file
	Account  string // the account whose mail this is
	Login    string // the user name that logged in (may be a master user)
	// FirstRun, LastRun and LastComplete are the start of the first run,
	// the start of the latest run and the end of the latest complete run.
	FirstRun, LastRun, LastComplete time.Time
}

// Same reports whether s and o name the same source for the guard.
func (s Source) Same(o Source) bool {
	return s.Kind == o.Kind && s.Endpoint == o.Endpoint && strings.EqualFold(s.Account, o.Account)
}

// Mailbox is one folder (or Gmail label) of the archive.
type Mailbox struct {
	ID int64
	// Path is the full name at the source as UTF-8, with Sep between levels.
	Path string
	// Name is the last level of Path.
	Name string
	// Sep is the source's hierarchy separator ("" for a flat namespace).
	Sep string
	// ParentID is the parent mailbox, 0 at the top level.
	ParentID int64
	// Role is a Role* constant or "".
	Role string
	// Subscribed reports the source's subscription.
	Subscribed bool
	// Selectable is false for a parent that exists only as a path prefix
	// (IMAP \Noselect or \NonExistent); it holds no messages but exporters
	// must create it so that its children have a parent.
	Selectable bool
	// ModSeq is the archive change counter of the last change to this row.
	ModSeq int64
	// Created is when the archive first saw the mailbox; Deleted is when it
	// disappeared at the source (zero while it exists): a tombstone.
	Created, Deleted time.Time
}

// Message is one distinct message: the same bytes in several mailboxes (or
// Gmail labels) are one Message with several MailboxIDs.
type Message struct {
	ID int64
	// Blob is the lowercase hex SHA-256 of the raw bytes; see [Archive.Blob].
	Blob string
	// Size is the byte length of the blob.
	Size int64
	// ReceivedAt is the internal date (IMAP INTERNALDATE, JMAP receivedAt).
	ReceivedAt time.Time
	// Keywords are JMAP keywords ($seen, $flagged, custom ones as found),
	// sorted; the union of the keywords of all source copies.
	Keywords []string
	// MailboxIDs are the live mailboxes holding the message, sorted. It may
	// be empty for a live message in the middle of a run (a move in
	// progress); exporters skip such messages.
	MailboxIDs []int64
	// ModSeq is the archive change counter of the last change to the
	// message, its keywords or its membership.
	ModSeq int64
	// Created is when the archive first saw the message; Deleted is when it
	// disappeared from every mailbox of the source (zero while it exists).
	Created, Deleted time.Time
}

// MailboxFilter selects mailboxes for [Archive.Mailboxes]. A nil filter
// means every live mailbox.
type MailboxFilter struct {
	// IncludeDeleted also returns tombstones (Deleted set).
	IncludeDeleted bool
	// ChangedSince returns only rows with ModSeq > ChangedSince.
	ChangedSince int64
}

// Mailboxes returns mailboxes in hierarchy order: every parent before its
// children, siblings by path.
func (a *Archive) Mailboxes(ctx context.Context, f *MailboxFilter) ([]*Mailbox, error) {
	if f == nil {
		f = &MailboxFilter{}
	}
	q := `SELECT id, path, name, sep, COALESCE(parent_id, 0), role, subscribed, selectable, modseq, created_at, deleted_at
		FROM mailboxes WHERE modseq > ?`
	if !f.IncludeDeleted {
		q += " AND deleted_at IS NULL"
	}
	rows, err := a.db.QueryContext(ctx, q, f.ChangedSince)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []*Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	return hierarchyOrder(out), nil
}

// Mailbox returns one mailbox (live or tombstone) by id.
func (a *Archive) Mailbox(ctx context.Context, id int64) (*Mailbox, error) {
	row := a.db.QueryRowContext(ctx, `SELECT id, path, name, sep, COALESCE(parent_id, 0), role, subscribed, selectable, modseq, created_at, deleted_at
		FROM mailboxes WHERE id = ?`, id)
	m, err := scanMailbox(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %d: %w", id, ErrNotFound)
	}
	return m, err
}

// ErrNotFound is returned for an id or hash the archive does not hold.
var ErrNotFound = errors.New("not found in archive")

type scanner interface{ Scan(...any) error }

func scanMailbox(r scanner) (*Mailbox, error) {
	var m Mailbox
	var sub, sel int
	var created int64
	var deleted sql.NullInt64
	if err := r.Scan(&m.ID, &m.Path, &m.Name, &m.Sep, &m.ParentID, &m.Role, &sub, &sel, &m.ModSeq, &created, &deleted); err != nil {
		return nil, err
	}
	m.Subscribed, m.Selectable = sub != 0, sel != 0
	m.Created, m.Deleted = time.Unix(created, 0).UTC(), unixOrZero(deleted)
	return &m, nil
}

// hierarchyOrder sorts parents before children (depth first, by path).
func hierarchyOrder(ms []*Mailbox) []*Mailbox {
	byID := map[int64]*Mailbox{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	depth := func(m *Mailbox) int {
		d := 0
		for p := m.ParentID; p != 0 && d < 1000; d++ {
			pm, ok := byID[p]
			if !ok {
				break
			}
			p = pm.ParentID
		}
		return d
	}
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := depth(ms[i]), depth(ms[j])
		if di != dj {
			return di < dj
		}
		return ms[i].Path < ms[j].Path
	})
	return ms
}

// MessageFilter selects messages for [Archive.Messages]. A nil filter means
// every live message.
type MessageFilter struct {
	// ChangedSince returns only messages with ModSeq > ChangedSince.
	ChangedSince int64
	// MailboxID returns only messages in that mailbox (live ones).
	MailboxID int64
	// IncludeDeleted also returns tombstones; OnlyDeleted returns only them.
	IncludeDeleted, OnlyDeleted bool
}

const pageSize = 500

// Messages iterates over messages in id order. It reads in pages, so the
// caller may write to the archive (e.g. export mappings) while iterating.
// Iteration stops at the first error, which is yielded.
func (a *Archive) Messages(ctx context.Context, f *MessageFilter) iter.Seq2[*Message, error] {
	if f == nil {
		f = &MessageFilter{}
	}
	return func(yield func(*Message, error) bool) {
		var after int64
		for {
			page, err := a.messagePage(ctx, f, after)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, m := range page {
				if !yield(m, nil) {
					return
				}
				after = m.ID
			}
			if len(page) < pageSize {
				return
			}
		}
	}
}

func (a *Archive) messagePage(ctx context.Context, f *MessageFilter, after int64) ([]*Message, error) {
	q := `SELECT id, blob, size, received_at, keywords, modseq, created_at, deleted_at FROM messages m
		WHERE id > ? AND modseq > ?`
	args := []any{after, f.ChangedSince}
	switch {
	case f.OnlyDeleted:
		q += " AND deleted_at IS NOT NULL"
	case !f.IncludeDeleted:
		q += " AND deleted_at IS NULL"
	}
	if f.MailboxID != 0 {
		q += " AND EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.mailbox_id = ?)"
		args = append(args, f.MailboxID)
	}
	q += fmt.Sprintf(" ORDER BY id LIMIT %d", pageSize)
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	// Membership of the page in one query.
	idx := map[int64]*Message{}
	for _, m := range out {
		idx[m.ID] = m
	}
	mrows, err := a.db.QueryContext(ctx, `SELECT DISTINCT message_id, mailbox_id FROM locations
		WHERE message_id BETWEEN ? AND ? ORDER BY message_id, mailbox_id`, out[0].ID, out[len(out)-1].ID)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var mid, bid int64
		if err := mrows.Scan(&mid, &bid); err != nil {
			return nil, err
		}
		if m := idx[mid]; m != nil {
			m.MailboxIDs = append(m.MailboxIDs, bid)
		}
	}
	return out, mrows.Err()
}

func scanMessage(r scanner) (*Message, error) {
	var m Message
	var kw string
	var recv, created int64
	var deleted sql.NullInt64
	if err := r.Scan(&m.ID, &m.Blob, &m.Size, &recv, &kw, &m.ModSeq, &created, &deleted); err != nil {
		return nil, err
	}
	m.Keywords = splitKeywords(kw)
	m.ReceivedAt, m.Created, m.Deleted = time.Unix(recv, 0).UTC(), time.Unix(created, 0).UTC(), unixOrZero(deleted)
	return &m, nil
}

// Message returns one message (live or tombstone) by id, with its mailboxes.
func (a *Archive) Message(ctx context.Context, id int64) (*Message, error) {
	m, err := scanMessage(a.db.QueryRowContext(ctx,
		`SELECT id, blob, size, received_at, keywords, modseq, created_at, deleted_at FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", id, err)
	}
	rows, err := a.db.QueryContext(ctx, `SELECT DISTINCT mailbox_id FROM locations WHERE message_id = ? ORDER BY mailbox_id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		m.MailboxIDs = append(m.MailboxIDs, b)
	}
	return m, rows.Err()
}

// Source returns the archive's active source, or nil before the first run.
func (a *Archive) Source(ctx context.Context) (*Source, error) {
	return activeSource(ctx, a.db)
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func activeSource(ctx context.Context, db querier) (*Source, error) {
	var s Source
	var first int64
	var last, complete sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT id, kind, endpoint, account, login, first_run_at, last_run_at, last_complete_at
		FROM sources WHERE active = 1 ORDER BY id DESC LIMIT 1`).
		Scan(&s.ID, &s.Kind, &s.Endpoint, &s.Account, &s.Login, &first, &last, &complete)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	s.FirstRun, s.LastRun, s.LastComplete = time.Unix(first, 0).UTC(), unixOrZero(last), unixOrZero(complete)
	return &s, nil
}

// Stats are the archive's totals.
type Stats struct {
	Mailboxes, Messages, Tombstones, Blobs int64
	// Bytes is the total size of live messages; BlobBytes of stored blobs.
	Bytes, BlobBytes int64
	ModSeq           int64
	// PackBytes is the size of the pack file (see PackSuffix): PackHeader
	// plus the blobs stored in it, plus what nothing references (blobs
	// whose bytes were stored twice by concurrent writers; blobs of
	// deleted data are kept, there is no compaction yet).
	PackBytes int64
}

// Stats returns the archive's totals.
func (a *Archive) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := a.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM mailboxes WHERE deleted_at IS NULL),
		(SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL),
		(SELECT COUNT(*) FROM messages WHERE deleted_at IS NOT NULL),
		(SELECT COUNT(*) FROM blobs),
		(SELECT COALESCE(SUM(size), 0) FROM messages WHERE deleted_at IS NULL),
		(SELECT COALESCE(SUM(size), 0) FROM blobs)`).
		Scan(&s.Mailboxes, &s.Messages, &s.Tombstones, &s.Blobs, &s.Bytes, &s.BlobBytes)
	if err != nil {
		return s, fmt.Errorf("archive stats: %w", err)
	}
	if a.pack != nil {
		s.PackBytes = a.pack.size()
	}
	s.ModSeq, err = a.ModSeq(ctx)
	return s, err
}

// MailboxCount is a per-mailbox total of live messages, see
// [Archive.MailboxCounts].
type MailboxCount struct {
	Messages, Bytes int64
}

// MailboxCounts returns live message counts and sizes per mailbox id.
func (a *Archive) MailboxCounts(ctx context.Context) (map[int64]MailboxCount, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT l.mailbox_id, COUNT(DISTINCT l.message_id), COALESCE(SUM(m.size), 0)
		FROM (SELECT DISTINCT mailbox_id, message_id FROM locations) l JOIN messages m ON m.id = l.message_id
		WHERE m.deleted_at IS NULL GROUP BY l.mailbox_id`)
	if err != nil {
		return nil, fmt.Errorf("count mailboxes: %w", err)
	}
	defer rows.Close()
	out := map[int64]MailboxCount{}
	for rows.Next() {
		var id int64
		var c MailboxCount
		if err := rows.Scan(&id, &c.Messages, &c.Bytes); err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, rows.Err()
}

// RunInfo is one recorded import run.
type RunInfo struct {
	ID                int64
	SourceID          int64
	Started, Finished time.Time
	// Status is running (or killed), complete or partial.
	Status string
	// Counts is the run's counters as JSON.
	Counts string
}

// Runs lists the recorded import runs, oldest first.
func (a *Archive) Runs(ctx context.Context) ([]RunInfo, error) {
	rows, err := a.db.QueryContext(ctx, "SELECT id, source_id, started_at, finished_at, status, counts FROM runs ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []RunInfo
	for rows.Next() {
		var r RunInfo
		var st int64
		var fin sql.NullInt64
		if err := rows.Scan(&r.ID, &r.SourceID, &st, &fin, &r.Status, &r.Counts); err != nil {
			return nil, err
		}
		r.Started, r.Finished = time.Unix(st, 0).UTC(), unixOrZero(fin)
		out = append(out, r)
	}
	return out, rows.Err()
}
