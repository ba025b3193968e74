package state

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// File names inside the state directory.
const (
	JournalFile  = "journal.jsonl"
	SnapshotFile = "snapshot.json"
	LockFile     = "lock.json"
)

// maxLine bounds one journal line; longer lines are treated as corruption.
const maxLine = 1 << 20

// Options configure Open. A nil *Options means defaults.
type Options struct {
	// ReadOnly opens without creating or repairing anything; Append fails.
	ReadOnly bool
	// Actor, RunID and PlanHash are put on every appended record that does
	// not set them itself.
	Actor, RunID, PlanHash string
	// Redact is applied to Error, Note and the mismatches' text of every
	// record before it is written, so that secrets never reach the journal. Default: identity.
	Redact func(string) string
	// Now returns the time for records without one. Default: time.Now.
	Now func() time.Time
	// Logger receives repair notices. Default: discard.
	Logger *slog.Logger
	// Lineage returns the lineage of a new journal. Default: NewLineage
	// (random). Tests fix it for reproducible output.
	Lineage func() string
	// NoSync skips fsync. Only for generating large test journals quickly;
	// never set it for a real migration.
	NoSync bool
	// Shared says several processes append to the journal at once (apply
	// workers over a Remote). Each append first takes the store's turn
	// (AppendTurns, when the store has turns) and folds the records the
	// others appended after this journal's head, checking their chain as
	// opening does. An append that still finds its seq taken
	// (ErrConflict) folds the others' records again, gives the record the
	// next seq and the new head's hash, and tries again (at most
	// SharedAppendTries times). A record's content never depends on the
	// head, so it means the same at any place in the chain. Only a Remote
	// journal can be shared: Open refuses it for a state directory
	// (ErrSharedNeedsRemote).
	Shared bool
}

// SharedAppendTries bounds the tries of one append to a shared journal;
// each failed try means another process appended first, so the journal
// as a whole always progresses.
const SharedAppendTries = 100

// Journal is an open journal. Its methods are safe for concurrent use.
type Journal struct {
	mu      sync.Mutex
	dir     string
	f       *os.File // nil for a read-only journal whose file does not exist
	opts    Options
	seq     uint64
	head    string // hex SHA-256 of the last line, "" when empty
	size    int64  // bytes of complete lines
	state   *State
	repair  string
	snapPos int64 // offset covered by the snapshot read at Open (0: none)

	// remote, when set, stores the records instead of f (Remote).
	remote     RecordStore
	snapSerial uint64      // serial covered by the remote snapshot (0: none)
	closers    []io.Closer // closed by Close (CloseWith)
}

// Open opens (or, unless read-only, creates) the journal in dir and folds
// it into State, starting from the snapshot when it is valid.
func Open(dir string, opts *Options) (*Journal, error) {
	j := &Journal{dir: dir, state: &State{}}
	if opts != nil {
		j.opts = *opts
	}
	if j.opts.Now == nil {
		j.opts.Now = time.Now
	}
	if j.opts.Logger == nil {
		j.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if j.opts.Shared {
		return nil, ErrSharedNeedsRemote
	}
	path := filepath.Join(dir, JournalFile)
	var err error
	if j.opts.ReadOnly {
		j.f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return j, nil
		}
	} else {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
		j.f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	}
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := j.load(); err != nil {
		j.f.Close()
		return nil, err
	}
	return j, nil
}

// load folds the journal from the snapshot (when valid) or the start.
func (j *Journal) load() error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("stat journal: %w", err)
	}
	fileSize := st.Size()
	var pos int64
	if snap, err := readSnapshot(j.dir); err == nil && snap.Offset > 0 && snap.Offset <= fileSize {
		if h, err := hashLineBefore(j.f, snap.Offset); err == nil && h == snap.Head {
			j.state = snap.State
			if j.state.Accounts == nil {
				j.state.Accounts = map[string]*Account{}
			}
			j.seq, j.head, pos, j.snapPos = snap.State.Serial, snap.Head, snap.Offset, snap.Offset
		} else {
			j.opts.Logger.Warn("journal snapshot does not match the journal; folding it again", "err", err)
		}
	}
	if _, err := j.f.Seek(pos, io.SeekStart); err != nil {
		return fmt.Errorf("seek journal: %w", err)
	}
	return j.fold(pos)
}

// Folding reads the journal in blocks of whole lines; workers decode and
// hash the blocks in parallel (JSON decoding is most of the cost of
// opening a long journal without a snapshot), and the records are checked
// and applied in order.
const foldBlock = 1 << 20

type foldIn struct {
	idx  int
	data []byte
}

type foldOut struct {
	idx    int
	recs   []Record
	hashes []string
	lens   []int
	err    error
}

func decodeBlock(b foldIn) foldOut {
	out := foldOut{idx: b.idx}
	data := b.data
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		body := data[:i]
		r, err := parseRecord(body)
		if err != nil {
			out.err = err
			return out
		}
		out.recs = append(out.recs, r)
		out.hashes = append(out.hashes, hashLine(body))
		out.lens = append(out.lens, i+1)
		data = data[i+1:]
	}
	return out
}

// fold folds the journal from the current file offset pos to its end.
func (j *Journal) fold(pos int64) error {
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	in := make(chan foldIn, workers)
	out := make(chan foldOut, workers)
	stop := make(chan struct{})
	var (
		tail    int   // bytes after the last newline at EOF
		readErr error // set by the reader before it closes in
	)
	go func() {
		defer close(in)
		var carry []byte
		for idx := 0; ; {
			buf := make([]byte, len(carry)+foldBlock)
			copy(buf, carry)
			n, err := io.ReadFull(j.f, buf[len(carry):])
			data := buf[:len(carry)+n]
			eof := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !eof {
				readErr = err
				return
			}
			last := bytes.LastIndexByte(data, '\n')
			if last >= 0 {
				select {
				case in <- foldIn{idx: idx, data: data[:last+1]}:
					idx++
				case <-stop:
					return
				}
			}
			carry = data[last+1:]
			if eof {
				tail = len(carry)
				return
			}
			if len(carry) > maxLine {
				readErr = fmt.Errorf("a journal line after byte %d is longer than %d bytes", pos, maxLine)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range in {
				select {
				case out <- decodeBlock(b):
				case <-stop:
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()

	prev := j.head
	var ferr error
	pending := map[int]foldOut{}
	next := 0
	fail := func(err error) {
		if ferr == nil {
			ferr = err
			close(stop)
		}
	}
	for res := range out {
		if ferr != nil {
			continue // drain
		}
		pending[res.idx] = res
		for {
			r, ok := pending[next]
			if !ok || ferr != nil {
				break
			}
			delete(pending, next)
			next++
			for i := range r.recs {
				rec := &r.recs[i]
				if rec.Seq != j.seq+1 {
					fail(fmt.Errorf("journal record after seq %d has seq %d (run \"mailmig journal verify\")", j.seq, rec.Seq))
					break
				}
				// Check the chain as it is folded: a snapshot vouches for
				// what it covers, so only the tail since it costs hashing.
				if rec.Prev != prev {
					fail(fmt.Errorf("journal record %d does not carry the hash of record %d: the journal was modified (run \"mailmig journal verify\")", rec.Seq, j.seq))
					break
				}
				prev = r.hashes[i]
				j.state.Apply(rec)
				j.seq = rec.Seq
				pos += int64(r.lens[i])
			}
			if ferr == nil && r.err != nil {
				fail(fmt.Errorf("journal record after seq %d is unreadable (run \"mailmig journal verify\"): %w", j.seq, r.err))
			}
		}
	}
	if ferr != nil {
		return ferr
	}
	if readErr != nil {
		return fmt.Errorf("read journal at byte %d: %w", pos, readErr)
	}
	j.head = prev
	j.size = pos
	if tail > 0 {
		return j.cutPartial(pos, tail)
	}
	return nil
}

// cutPartial handles an incomplete last line of n bytes at offset pos: the
// trace of a crash during an append that was never acknowledged.
func (j *Journal) cutPartial(pos int64, n int) error {
	j.size = pos
	if j.opts.ReadOnly {
		j.repair = fmt.Sprintf("ignored an incomplete last record (%d bytes) after seq %d", n, j.seq)
		return nil
	}
	if err := j.f.Truncate(pos); err != nil {
		return fmt.Errorf("cut incomplete journal record: %w", err)
	}
	if err := j.sync(); err != nil {
		return err
	}
	j.repair = fmt.Sprintf("removed an incomplete last record (%d bytes) after seq %d, left by an interrupted write", n, j.seq)
	j.opts.Logger.Warn("journal repaired", "detail", j.repair)
	return nil
}

// Repaired describes the repair Open made (or, read-only, would make), or
// returns "".
func (j *Journal) Repaired() string { return j.repair }

// Dir returns the state directory.
func (j *Journal) Dir() string { return j.dir }

// Lineage returns the journal's lineage, "" while it is empty.
func (j *Journal) Lineage() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.Lineage
}

// Serial returns the number of records.
func (j *Journal) Serial() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq
}

// Head returns the hex hash of the last record, "" while empty.
func (j *Journal) Head() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.head
}

// State returns the current fold. The caller must not modify it and must
// not use it concurrently with Append; use Account for a copy of one
// account while appends may run.
func (j *Journal) State() *State {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state
}

// Account returns a copy of one account's state, or nil.
func (j *Journal) Account(addr string) *Account {
	j.mu.Lock()
	defer j.mu.Unlock()
	a := j.state.Account(addr)
	if a == nil {
		return nil
	}
	c := *a
	return &c
}

// ErrReadOnly is returned by Append on a read-only journal.
var ErrReadOnly = errors.New("journal opened read-only")

// Append completes r (Seq, Prev, Time, Actor, RunID, PlanHash and, on an
// empty journal, a preceding init record with a new lineage), writes it as
// one line, fsyncs and folds it. It returns the record as written. On a
// shared journal (Options.Shared) the records appended by others since
// this journal's head are folded first.
func (j *Journal) Append(r Record) (Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.opts.ReadOnly || (j.f == nil && j.remote == nil) {
		return r, ErrReadOnly
	}
	if j.opts.Shared && j.remote != nil {
		done, err := j.appendTurn()
		if err != nil {
			return r, err
		}
		defer done()
	}
	if j.seq == 0 && r.Type != TypeInit {
		lin := NewLineage
		if j.opts.Lineage != nil {
			lin = j.opts.Lineage
		}
		// A shared journal that another worker started meanwhile keeps
		// that worker's init record (and lineage).
		if _, err := j.appendLocked(Record{Type: TypeInit, Lineage: lin()}); err != nil && !errors.Is(err, errStarted) {
			return r, err
		}
	}
	r, err := j.appendLocked(r)
	if errors.Is(err, errStarted) {
		err = fmt.Errorf("an init record on a journal another process started: %w", ErrConflict)
	}
	return r, err
}

// AppendTurns is implemented by a RecordStore whose shared journal's
// appenders can take turns (pgstate: a session advisory lock, granted in
// the order asked): with the turn, the appender folds what the others
// appended and appends at the head, so it does not conflict, and no
// appender can be starved by a faster one. Without it, a shared journal
// relies on the retries alone.
type AppendTurns interface {
	// AppendTurn waits for this process's turn to append; done ends it.
	AppendTurn(ctx context.Context) (done func(), err error)
}

// appendTurn takes the store's append turn (when it has turns) and folds
// what the others appended meanwhile; with j.mu held.
func (j *Journal) appendTurn() (done func(), err error) {
	done = func() {}
	if t, ok := j.remote.(AppendTurns); ok {
		ctx, cancel := context.WithTimeout(context.Background(), RemoteTimeout)
		defer cancel()
		if done, err = t.AppendTurn(ctx); err != nil {
			return nil, fmt.Errorf("wait for the turn to append to the journal in %s: %w", j.remote.Where(), err)
		}
	}
	if err := j.refreshRemote(); err != nil {
		done()
		return nil, err
	}
	return done, nil
}

// errStarted: an init record lost the race for seq 1 of a shared journal.
var errStarted = errors.New("the journal was started by another process")

func (j *Journal) appendLocked(r Record) (Record, error) {
	if r.Time.IsZero() {
		r.Time = j.opts.Now()
	}
	r.Time = r.Time.UTC()
	if r.Actor == "" {
		r.Actor = j.opts.Actor
	}
	if r.RunID == "" {
		r.RunID = j.opts.RunID
	}
	if r.PlanHash == "" && r.Type != TypeInit {
		r.PlanHash = j.opts.PlanHash
	}
	if j.opts.Redact != nil {
		r.Error, r.Note = j.opts.Redact(r.Error), j.opts.Redact(r.Note)
		// Mismatches hold names and header values; redact their text
		// too, on a copy: the caller's slice stays as it was.
		if len(r.Mismatches) > 0 {
			ms := make([]Mismatch, len(r.Mismatches))
			for i, m := range r.Mismatches {
				red := j.opts.Redact
				m.Mailbox, m.MessageID, m.TargetID, m.Item, m.Want, m.Got = red(m.Mailbox), red(m.MessageID), red(m.TargetID), red(m.Item), red(m.Want), red(m.Got)
				ms[i] = m
			}
			r.Mismatches = ms
		}
	}
	for try := 1; ; try++ {
		r.Seq, r.Prev = j.seq+1, j.head
		line, err := json.Marshal(&r)
		if err != nil {
			return r, fmt.Errorf("encode journal record: %w", err)
		}
		if bytes.IndexByte(line, '\n') >= 0 || len(line) > maxLine {
			return r, fmt.Errorf("journal record %d is not a single line of at most %d bytes", r.Seq, maxLine)
		}
		head := hashLine(line)
		if j.remote == nil {
			return j.appendFile(r, line, head)
		}
		out, err := j.appendRemote(r, line, head)
		if err == nil || !j.opts.Shared || !errors.Is(err, ErrConflict) {
			return out, err
		}
		if try >= SharedAppendTries {
			return out, fmt.Errorf("%w (gave up after %d tries: too many processes appending at once)", err, try)
		}
		// Another process appended first (without taking turns): after a
		// short random pause, which keeps the writers that lost from
		// colliding again at once, fold what it wrote and take the next
		// seq.
		time.Sleep(time.Duration(mrand.Int64N(int64(time.Millisecond) << min(try, 4))))
		if err := j.refreshRemote(); err != nil {
			return r, err
		}
		if r.Type == TypeInit && j.seq > 0 {
			return r, errStarted
		}
	}
}

// appendFile writes one encoded record (without newline) to journal.jsonl
// and folds it.
func (j *Journal) appendFile(r Record, line []byte, head string) (Record, error) {
	line = append(line, '\n')
	if _, err := j.f.Write(line); err != nil {
		// Leave no partial line behind for the next append.
		_ = j.f.Truncate(j.size)
		return r, fmt.Errorf("write journal: %w", err)
	}
	if err := j.sync(); err != nil {
		return r, err
	}
	j.seq, j.head = r.Seq, head
	j.size += int64(len(line))
	j.state.Apply(&r)
	return r, nil
}

// Refresh folds the records other processes appended after this
// journal's head (a shared journal's workers, or a reader following a
// remote journal), with the same chain checks as opening. A state
// directory's journal has one writer, under the lock: Refresh does
// nothing there.
func (j *Journal) Refresh(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.remote == nil {
		return nil
	}
	if err := j.foldRemote(ctx); err != nil {
		return fmt.Errorf("read the journal from %s: %w", j.remote.Where(), err)
	}
	return nil
}

func (j *Journal) sync() error {
	if j.opts.NoSync {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("fsync journal: %w", err)
	}
	return nil
}

// Close closes the journal file (a remote journal holds nothing of its
// own) and what CloseWith added.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	if j.f != nil {
		errs = append(errs, j.f.Close())
		j.f = nil
	}
	for _, c := range j.closers {
		errs = append(errs, c.Close())
	}
	j.closers = nil
	return errors.Join(errs...)
}

// NewLineage returns a new random lineage id in UUID form.
func NewLineage() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// hashLine returns the hex SHA-256 of a line without its newline.
func hashLine(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}

// hashLineBefore hashes the complete line that ends just before offset end
// (end points after its newline).
func hashLineBefore(f *os.File, end int64) (string, error) {
	if end <= 0 {
		return "", errors.New("no line before offset 0")
	}
	chunk := int64(4096)
	var buf []byte
	for {
		start := max(end-chunk, 0)
		buf = make([]byte, end-start)
		if _, err := f.ReadAt(buf, start); err != nil {
			return "", err
		}
		if buf[len(buf)-1] != '\n' {
			return "", errors.New("offset does not end a line")
		}
		if i := bytes.LastIndexByte(buf[:len(buf)-1], '\n'); i >= 0 {
			return hashLine(buf[i+1 : len(buf)-1]), nil
		}
		if start == 0 {
			return hashLine(buf[:len(buf)-1]), nil
		}
		if chunk > maxLine {
			return "", errors.New("line too long")
		}
		chunk *= 4
	}
}

// ReadRecords calls fn for every complete record of the journal in dir, in
// order, until fn returns false. A missing journal has no records.
func ReadRecords(dir string, fn func(*Record) bool) error {
	f, err := os.Open(filepath.Join(dir, JournalFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine+1)
	n := 0
	for sc.Scan() {
		n++
		r, err := parseRecord(sc.Bytes())
		if err != nil {
			return fmt.Errorf("journal line %d: %w", n, err)
		}
		if !fn(&r) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	return nil
}

// DefaultActor returns user@host for the current process.
func DefaultActor() string {
	u := os.Getenv("USER")
	if u == "" {
		u = os.Getenv("LOGNAME")
	}
	if u == "" {
		// Containers and CI runners often set neither variable; the
		// account database still knows who runs the process.
		if cu, err := user.Current(); err == nil && cu.Username != "" {
			u = cu.Username
		} else {
			u = "unknown"
		}
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return u + "@" + h
}

// ciRunVars are environment variables that carry a CI run id, in order of
// preference, with the prefix used in the journal.
var ciRunVars = []struct{ env, prefix string }{
	{"MAILMIG_RUN_ID", ""},
	{"GITHUB_RUN_ID", "github:"},
	{"CI_PIPELINE_ID", "gitlab:"},
	{"BUILDKITE_BUILD_ID", "buildkite:"},
	{"CIRCLE_WORKFLOW_ID", "circleci:"},
	{"BUILD_TAG", "jenkins:"},
}

// RunIDFromEnv returns the CI run id found in the environment, or "".
func RunIDFromEnv(getenv func(string) string) string {
	for _, v := range ciRunVars {
		if s := strings.TrimSpace(getenv(v.env)); s != "" {
			if v.env == "GITHUB_RUN_ID" {
				if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" {
					s += "." + a
				}
			}
			return v.prefix + s
		}
	}
	return ""
}
