package vandelay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// verifiedCache remembers, per export target, the items (DAV items,
// files) a verify found equal to the archive, with the target's ETag at
// that time and the archive's hash: "ETAG HASH" by item. When the target
// lists the item later with the same strong ETag and the archive's hash
// has not changed, the target still holds the bytes that were compared
// (a strong validator changes whenever the representation does, RFC 9110
// 8.8.1), so verify need not download them again: a no-change verify of
// 2,000 events is one PROPFIND instead of 2,000 GETs. Weak ETags (Apache
// answers W/"…" for about a second after a write) and missing ones are
// never trusted. The cache is one export state value per kind, read once
// and written once per verify, holding only the items that verify saw.
type verifiedCache struct {
	key     string
	old     map[string]string
	seen    map[string]string
	changed bool
}

func loadVerified(ctx context.Context, et *archive.ExportTarget, key string) (*verifiedCache, error) {
	c := &verifiedCache{key: key, old: map[string]string{}, seen: map[string]string{}}
	if et == nil {
		return c, nil
	}
	v, err := et.State(ctx, key)
	if err != nil || v == "" {
		return c, err
	}
	if err := json.Unmarshal([]byte(v), &c.old); err != nil {
		// A cache is only a cache: start afresh.
		c.old, c.changed = map[string]string{}, true
	}
	return c, nil
}

func strongETag(etag string) bool { return etag != "" && !strings.HasPrefix(etag, "W/") }

// ok reports whether the item was verified with this ETag and hash.
func (c *verifiedCache) ok(item, etag, hash string) bool {
	v := etag + " " + hash
	if strongETag(etag) && c.old[item] == v {
		c.seen[item] = v
		return true
	}
	return false
}

// equal records that the item was compared equal under etag.
func (c *verifiedCache) equal(item, etag, hash string) {
	if !strongETag(etag) {
		return
	}
	v := etag + " " + hash
	c.seen[item] = v
	if c.old[item] != v {
		c.changed = true
	}
}

// save writes the items seen equal in this verify (dropping the others).
func (c *verifiedCache) save(ctx context.Context, et *archive.ExportTarget) error {
	if et == nil || (!c.changed && len(c.seen) == len(c.old)) {
		return nil
	}
	b, err := json.Marshal(c.seen)
	if err != nil {
		return err
	}
	if len(c.seen) == 0 {
		b = nil
	}
	if err := et.SetState(ctx, c.key, string(b)); err != nil {
		return fmt.Errorf("save what verify found equal: %w", err)
	}
	return nil
}
