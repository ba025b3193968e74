package state

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Records is the number of complete, well-formed records read.
	Records uint64 `json:"records"`
	// Lineage of the journal.
	Lineage string `json:"lineage,omitempty"`
	// Head is the hash of the last good record.
	Head string `json:"head,omitempty"`
	// OK is true when the whole chain is intact.
	OK bool `json:"ok"`
	// BrokenSeq is the seq (1-based line number) of the first record that
	// fails the check, 0 when OK.
	BrokenSeq uint64 `json:"broken_seq,omitempty"`
	// Problem says what is wrong with that record.
	Problem string `json:"problem,omitempty"`
	// Warning notes something that is not a break, e.g. an incomplete last
	// line left by a crash.
	Warning string `json:"warning,omitempty"`
}

// Verify checks the journal in dir: every line parses, seq counts up from
// 1, the first record is the init record, and each record's Prev is the
// hash of the line before. It also compares the last record with the
// snapshot, which catches edits of the last records and truncation. It
// reports the first broken record.
func Verify(dir string) (*VerifyResult, error) {
	res := &VerifyResult{}
	f, err := os.Open(filepath.Join(dir, JournalFile))
	if errors.Is(err, fs.ErrNotExist) {
		res.OK = true
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	c := chainCheck{res: res}
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				res.Warning = fmt.Sprintf("incomplete last line (%d bytes) after record %d: an append was interrupted; the next apply removes it", len(line), res.Records)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		if !c.add(line[:len(line)-1]) {
			return res, nil
		}
	}
	serial, head, ok := SnapshotHead(dir)
	c.finish(serial, head, ok)
	return res, nil
}

// chainCheck verifies a journal record by record, wherever its lines
// are stored (a file or a table): both Verify and the remote backends'
// use it, so the rules are one.
type chainCheck struct {
	res  *VerifyResult
	prev string
}

// add checks the next record's line (without its newline). It returns
// false at the first broken record, which res then names.
func (c *chainCheck) add(body []byte) bool {
	res := c.res
	fail := func(problem string) bool {
		res.BrokenSeq, res.Problem = res.Records+1, problem
		return false
	}
	r, perr := parseRecord(body)
	n := res.Records + 1
	switch {
	case perr != nil:
		return fail(fmt.Sprintf("line %d is not a valid record: %v", n, perr))
	case r.Seq != n:
		return fail(fmt.Sprintf("line %d has seq %d, want %d (a record was removed, inserted or renumbered)", n, r.Seq, n))
	case n == 1 && (r.Type != TypeInit || r.Lineage == ""):
		return fail("the first record is not the init record with the lineage")
	case n > 1 && r.Type == TypeInit:
		return fail(fmt.Sprintf("record %d is a second init record", n))
	case r.Prev != c.prev:
		return fail(fmt.Sprintf("record %d does not carry the hash of record %d: one of them was modified", n, n-1))
	}
	if n == 1 {
		res.Lineage = r.Lineage
	}
	c.prev = hashLine(body)
	res.Records = n
	return true
}

// finish compares the end of an unbroken chain with the snapshot (serial
// and head of the record it covers; ok false without one), which catches
// edits of the last records and truncation, and sets OK.
func (c *chainCheck) finish(serial uint64, head string, ok bool) {
	res := c.res
	res.Head = c.prev
	if ok {
		switch {
		case serial > res.Records:
			res.BrokenSeq, res.Problem = res.Records+1, fmt.Sprintf("the snapshot covers %d records but the journal has only %d: records were removed from the end", serial, res.Records)
			return
		case serial == res.Records && head != res.Head:
			res.BrokenSeq, res.Problem = res.Records, fmt.Sprintf("record %d does not match the hash kept in the snapshot: it was modified", res.Records)
			return
		}
	}
	res.OK = true
}
