package vandelay

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
)

func unescapePath(p string) string {
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}

// DAVMismatch is one difference found by [VerifyDAV].
type DAVMismatch struct {
	Collection string `json:"collection"` // the source href
	Href       string `json:"href"`       // the target href
	// Kind is "missing" (not at the target) or "content" (other bytes
	// after [Normalize]).
	Kind string `json:"kind"`
}

// DAVCollectionReport is one collection's count at both sides.
type DAVCollectionReport struct {
	Source  string `json:"source"`
	Target  string `json:"target"`
	Items   int    `json:"items"`   // live items in the archive
	Matched int    `json:"matched"` // present at the target with equal content
}

// DAVVerifyReport is what [VerifyDAV] compared.
type DAVVerifyReport struct {
	Collections []DAVCollectionReport `json:"collections"`
	Mismatches  []DAVMismatch         `json:"mismatches,omitempty"`
	// Conflicts are target hrefs that differ because the last export
	// found them changed at the target and kept the target's version:
	// reported, not mismatches (a cut-over proceeds with a warning).
	Conflicts []string `json:"conflicts,omitempty"`
}

// VerifyDAV compares every live collection of kind in the archive with
// the target: each item present, with the same SHA-256 after
// [Normalize] (which undoes only what the target rewrites on store).
// Items the target holds beyond the archive's are not differences (the
// user's own). A collection never exported is reported with all its
// items missing. An item a verify found equal and the target still lists
// with the same strong ETag is not downloaded again (verifiedCache).
func VerifyDAV(ctx context.Context, a *archive.Archive, kind string, t DAVTarget) (*DAVVerifyReport, error) {
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
	cols, err := a.DAVCollections(ctx, kind, false)
	if err != nil {
		return nil, err
	}
	conflicts, err := loadConflicts(ctx, et, "dav-conflicts")
	if err != nil {
		return nil, err
	}
	cache, err := loadVerified(ctx, et, "dav-verified:"+kind)
	if err != nil {
		return nil, err
	}
	rep := &DAVVerifyReport{}
	for _, c := range cols {
		items, err := a.DAVItems(ctx, c.ID, false)
		if err != nil {
			return nil, err
		}
		cm, ok := cmaps[c.ID]
		cr := DAVCollectionReport{Source: c.Href, Target: cm.RemoteID, Items: len(items)}
		var members map[string]string
		if ok {
			if members, err = t.Members(ctx, cm.RemoteID); err != nil {
				return nil, fmt.Errorf("list %s at the target: %w", cm.RemoteID, err)
			}
		}
		// The members by unescaped path (sameHref), looked up once each.
		etags := make(map[string]string, len(members))
		for h, etag := range members {
			etags[unescapePath(h)] = etag
		}
		for _, it := range items {
			href := strings.TrimSuffix(cm.RemoteID, "/") + "/" + targetName(it.Href)
			if m, ok := imaps[it.ID]; ok {
				href = m.RemoteID
			}
			etag, found := etags[unescapePath(href)]
			if !found {
				rep.Mismatches = append(rep.Mismatches, DAVMismatch{c.Href, href, "missing"})
				continue
			}
			if cache.ok(href, etag, it.Hash) {
				cr.Matched++
				continue
			}
			want, err := a.BlobBytes(ctx, it.Hash)
			if err != nil {
				return nil, err
			}
			got, err := t.Get(ctx, href, want)
			if err != nil {
				return nil, fmt.Errorf("get %s from the target: %w", href, err)
			}
			if Normalize(kind, got) != Normalize(kind, want) {
				if conflicts[href] {
					rep.Conflicts = append(rep.Conflicts, href)
				} else {
					rep.Mismatches = append(rep.Mismatches, DAVMismatch{c.Href, href, "content"})
				}
				continue
			}
			cache.equal(href, etag, it.Hash)
			cr.Matched++
		}
		rep.Collections = append(rep.Collections, cr)
	}
	// A cache that cannot be written (an archive opened read-only) only
	// means the next verify downloads again.
	_ = cache.save(ctx, et)
	return rep, nil
}
