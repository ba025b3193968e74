package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// snapshotVersion is the format version of snapshot.json.
const snapshotVersion = 1

// snapshot is the on-disk cache of the fold.
type snapshot struct {
	Version int `json:"format_version"`
	// Offset is the journal length in bytes that State covers.
	Offset int64 `json:"offset"`
	// Head is the hash of the line that ends at Offset.
	Head  string `json:"head"`
	State *State `json:"state"`
}

func readSnapshot(dir string) (*snapshot, error) {
	b, err := os.ReadFile(filepath.Join(dir, SnapshotFile))
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(b)
}

// decodeSnapshot decodes a snapshot of the state directory or of a
// RecordStore (whose Offset is 0: records are counted by seq there).
func decodeSnapshot(b []byte) (*snapshot, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if s.Version != snapshotVersion || s.State == nil {
		return nil, fmt.Errorf("snapshot format %d not supported", s.Version)
	}
	return &s, nil
}

// SnapshotHead returns the serial and head hash recorded in the snapshot of
// dir, for verification; ok is false without a readable snapshot.
func SnapshotHead(dir string) (serial uint64, head string, ok bool) {
	s, err := readSnapshot(dir)
	if err != nil {
		return 0, "", false
	}
	return s.State.Serial, s.Head, true
}

// WriteSnapshot writes the current fold to snapshot.json atomically. It is
// a cache: callers may ignore its error.
func (j *Journal) WriteSnapshot() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.opts.ReadOnly {
		return ErrReadOnly
	}
	if j.remote != nil {
		return j.writeSnapshotRemote()
	}
	if j.seq == 0 || j.size == j.snapPos {
		return nil
	}
	b, err := json.Marshal(&snapshot{Version: snapshotVersion, Offset: j.size, Head: j.head, State: j.state})
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(j.dir, SnapshotFile), b, 0o640); err != nil {
		return err
	}
	j.snapPos = j.size
	return nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, fsync and rename, so readers see the old or the new content.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
