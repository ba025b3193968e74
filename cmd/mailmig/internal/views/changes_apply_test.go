package views

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// TestApplyProgress drives both progress displays from concurrent workers
// the way engine.Apply does.
func TestApplyProgress(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			var buf syncBuffer
			v := New(&buf, &buf, false)
			p := v.NewApplyProgress(20, tty, func() time.Time { return time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC) })
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &engine.Change{ID: fmt.Sprintf("cutover:u%d@example.test", i), Account: fmt.Sprintf("u%d@example.test", i), Action: engine.Cutover, Source: "legacy"}
					p.PreAction(c)
					p.Step(c, "freeze")
					p.Progress(c, 1, 2)
					p.Step(c, "final catch-up")
					p.Work(c, engine.Work{Messages: 4, TotalMessages: 4, Bytes: 4096, TotalBytes: 4096})
					r := &engine.Result{Change: c, Outcome: state.OutcomeOK, Counts: state.Counts{Messages: 3}, Duration: time.Second}
					if i%5 == 0 {
						r.Outcome, r.Err, r.Error = state.OutcomeRolledBack, errors.New("verify"), "verify found 1 mismatch"
					}
					p.PostAction(c, r)
				}()
			}
			wg.Wait()
			p.Finish()
			out := buf.String()
			if !strings.Contains(out, "u1@example.test cutover: done (3 messages, 1s)") {
				t.Errorf("no result line:\n%s", out)
			}
			if !strings.Contains(out, "u5@example.test cutover: ROLLED BACK to legacy, unfrozen: verify found 1 mismatch") {
				t.Errorf("no rollback line:\n%s", out)
			}
			if !tty && !strings.Contains(out, "2026-12-07T03:00:00Z u3@example.test cutover: freeze\n") {
				t.Errorf("no timestamped step line in plain mode:\n%s", out)
			}
			if !tty && !strings.Contains(out, "2026-12-07T03:00:00Z u3@example.test cutover final catch-up: 4 of 4 messages, 4.0 KiB of 4.0 KiB") {
				t.Errorf("no work line in plain mode:\n%s", out)
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
