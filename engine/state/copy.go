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

// Lines is a journal's records as their exact lines (without newline), in
// seq order: copying a journal copies these bytes, so every record keeps
// the hash its successor carries and the chain stays intact.
type Lines func(fn func(seq uint64, line []byte) error) error

// DirLines returns the complete lines of the journal in dir (an
// incomplete last line, never acknowledged, is left out).
func DirLines(dir string) Lines {
	return func(fn func(seq uint64, line []byte) error) error {
		f, err := os.Open(filepath.Join(dir, JournalFile))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open journal: %w", err)
		}
		defer f.Close()
		br := bufio.NewReaderSize(f, 1<<16)
		for seq := uint64(1); ; seq++ {
			line, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				// A long line: copy what the buffer holds before the next
				// read reuses it, then gather the rest.
				head := append([]byte(nil), line...)
				rest, rerr := br.ReadBytes('\n')
				line, err = append(head, rest...), rerr
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					return fmt.Errorf("read journal: %w", err)
				}
				return nil // EOF, possibly after an incomplete line
			}
			if err := fn(seq, line[:len(line)-1]); err != nil {
				return err
			}
		}
	}
}

// DirEmpty reports whether dir holds no journal records and no snapshot.
func DirEmpty(dir string) (bool, error) {
	for _, name := range []string{JournalFile, SnapshotFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		if fi.Size() > 0 {
			return false, nil
		}
	}
	return true, nil
}

// WriteDirJournal writes lines as the journal of dir, atomically (a
// temporary file, fsync, rename): a copy interrupted half-way leaves no
// journal. It returns the number of records written.
func WriteDirJournal(dir string, lines Lines) (uint64, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+JournalFile+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("write journal: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<16)
	var n uint64
	err = lines(func(seq uint64, line []byte) error {
		if seq != n+1 {
			return fmt.Errorf("journal record %d follows record %d", seq, n)
		}
		n = seq
		if _, err := bw.Write(line); err != nil {
			return err
		}
		return bw.WriteByte('\n')
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(0o640)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, JournalFile))
	}
	if err != nil {
		return 0, fmt.Errorf("write journal: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return n, nil
}
