package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// fakeData is the JSON file behind the fake executor: message counts of
// each account at the source, in the archive and at the target, and
// injected failures ("account/step" → error text; steps are import,
// export, verify). Routes live in the plan's real SQLite route table.
type fakeData struct {
	Source   map[string]int64  `json:"source"`
	Changed  map[string]int64  `json:"changed,omitempty"`
	Archive  map[string]int64  `json:"archive"`
	Target   map[string]int64  `json:"target"`
	Fail     map[string]string `json:"fail,omitempty"`
	Mismatch map[string]int64  `json:"mismatch,omitempty"`
	// Probe is what the fake probe reports besides the new messages it
	// computes (source − archive), like the real one's counters would.
	Probe map[string]fakeProbe `json:"probe,omitempty"`
	// Check and Quota drive the fake pre-flight (fakeChecker).
	Check map[string]string `json:"check,omitempty"`
	// Duplicates and KeywordsMerged are what the fake export reports the
	// target folded together (totals, like the real one's).
	Duplicates     map[string]int64 `json:"duplicates,omitempty"`
	KeywordsMerged map[string]int64 `json:"keywords_merged,omitempty"`
	// Conflicts is what the fake export reports kept at the target's
	// own version (contacts, events, files, scripts the user edited).
	Conflicts map[string]int64 `json:"conflicts,omitempty"`
	Quota     map[string]int64 `json:"quota,omitempty"`
}

// fakeProbe is the part of a probe result the counts cannot give.
type fakeProbe struct {
	Mailboxes int64 `json:"mailboxes,omitempty"`
	Added     int   `json:"added,omitempty"`
	Removed   int   `json:"removed,omitempty"`
}

type fakeExec struct {
	mu   sync.Mutex
	path string
	d    fakeData
	// crashAt, from MAILMIG_TEST_CRASH, kills the process with SIGKILL at
	// the crashAt-th event (start or end of a step or route change).
	crashAt, events int
}

// tick counts an event and kills the process at the chosen one, like
// kill -9 from outside would at that instant.
func (f *fakeExec) tick() {
	f.events++
	if f.crashAt > 0 && f.events == f.crashAt {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal arrives asynchronously
	}
}

// crashRouter counts route changes as events around the real table.
type crashRouter struct {
	engine.Router
	f *fakeExec
}

func (r crashRouter) SetRoute(ctx context.Context, account, backend string, frozen bool) error {
	r.f.mu.Lock()
	r.f.tick()
	r.f.mu.Unlock()
	err := r.Router.SetRoute(ctx, account, backend, frozen)
	r.f.mu.Lock()
	r.f.tick()
	r.f.mu.Unlock()
	return err
}

func fakeWorldOpener(path string) func(ctx context.Context, m *plan.Migration, write bool, log *slog.Logger) (*world, error) {
	return func(ctx context.Context, m *plan.Migration, write bool, log *slog.Logger) (*world, error) {
		w, err := openRealWorld(ctx, m, write, log)
		if err != nil {
			return nil, err
		}
		fe := &fakeExec{path: path}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &fe.d); err != nil {
			return nil, fmt.Errorf("fake world %s: %w", path, err)
		}
		for _, mp := range []*map[string]int64{&fe.d.Source, &fe.d.Archive, &fe.d.Target, &fe.d.Changed, &fe.d.Mismatch} {
			if *mp == nil {
				*mp = map[string]int64{}
			}
		}
		if n, err := strconv.Atoi(os.Getenv("MAILMIG_TEST_CRASH")); err == nil {
			fe.crashAt = n
		}
		if write {
			w.Exec = fe
			if w.Router != nil {
				w.Router = crashRouter{w.Router, fe}
			}
		}
		w.Detector = fe
		return w, nil
	}
}

// save writes the counts after every step, so a killed apply leaves them
// as they were.
func (f *fakeExec) save() error {
	b, err := json.MarshalIndent(&f.d, "", "  ")
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(f.path, b, 0o644)
}

func (f *fakeExec) failure(job *engine.Job, step string) error {
	if msg := f.d.Fail[engine.Key(job.Account.Address)+"/"+step]; msg != "" {
		return errors.New(msg)
	}
	return nil
}

func (f *fakeExec) Import(ctx context.Context, job *engine.Job) (state.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tick()
	defer f.tick()
	if err := f.failure(job, "import"); err != nil {
		return state.Counts{}, err
	}
	k := engine.Key(job.Account.Address)
	n := f.d.Source[k] - f.d.Archive[k]
	ch := f.d.Changed[k]
	f.d.Archive[k] = f.d.Source[k]
	delete(f.d.Changed, k)
	delete(f.d.Probe, k)
	work(job, n+ch)
	return state.Counts{Messages: n + ch, New: n, Changed: ch, Bytes: (n + ch) * 2048}, f.save()
}

func (f *fakeExec) Export(ctx context.Context, job *engine.Job) (state.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tick()
	defer f.tick()
	if err := f.failure(job, "export"); err != nil {
		return state.Counts{}, err
	}
	k := engine.Key(job.Account.Address)
	n := f.d.Archive[k] - f.d.Target[k]
	f.d.Target[k] = f.d.Archive[k]
	work(job, n)
	return state.Counts{Messages: n, Bytes: n * 2048, Duplicates: f.d.Duplicates[k], KeywordsMerged: f.d.KeywordsMerged[k], Conflicts: f.d.Conflicts[k]}, f.save()
}

// work reports n messages of 2 KiB done of n, as a real executor
// reports its progress (half way, then complete).
func work(job *engine.Job, n int64) {
	if job.Work == nil || n == 0 {
		return
	}
	job.Work(engine.Work{Messages: n / 2, TotalMessages: n, Bytes: n / 2 * 2048, TotalBytes: n * 2048})
	job.Work(engine.Work{Messages: n, TotalMessages: n, Bytes: n * 2048, TotalBytes: n * 2048})
}

func (f *fakeExec) Verify(ctx context.Context, job *engine.Job) (state.Counts, error) {
	if os.Getenv("MAILMIG_TEST_SLOW") == "verify" {
		// A slow server: long enough for a test to press Ctrl-C.
		// It answers a cancelled context (the second Ctrl-C) at once.
		fmt.Fprintln(os.Stderr, "fake: verify is slow")
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "fake: verify cancelled")
			return state.Counts{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tick()
	defer f.tick()
	if err := f.failure(job, "verify"); err != nil {
		return state.Counts{}, err
	}
	k := engine.Key(job.Account.Address)
	c := state.Counts{Messages: f.d.Target[k], Mismatches: f.d.Mismatch[k]}
	if f.d.Source[k] != f.d.Target[k] {
		c.Mismatches++
	}
	return c, nil
}

// Detect is a fake probe: like the real one (counters, no FETCH) it
// reports new messages as the growth of the source over the archive,
// re-flagged messages only as changed mailboxes (one when the world says
// some changed and names no count), and folders added or removed. An
// account without an archive probes as not imported, with its size at the
// source (1 KiB a message, as fakeChecker counts).
func (f *fakeExec) Detect(ctx context.Context, acct *plan.Account) (engine.Delta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := engine.Key(acct.Address)
	if _, ok := f.d.Archive[k]; !ok {
		n := f.d.Source[k]
		return engine.Delta{Approx: true, NotImported: true, New: n,
			Source: &engine.SourceSize{Messages: n, Bytes: n << 10, BytesFrom: "status-size", Approx: true}}, nil
	}
	p := f.d.Probe[k]
	d := engine.Delta{Approx: true, Mailboxes: p.Mailboxes, FoldersAdded: p.Added, FoldersRemoved: p.Removed}
	if n := f.d.Source[k] - f.d.Archive[k]; n > 0 {
		d.New = n
	} else {
		d.Deleted = -n
	}
	if d.Mailboxes == 0 && (f.d.Changed[k] > 0 || d.New > 0 || d.Deleted > 0) {
		d.Mailboxes = 1
	}
	return d, nil
}

// fakeChecker answers "plan -check" from the world file: Check maps
// "account/side" (side source or target) to "auth", "missing" or
// "unreachable"; Source counts become sizes (1 KiB a message) and Quota
// maps an account to its target quota limit in bytes.
type fakeChecker struct{ d fakeData }

func fakeCheckerFrom(path string) (*fakeChecker, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &fakeChecker{}
	if err := json.Unmarshal(b, &f.d); err != nil {
		return nil, fmt.Errorf("fake world %s: %w", path, err)
	}
	return f, nil
}

func (f *fakeChecker) err(acct *plan.Account, side string) error {
	switch f.d.Check[engine.Key(acct.Address)+"/"+side] {
	case "auth":
		return fmt.Errorf("%w: log in as %s: NO [AUTHENTICATIONFAILED]", vandelay.ErrAuth, acct.Address)
	case "missing":
		return fmt.Errorf("%w: %q", vandelay.ErrAccountMissing, acct.Address)
	case "unreachable":
		return fmt.Errorf("%w: connect: connection refused", vandelay.ErrConnect)
	}
	return nil
}

func (f *fakeChecker) CheckSource(ctx context.Context, acct *plan.Account, lim *engine.Limiter) (*vandelay.SourceCheck, error) {
	if err := f.err(acct, "source"); err != nil {
		return nil, err
	}
	return &vandelay.SourceCheck{Size: f.d.Source[engine.Key(acct.Address)] << 10, SizeFrom: "status-size", Unknown: []string{"quota: the server offers no QUOTA"}}, nil
}

func (f *fakeChecker) CheckTarget(ctx context.Context, acct *plan.Account, lim *engine.Limiter) (*vandelay.TargetCheck, error) {
	if err := f.err(acct, "target"); err != nil {
		return nil, err
	}
	t := &vandelay.TargetCheck{AccountID: acct.Address, Capabilities: []string{"urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"}}
	if q := f.d.Quota[engine.Key(acct.Address)]; q > 0 {
		t.Quota = &vandelay.Quota{Limit: q}
	}
	return t, nil
}
