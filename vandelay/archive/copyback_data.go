package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// DataReturn is one Sieve script, contact, calendar object, file or
// folder that a rollback copied (or is copying) from a target back to
// the source because it was created or changed on the target after the
// cut-over: the non-mail counterpart of [Return]. It is kept in the
// export target's states (key "copy-back <kind> <remote>"), so no table
// is needed: there are a handful per account, and the record is what
// tells a rollback run again after a kill that an item was already
// copied (same Remote, same Hash), and the operator what came back.
type DataReturn struct {
	// Kind is CollectionSieve, CollectionAddressBook, CollectionCalendar
	// or CollectionFiles, or "sieve-active" for the activation of the
	// script named by Dest.
	Kind string `json:"kind"`
	// Remote names the item at the target (script name, item href, file
	// path); Dest where it was written at the source.
	Remote string `json:"remote"`
	Dest   string `json:"dest"`
	// Hash is the SHA-256 of the bytes copied ("" for a folder, a
	// collection or an activation); Size their length.
	Hash string `json:"hash,omitempty"`
	Size int64  `json:"size,omitempty"`
	// What is "new" (unknown to the archive), "changed" (the archive holds
	// another version), "folder", "collection" or "active".
	What string `json:"what"`
	// Found is when the rollback found it; Copied when it was written to
	// the source (zero while pending).
	Found  time.Time `json:"found"`
	Copied time.Time `json:"copied,omitzero"`
}

const dataReturnPrefix = "copy-back "

func dataReturnKey(kind, remote string) string { return dataReturnPrefix + kind + " " + remote }

// PutDataReturn records r (replacing an earlier record of the same kind
// and remote name).
func (t *ExportTarget) PutDataReturn(ctx context.Context, r DataReturn) error {
	if t.a.readOnly {
		return fmt.Errorf("record copied-back %s %s: archive opened read-only", r.Kind, r.Remote)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.SetState(ctx, dataReturnKey(r.Kind, r.Remote), string(b))
}

// DataReturns returns the records of kind by their Remote name.
func (t *ExportTarget) DataReturns(ctx context.Context, kind string) (map[string]DataReturn, error) {
	prefix := dataReturnKey(kind, "")
	rows, err := t.a.db.QueryContext(ctx, "SELECT key, value FROM export_states WHERE target_id = ? AND substr(key, 1, ?) = ?", t.ID, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("read copy-back records: %w", err)
	}
	defer rows.Close()
	out := map[string]DataReturn{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		var r DataReturn
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("read copy-back record %s: %w", strings.TrimPrefix(k, dataReturnPrefix), err)
		}
		out[r.Remote] = r
	}
	return out, rows.Err()
}
