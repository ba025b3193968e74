package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// PackSuffix names an archive's pack file: the archive's path plus this
// suffix (ACCOUNT.db-pack), like SQLite's own -wal beside it. The pack
// holds the bytes of every blob stored since schema 10; the SQLite file
// holds where each one is (blobs.pack_offset and size). An archive is the
// pair: copy, move and delete both files (with the archive closed).
const PackSuffix = "-pack"

// packMagic starts every pack file; blob bytes follow it, one blob after
// the other, with nothing between them: the database holds the offsets and
// lengths, and the hash of each blob's bytes.
const packMagic = "mmpack1\n"

// PackHeader is the size of a pack file's header: an empty pack's size.
const PackHeader = len(packMagic)

// packBuffer is how many appended bytes are gathered before one write:
// most messages are tens of kilobytes, and one write of 1 MiB costs about
// what one of 64 KiB does.
const packBuffer = 1 << 20

// ErrPackDamaged is returned by [Open] when the pack file is missing,
// shorter than the blobs the database records in it, or not a pack file:
// typically an archive copied without its pack file (see [PackSuffix]).
var ErrPackDamaged = errors.New("archive pack file missing or damaged")

// pack is the append-only blob file beside the database.
//
// Durability: a blob's bytes are appended (buffered) before the row that
// records them is inserted, and every transaction that inserted such rows
// syncs the pack (flush and fdatasync) before it commits (ptx.Commit). So
// a process killed at any point, or a machine that loses power, leaves
// either no row for a blob or a row whose bytes are on disk. What it can
// leave is bytes that no committed row references: at the tail (a batch
// written but not committed), which the next read-write Open truncates,
// or, rarely, in the middle (see [Archive] garbage), which only costs space.
type pack struct {
	path     string
	readOnly bool

	mu sync.Mutex
	f  *os.File // nil until the first append when the file did not exist
	// end is the offset of the next append; the file holds [0, end-len(buf))
	// and buf the bytes after that. The file's own offset is kept at
	// end-len(buf), so that appends are plain writes (and a copy from a file
	// can be copy_file_range).
	end   int64
	buf   []byte
	dirty bool // appended since the last sync
	// broken is set when writing the file failed: bytes that rows of the
	// open transaction point to may be missing, so nothing may commit
	// (sync fails) until the archive is opened again.
	broken error
}

// openPack opens the pack file at path for an archive whose committed blobs
// reach up to offset used. A read-write open truncates unreferenced tail
// bytes (a batch a killed run wrote but never committed); a missing file
// is created at the first append.
func openPack(path string, readOnly bool, used int64) (*pack, error) {
	p := &pack{path: path, readOnly: readOnly}
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, os.ErrNotExist) {
		if used > 0 {
			return nil, fmt.Errorf("%s: the database records %d bytes of blobs in it: %w", path, used, ErrPackDamaged)
		}
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open pack %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open pack %s: %w", path, err)
	}
	size := fi.Size()
	switch {
	case size < int64(len(packMagic)) && used == 0 && !readOnly:
		// Created by a run killed before it wrote the header whole:
		// nothing in it, start it again.
		if err := writeHeader(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("open pack %s: %w", path, err)
		}
		size = int64(len(packMagic))
	case size < int64(len(packMagic)):
		f.Close()
		if used == 0 {
			return p, nil // read-only: an empty pack holds nothing to read
		}
		return nil, fmt.Errorf("%s: %d bytes, the database records %d: %w", path, size, used, ErrPackDamaged)
	default:
		var hdr [len(packMagic)]byte
		if _, err := f.ReadAt(hdr[:], 0); err != nil || string(hdr[:]) != packMagic {
			f.Close()
			return nil, fmt.Errorf("%s: not a mailmig pack file: %w", path, ErrPackDamaged)
		}
	}
	used = max(used, int64(len(packMagic)))
	if size < used {
		f.Close()
		return nil, fmt.Errorf("%s: %d bytes, the database records %d: %w", path, size, used, ErrPackDamaged)
	}
	if !readOnly {
		if size > used {
			// Bytes no committed row references: a killed run's last
			// batch, or a torn write. The next append reuses the space.
			if err := f.Truncate(used); err != nil {
				f.Close()
				return nil, fmt.Errorf("truncate pack %s: %w", path, err)
			}
		}
		if _, err := f.Seek(used, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("open pack %s: %w", path, err)
		}
	}
	p.f, p.end = f, used
	return p, nil
}

func writeHeader(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(packMagic), 0); err != nil {
		return err
	}
	_, err := f.Seek(int64(len(packMagic)), io.SeekStart)
	return err
}

// createLocked creates the file at the first append, with its header, and
// syncs the directory so that the file's name survives a power loss as
// long as the rows that point into it do.
func (p *pack) createLocked() error {
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create pack %s: %w", p.path, err)
	}
	if err := writeHeader(f); err != nil {
		f.Close()
		return fmt.Errorf("create pack %s: %w", p.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("create pack %s: %w", p.path, err)
	}
	if d, err := os.Open(filepath.Dir(p.path)); err == nil {
		d.Sync()
		d.Close()
	}
	p.f, p.end = f, int64(len(packMagic))
	return nil
}

func (p *pack) writableLocked() error {
	if p.readOnly {
		return errors.New("archive opened read-only")
	}
	if p.broken != nil {
		return p.broken
	}
	if p.f == nil {
		return p.createLocked()
	}
	return nil
}

// appendFrom adds exactly n bytes read from r (n < 0: until EOF) and
// returns their offset and count. When r fails (or ends early) nothing is
// added. From an *os.File (a spooled message) the kernel copies the bytes
// (copy_file_range), without passing them through this process.
func (p *pack) appendFrom(r io.Reader, n int64) (int64, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return 0, 0, err
	}
	if err := p.flushLocked(); err != nil {
		return 0, 0, err
	}
	off := p.end
	k, err := p.copyLocked(r, n)
	if err == nil && n >= 0 && k != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if p.broken != nil {
			return 0, 0, err
		}
		return 0, 0, p.failLocked(off, err)
	}
	p.end += k
	p.dirty = true
	return off, k, nil
}

// appendIf appends body (or, when body is nil, n bytes read from r) when
// record(off), called first with the offset they will have, reports true
// (it inserts the row; the pack's lock is held, so no other append takes
// that offset). When r fails, the bytes are taken off again and the caller
// must drop the row (a savepoint).
func (p *pack) appendIf(record func(off int64) (bool, error), body []byte, r io.Reader, n int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return false, err
	}
	off := p.end
	if ok, err := record(off); !ok || err != nil {
		return false, err
	}
	if body != nil {
		if err := p.appendLocked(body); err != nil {
			return false, err
		}
		return true, nil
	}
	if err := p.flushLocked(); err != nil {
		return false, err
	}
	k, err := p.copyLocked(r, n)
	if err == nil && k != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if p.broken != nil {
			return false, err
		}
		return false, p.failLocked(off, err)
	}
	p.end += k
	p.dirty = true
	return true, nil
}

// appendLocked buffers b (written out when the buffer is full), or writes
// it at once when it is as large as the buffer.
func (p *pack) appendLocked(b []byte) error {
	if len(p.buf)+len(b) > packBuffer {
		if err := p.flushLocked(); err != nil {
			return err
		}
	}
	if len(b) >= packBuffer {
		if _, err := p.f.Write(b); err != nil {
			return p.breakLocked(err)
		}
		startWriteback(p.f, p.end, int64(len(b)))
	} else {
		if p.buf == nil {
			p.buf = make([]byte, 0, packBuffer)
		}
		p.buf = append(p.buf, b...)
	}
	p.end += int64(len(b))
	p.dirty = true
	return nil
}

// copyLocked copies n bytes of r (n < 0: to EOF) to the file's end, the
// buffer being empty. From a file (a spooled message) the kernel copies
// (os.File.ReadFrom: copy_file_range); from anything else through the
// buffer, in writes of its size.
func (p *pack) copyLocked(r io.Reader, n int64) (int64, error) {
	k, err := p.copyLocked1(r, n)
	if k > 0 && err == nil {
		startWriteback(p.f, p.end, k)
	}
	return k, err
}

func (p *pack) copyLocked1(r io.Reader, n int64) (int64, error) {
	src := r
	if n >= 0 {
		src = io.LimitReader(r, n)
	}
	if _, ok := r.(*os.File); ok {
		// A failure here may be the spool's or the pack's: assume the
		// worse (see broken).
		k, err := p.f.ReadFrom(src)
		if err != nil {
			return k, p.breakLocked(err)
		}
		return k, nil
	}
	if cap(p.buf) < packBuffer {
		p.buf = make([]byte, 0, packBuffer)
	}
	rr := &readErr{r: src}
	k, err := io.CopyBuffer(onlyWriter{p.f}, rr, p.buf[:packBuffer])
	if err != nil && !errors.Is(err, rr.err) {
		return k, p.breakLocked(err)
	}
	return k, err
}

// readErr remembers its reader's error, to tell it from a write error.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// onlyWriter hides every method of a writer but Write (so that io.Copy
// uses the buffer it is given).
type onlyWriter struct{ io.Writer }

// breakLocked records a failed write (see broken).
func (p *pack) breakLocked(err error) error {
	p.broken = fmt.Errorf("write pack %s: %w", p.path, err)
	return p.broken
}

// failLocked drops what an append whose reader failed wrote after off, so
// that the next append starts there again.
func (p *pack) failLocked(off int64, err error) error {
	if terr := p.f.Truncate(off); terr != nil {
		return errors.Join(err, p.breakLocked(terr))
	}
	if _, serr := p.f.Seek(off, io.SeekStart); serr != nil {
		return errors.Join(err, p.breakLocked(serr))
	}
	p.buf, p.end = p.buf[:0], off
	return err
}

// undo drops the last append (off, n) when nothing was appended after it:
// bytes that turned out to be stored already (a file whose hash is only
// known once it was read).
func (p *pack) undo(off, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil || p.broken != nil || p.end != off+n {
		return
	}
	if k := int64(len(p.buf)); k >= n {
		p.buf = p.buf[:k-n]
		p.end = off
		return
	}
	if err := p.flushLocked(); err == nil {
		p.failLocked(off, nil)
	}
}

func (p *pack) flushLocked() error {
	if len(p.buf) == 0 {
		return nil
	}
	off := p.end - int64(len(p.buf))
	if _, err := p.f.Write(p.buf); err != nil {
		return p.breakLocked(err)
	}
	startWriteback(p.f, off, int64(len(p.buf)))
	p.buf = p.buf[:0]
	return nil
}

// sync makes every append so far durable: called before a transaction
// that may reference them commits.
func (p *pack) sync() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return p.broken
	}
	if !p.dirty {
		return nil
	}
	if err := p.flushLocked(); err != nil {
		return fmt.Errorf("write pack %s: %w", p.path, err)
	}
	if err := fdatasync(p.f); err != nil {
		// After a failed fsync the kernel may have dropped the dirty
		// pages: nothing written so far can be trusted to be on disk.
		return p.breakLocked(err)
	}
	p.dirty = false
	return nil
}

// ReadAt reads blob bytes; appended bytes still in the buffer are written
// out first.
func (p *pack) ReadAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	f := p.f
	var err error
	if f != nil && len(p.buf) > 0 && off+int64(len(b)) > p.end-int64(len(p.buf)) {
		err = p.flushLocked()
	}
	p.mu.Unlock()
	if f == nil {
		return 0, fmt.Errorf("%s: %w", p.path, ErrPackDamaged)
	}
	if err != nil {
		return 0, err
	}
	return f.ReadAt(b, off)
}

// size is the pack's length including unflushed bytes.
func (p *pack) size() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end
}

// close writes out buffered bytes (no sync: nothing committed depends on
// them) and closes the file.
func (p *pack) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return nil
	}
	err := p.flushLocked()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f = nil
	return err
}
