package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
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
}

type fakeExec struct {
	mu   sync.Mutex
	path string
	d    fakeData
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
		if write {
			w.Exec = fe
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
	if err := f.failure(job, "import"); err != nil {
		return state.Counts{}, err
	}
	k := engine.Key(job.Account.Address)
	n := f.d.Source[k] - f.d.Archive[k]
	ch := f.d.Changed[k]
	f.d.Archive[k] = f.d.Source[k]
	delete(f.d.Changed, k)
	return state.Counts{Messages: n + ch, New: n, Changed: ch, Bytes: (n + ch) * 2048}, f.save()
}

func (f *fakeExec) Export(ctx context.Context, job *engine.Job) (state.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(job, "export"); err != nil {
		return state.Counts{}, err
	}
	k := engine.Key(job.Account.Address)
	n := f.d.Archive[k] - f.d.Target[k]
	f.d.Target[k] = f.d.Archive[k]
	return state.Counts{Messages: n, Bytes: n * 2048}, f.save()
}

func (f *fakeExec) Verify(ctx context.Context, job *engine.Job) (state.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
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

// Detect reports messages on the source that the archive lacks as new.
func (f *fakeExec) Detect(ctx context.Context, acct *plan.Account) (engine.Delta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := engine.Key(acct.Address)
	return engine.Delta{New: f.d.Source[k] - f.d.Archive[k], Changed: f.d.Changed[k]}, nil
}
