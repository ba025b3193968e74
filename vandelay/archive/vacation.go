package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Vacation is the account's vacation response (table vacation, one row):
// JMAP VacationResponse's fields (RFC 8621 8) plus what a Sieve vacation
// action adds. It is the structured copy; a Sieve source's script bytes,
// which carry the action itself, are migrated as they are.
type Vacation struct {
	Enabled          bool
	From, To         time.Time // zero: open-ended
	Subject          string
	TextBody         string
	HTMLBody         string
	Days, Seconds    int
	FromAddress      string
	Addresses        []string
	SourceRef        string // "sieve:<script name>"
	ModSeq           int64
	UpdatedAt        time.Time
	addressesEncoded string
}

func (v *Vacation) same(o *Vacation) bool {
	return v.Enabled == o.Enabled && v.From.Equal(o.From) && v.To.Equal(o.To) && v.Subject == o.Subject &&
		v.TextBody == o.TextBody && v.HTMLBody == o.HTMLBody && v.Days == o.Days && v.Seconds == o.Seconds &&
		v.FromAddress == o.FromAddress && slices.Equal(v.Addresses, o.Addresses) && v.SourceRef == o.SourceRef
}

func unixOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

// Vacation returns the archived vacation response, nil when the archive
// has none.
func (a *Archive) Vacation(ctx context.Context) (*Vacation, error) {
	v := &Vacation{}
	var from, to sql.NullInt64
	var updated int64
	err := a.db.QueryRowContext(ctx, `SELECT enabled, from_date, to_date, subject, text_body, html_body, days, seconds, from_address, addresses, source_ref, modseq, updated_at
		FROM vacation WHERE id = 1`).Scan(&v.Enabled, &from, &to, &v.Subject, &v.TextBody, &v.HTMLBody, &v.Days, &v.Seconds, &v.FromAddress, &v.addressesEncoded, &v.SourceRef, &v.ModSeq, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read vacation: %w", err)
	}
	if from.Valid {
		v.From = time.Unix(from.Int64, 0).UTC()
	}
	if to.Valid {
		v.To = time.Unix(to.Int64, 0).UTC()
	}
	if v.addressesEncoded != "" {
		if err := json.Unmarshal([]byte(v.addressesEncoded), &v.Addresses); err != nil {
			return nil, fmt.Errorf("read vacation addresses: %w", err)
		}
	}
	v.UpdatedAt = time.Unix(updated, 0).UTC()
	return v, nil
}

// SetVacation stores v as the account's vacation response when it differs
// from the archived one (nil: the source has none now, which disables an
// archived one). It reports whether anything changed; a dry run only
// compares.
func (a *Archive) SetVacation(ctx context.Context, v *Vacation, dryRun bool) (bool, error) {
	if a.readOnly {
		return false, errors.New("archive opened read-only")
	}
	old, err := a.Vacation(ctx)
	if err != nil {
		return false, err
	}
	if v == nil {
		if old == nil || !old.Enabled {
			return false, nil
		}
		off := *old
		off.Enabled = false
		v = &off
	}
	if old != nil && old.same(v) {
		return false, nil
	}
	if dryRun {
		return true, nil
	}
	addrs := ""
	if len(v.Addresses) > 0 {
		b, _ := json.Marshal(v.Addresses)
		addrs = string(b)
	}
	tx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return false, fmt.Errorf("begin archive transaction: %w", err)
	}
	defer tx.Rollback()
	var modseq int64
	if err := tx.QueryRowContext(ctx, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'modseq' RETURNING CAST(value AS INTEGER)").Scan(&modseq); err != nil {
		return false, fmt.Errorf("bump archive modseq: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO vacation(id, enabled, from_date, to_date, subject, text_body, html_body, days, seconds, from_address, addresses, source_ref, modseq, updated_at)
		VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET enabled = excluded.enabled, from_date = excluded.from_date, to_date = excluded.to_date, subject = excluded.subject,
			text_body = excluded.text_body, html_body = excluded.html_body, days = excluded.days, seconds = excluded.seconds,
			from_address = excluded.from_address, addresses = excluded.addresses, source_ref = excluded.source_ref, modseq = excluded.modseq, updated_at = excluded.updated_at`,
		v.Enabled, unixOrNil(v.From), unixOrNil(v.To), v.Subject, v.TextBody, v.HTMLBody, v.Days, v.Seconds, v.FromAddress, addrs, v.SourceRef, modseq, time.Now().Unix()); err != nil {
		return false, fmt.Errorf("store vacation: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store vacation: %w", err)
	}
	return true, nil
}
