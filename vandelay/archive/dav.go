package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Collection kinds of the DAV data (collections.kind).
const (
	CollectionAddressBook = "addressbook"
	CollectionCalendar    = "calendar"
)

// Export mapping kinds of DAV data. A KindDAVCollection mapping's
// ArchiveID is a [Collection.ID] and its RemoteID the collection's href at
// the target; a KindDAVItem mapping's ArchiveID is an [Item.ID] and its
// RemoteID the item's href at the target. Created records that the export
// made it (only those are ever deleted at the target); the ETag the target
// answered with is kept in the export target's state under
// "etag:"+RemoteID, so that an update is conditional on it.
const (
	KindDAVCollection = "DAVCollection"
	KindDAVItem       = "DAVItem"
)

// NewCollection is a collection's properties as the source serves them.
type NewCollection struct {
	Href        string
	DisplayName string
	Color       string
	Description string
	Components  []string // calendars: supported-calendar-component-set
}

// NewItem is one item (a vCard or a calendar object resource) as the
// source served it.
type NewItem struct {
	Href      string
	ETag      string
	UID       string
	MediaType string
	// Body is the bytes exactly as served.
	Body []byte
	// ParseError is set when Body does not parse; the bytes are kept and
	// exported as they are.
	ParseError string
}

// CollectionSync is what one import found in one collection.
type CollectionSync struct {
	Collection NewCollection
	// Items are the items added or changed since the cursor (unchanged
	// ones may be included) and Deleted the hrefs removed since.
	Items   []NewItem
	Deleted []string
	// SyncToken and CTag are the new cursor.
	SyncToken, CTag string
}

// Collection is one collection of the archive.
type Collection struct {
	ID          int64
	Kind        string
	Href        string // at the source
	DisplayName string
	Color       string
	Description string
	Components  []string
	ModSeq      int64
	Deleted     bool
}

// Item is one DAV item of the archive.
type Item struct {
	ID           int64
	CollectionID int64
	UID          string
	Href         string // at the source
	ETag         string // at the source
	MediaType    string
	Hash         string
	Size         int64
	ParseError   string
	ModSeq       int64
	Deleted      bool
}

// DAVCursor is a collection's sync cursor: the source's sync-token (RFC
// 6578), its CTag, and the ETag of every live item by href (the fallback
// for servers without sync-collection).
type DAVCursor struct {
	SyncToken string
	CTag      string
	ETags     map[string]string
}

// ItemsResult counts what a DAV import changed in one collection.
type ItemsResult struct {
	Added     int  `json:"added"`
	Changed   int  `json:"changed"`
	Deleted   int  `json:"deleted"`
	Unchanged int  `json:"unchanged"`
	NewColl   bool `json:"new_collection,omitempty"`
}

// Changes is the number of item changes.
func (r *ItemsResult) Changes() int { return r.Added + r.Changed + r.Deleted }

func davCollectionID(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}, kind string, src Source, href string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM collections WHERE kind = ? AND source_kind = ? AND source_endpoint = ? AND account = ? AND href = ? AND deleted_at IS NULL`,
		kind, src.Kind, src.Endpoint, src.Account, href).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read collection %s: %w", href, err)
	}
	return id, nil
}

// DAVCursor returns the cursor of the source's collection href, empty
// when the archive does not hold it yet.
func (a *Archive) DAVCursor(ctx context.Context, kind string, src Source, href string) (*DAVCursor, error) {
	c := &DAVCursor{ETags: map[string]string{}}
	id, err := davCollectionID(ctx, a.db, kind, src, href)
	if err != nil || id == 0 {
		return c, err
	}
	err = a.db.QueryRowContext(ctx, "SELECT sync_token, ctag FROM collection_cursors WHERE collection_id = ?", id).Scan(&c.SyncToken, &c.CTag)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read cursor of %s: %w", href, err)
	}
	items, err := a.DAVItems(ctx, id, false)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		c.ETags[it.Href] = it.ETag
	}
	return c, nil
}

// CollectionID returns the id of the source's live collection of
// kind at href (a calendar, an address book or a file tree), 0 when the
// archive has none.
func (a *Archive) CollectionID(ctx context.Context, kind string, src Source, href string) (int64, error) {
	return davCollectionID(ctx, a.db, kind, src, href)
}

// SyncDAVCollection applies what one import found in one collection, in
// one transaction: the collection is created or its properties updated,
// items added or replaced by hash (the ETag alone changing is recorded
// without a change), removed ones tombstoned, and the cursor stored. A
// killed import leaves the collection as it was before.
func (a *Archive) SyncDAVCollection(ctx context.Context, kind string, src Source, cs *CollectionSync, dryRun bool) (*ItemsResult, error) {
	if a.readOnly {
		return nil, errors.New("archive opened read-only")
	}
	stx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("begin archive transaction: %w", err)
	}
	tx := &ptx{a: a, tx: stx, stmts: map[string]*sql.Stmt{}}
	defer tx.Rollback()
	res, err := syncDAV(ctx, tx, kind, src, cs)
	if err != nil || dryRun {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit collection %s: %w", cs.Collection.Href, err)
	}
	return res, nil
}

func syncDAV(ctx context.Context, tx *ptx, kind string, src Source, cs *CollectionSync) (*ItemsResult, error) {
	var ms string
	if err := tx.QueryRowContext(ctx, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'modseq' RETURNING value").Scan(&ms); err != nil {
		return nil, fmt.Errorf("bump archive modseq: %w", err)
	}
	modseq, _ := strconv.ParseInt(ms, 10, 64)
	now := time.Now().Unix()
	nc := cs.Collection
	comps := strings.Join(nc.Components, ",")
	res := &ItemsResult{}
	id, err := davCollectionID(ctx, tx, kind, src, nc.Href)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		res.NewColl = true
		err = tx.QueryRowContext(ctx, `INSERT INTO collections(kind, source_kind, source_endpoint, account, href, display_name, color, description, components, modseq, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, kind, src.Kind, src.Endpoint, src.Account, nc.Href, nc.DisplayName, nc.Color, nc.Description, comps, modseq, now).Scan(&id)
		if err != nil {
			return nil, fmt.Errorf("create collection %s: %w", nc.Href, err)
		}
	} else if _, err := tx.ExecContext(ctx, `UPDATE collections SET display_name = ?, color = ?, description = ?, components = ?, modseq = ?
		WHERE id = ? AND (display_name != ? OR color != ? OR description != ? OR components != ?)`,
		nc.DisplayName, nc.Color, nc.Description, comps, modseq, id, nc.DisplayName, nc.Color, nc.Description, comps); err != nil {
		return nil, fmt.Errorf("update collection %s: %w", nc.Href, err)
	}
	old, err := davItems(ctx, tx, id, false)
	if err != nil {
		return nil, err
	}
	byHref := map[string]Item{}
	for _, it := range old {
		byHref[it.Href] = it
	}
	seen := map[string]bool{}
	for _, it := range cs.Items {
		seen[it.Href] = true
		hash := Hash(it.Body)
		o, ok := byHref[it.Href]
		switch {
		case ok && o.Hash == hash:
			res.Unchanged++
			if o.ETag != it.ETag {
				if _, err := tx.ExecContext(ctx, "UPDATE items SET etag = ? WHERE id = ?", it.ETag, o.ID); err != nil {
					return nil, fmt.Errorf("store item %s: %w", it.Href, err)
				}
			}
			continue
		case ok:
			res.Changed++
		default:
			res.Added++
		}
		if _, err := putBlob(ctx, tx, hash, it.Body, time.Unix(now, 0)); err != nil {
			return nil, err
		}
		if ok {
			_, err = tx.ExecContext(ctx, "UPDATE items SET uid = ?, etag = ?, media_type = ?, hash = ?, size = ?, parse_error = ?, modseq = ?, updated_at = ? WHERE id = ?",
				it.UID, it.ETag, it.MediaType, hash, len(it.Body), it.ParseError, modseq, now, o.ID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO items(collection_id, uid, href, etag, media_type, hash, size, parse_error, modseq, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, it.UID, it.Href, it.ETag, it.MediaType, hash, len(it.Body), it.ParseError, modseq, now, now)
		}
		if err != nil {
			return nil, fmt.Errorf("store item %s: %w", it.Href, err)
		}
	}
	for _, h := range cs.Deleted {
		o, ok := byHref[h]
		if !ok || seen[h] {
			continue
		}
		res.Deleted++
		if _, err := tx.ExecContext(ctx, "UPDATE items SET deleted_at = ?, modseq = ? WHERE id = ?", now, modseq, o.ID); err != nil {
			return nil, fmt.Errorf("tombstone item %s: %w", h, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO collection_cursors(collection_id, sync_token, ctag, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(collection_id) DO UPDATE SET sync_token = excluded.sync_token, ctag = excluded.ctag, updated_at = excluded.updated_at`,
		id, cs.SyncToken, cs.CTag, now); err != nil {
		return nil, fmt.Errorf("store cursor of %s: %w", nc.Href, err)
	}
	return res, nil
}

// RetireDAVCollections tombstones the source's live collections of kind
// whose href is not in live (deleted at the source), with their items.
// It returns how many it retired.
func (a *Archive) RetireDAVCollections(ctx context.Context, kind string, src Source, live []string) (int, error) {
	keep := map[string]bool{}
	for _, h := range live {
		keep[h] = true
	}
	cols, err := a.DAVCollections(ctx, kind, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cols {
		if keep[c.Href] {
			continue
		}
		id, err := davCollectionID(ctx, a.db, kind, src, c.Href)
		if err != nil || id != c.ID {
			continue // another source's collection
		}
		now := time.Now().Unix()
		if _, err := a.db.ExecContext(ctx, `UPDATE collections SET deleted_at = ?, modseq = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'modseq') WHERE id = ?`, now, c.ID); err != nil {
			return n, fmt.Errorf("tombstone collection %s: %w", c.Href, err)
		}
		if _, err := a.db.ExecContext(ctx, `UPDATE items SET deleted_at = ? WHERE collection_id = ? AND deleted_at IS NULL`, now, c.ID); err != nil {
			return n, fmt.Errorf("tombstone items of %s: %w", c.Href, err)
		}
		n++
	}
	return n, nil
}

// DAVCollections returns the archive's collections of kind by href,
// with the tombstones when withDeleted.
func (a *Archive) DAVCollections(ctx context.Context, kind string, withDeleted bool) ([]Collection, error) {
	q := "SELECT id, kind, href, display_name, color, description, components, modseq, deleted_at IS NOT NULL FROM collections WHERE kind = ?"
	if !withDeleted {
		q += " AND deleted_at IS NULL"
	}
	rows, err := a.db.QueryContext(ctx, q+" ORDER BY href, id", kind)
	if err != nil {
		return nil, fmt.Errorf("read collections: %w", err)
	}
	defer rows.Close()
	var out []Collection
	for rows.Next() {
		var c Collection
		var comps string
		var del int
		if err := rows.Scan(&c.ID, &c.Kind, &c.Href, &c.DisplayName, &c.Color, &c.Description, &comps, &c.ModSeq, &del); err != nil {
			return nil, fmt.Errorf("read collections: %w", err)
		}
		if comps != "" {
			c.Components = strings.Split(comps, ",")
		}
		c.Deleted = del != 0
		out = append(out, c)
	}
	return out, rows.Err()
}

// DAVItems returns a collection's items by href, with the tombstones when
// withDeleted.
func (a *Archive) DAVItems(ctx context.Context, collection int64, withDeleted bool) ([]Item, error) {
	return davItems(ctx, a.db, collection, withDeleted)
}

func davItems(ctx context.Context, q queryer, coll int64, withDeleted bool) ([]Item, error) {
	query := "SELECT id, collection_id, uid, href, etag, media_type, hash, size, parse_error, modseq, deleted_at IS NOT NULL FROM items WHERE collection_id = ?"
	if !withDeleted {
		query += " AND deleted_at IS NULL"
	}
	rows, err := q.QueryContext(ctx, query+" ORDER BY href, id", coll)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var it Item
		var del int
		if err := rows.Scan(&it.ID, &it.CollectionID, &it.UID, &it.Href, &it.ETag, &it.MediaType, &it.Hash, &it.Size, &it.ParseError, &it.ModSeq, &del); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		it.Deleted = del != 0
		out = append(out, it)
	}
	return out, rows.Err()
}
