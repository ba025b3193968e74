package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// MismatchList is every difference the account's last verify found (mail
// and the other data kinds), not only the first state.MaxRecordedMismatches
// that the journal's finish record names: the journal stays small, and
// this file, beside the account's archive, is rewritten by each verify.
// "mailmig state show ACCOUNT -mismatches" prints it.
type MismatchList struct {
	Account string    `json:"account"`
	Time    time.Time `json:"time"`
	// Total is the verify's count (it may exceed len(Mismatches) by the
	// source differences a dry-run import counts without naming them).
	Total      int64            `json:"total"`
	Mismatches []state.Mismatch `json:"mismatches"`
}

// mismatchesPath is the file of the account's last verify's mismatches.
func (x *Executor) mismatchesPath(acct *plan.Account) string {
	return x.archivePath(acct) + ".mismatches.json"
}

// saveMismatches replaces the account's list with the last verify's
// (temp file and rename, so a reader sees the old list or the new one).
func (x *Executor) saveMismatches(acct *plan.Account, total int64, named []state.Mismatch) error {
	l := MismatchList{Account: acct.Address, Time: time.Now().UTC(), Total: total, Mismatches: named}
	if l.Mismatches == nil {
		l.Mismatches = []state.Mismatch{}
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	p := x.mismatchesPath(acct)
	tmp, err := os.CreateTemp(filepath.Dir(p), ".mismatches-*")
	if err != nil {
		return fmt.Errorf("save the verify's mismatches: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save the verify's mismatches: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save the verify's mismatches: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("save the verify's mismatches: %w", err)
	}
	return nil
}

// Mismatches returns every mismatch the account's last verify found; nil
// and no error when no verify ran (or it ran before this list existed).
func (r *ArchiveReader) Mismatches(acct *plan.Account) (*MismatchList, error) {
	b, err := os.ReadFile(r.x.mismatchesPath(acct))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last verify's mismatches: %w", err)
	}
	var l MismatchList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("read the last verify's mismatches: %w", err)
	}
	return &l, nil
}
