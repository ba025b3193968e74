package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

// noTurns hides the Store's AppendTurn: its appenders rely on retrying
// after a conflict alone.
type noTurns struct{ state.RecordStore }

// TestSharedJournal: three workers, each with its own Store (connections)
// and its shared lock, append 50 records each at the same time to an
// empty journal: one chain of 151 records (one init) that verifies, every
// record there once, and each worker's fold, refreshed, equals a fresh
// fold of the table. Both with the appenders taking turns (the Store's)
// and with retries after conflicts alone.
func TestSharedJournal(t *testing.T) {
	for _, turns := range []bool{true, false} {
		t.Run(map[bool]string{true: "turns", false: "retries"}[turns], func(t *testing.T) { testSharedJournal(t, turns) })
	}
}

func testSharedJournal(t *testing.T, turns bool) {
	ctx := context.Background()
	s, dsn := newStore(t)
	const workers, each = 3, 50
	js := make([]*state.Journal, workers)
	for i := range js {
		var rs state.RecordStore = openOther(t, dsn)
		if !turns {
			rs = noTurns{rs}
		}
		b := state.Remote{Store: rs}
		l, _, err := b.LockShared(ctx, "tester@example.test", fmt.Sprintf("w%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Unlock() })
		if js[i], err = b.OpenJournal(ctx, &state.Options{Shared: true, Actor: fmt.Sprintf("w%d", i+1)}); err != nil {
			t.Fatal(err)
		}
		defer js[i].Close()
	}
	start := make(chan struct{})
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i, j := range js {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for n := range each {
				acct := fmt.Sprintf("w%d-u%02d@example.test", i+1, n%10)
				r := state.Record{Type: state.TypeStart, Account: acct, Action: "import", Wave: "w1"}
				if n%2 == 1 {
					r = state.Record{Type: state.TypeFinish, Account: acct, Action: "import", Outcome: state.OutcomeOK, Counts: &state.Counts{Messages: int64(n)}}
				}
				got, err := j.Append(r)
				if err != nil {
					errs[i] = fmt.Errorf("w%d record %d: %w", i+1, n, err)
					return
				}
				if got.Seq < 2 || got.Actor != fmt.Sprintf("w%d", i+1) {
					errs[i] = fmt.Errorf("w%d appended %+v", i+1, got)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b := state.Remote{Store: s}
	res, err := b.Verify(ctx)
	if err != nil || !res.OK || res.Records != 1+workers*each {
		t.Fatalf("verify %+v %v", res, err)
	}
	perActor, inits, switches, last := map[string]int{}, 0, 0, ""
	if err := b.ReadRecords(ctx, func(r *state.Record) bool {
		if r.Type == state.TypeInit {
			inits++
		} else {
			perActor[r.Actor]++
		}
		if r.Actor != last {
			switches, last = switches+1, r.Actor
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the writers took turns %d times in %d records", switches, res.Records)
	if inits != 1 || len(perActor) != workers || perActor["w1"] != each || perActor["w2"] != each || perActor["w3"] != each {
		t.Fatalf("%d init records, records per worker %v", inits, perActor)
	}
	fresh, err := b.OpenJournal(ctx, &state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	want, _ := json.Marshal(fresh.State())
	for i, j := range js {
		if err := j.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(j.State()); string(got) != string(want) || j.Head() != fresh.Head() {
			t.Fatalf("w%d's fold differs from a fresh fold:\n%s\n%s", i+1, got, want)
		}
	}
	// A shared journal's snapshot is one of them; the next open uses it.
	if err := js[0].WriteSnapshot(); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Verify(ctx); err != nil || !res.OK || res.Warning != "" {
		t.Fatalf("verify with snapshot %+v %v", res, err)
	}
	// A worker that folded less does not replace a longer snapshot.
	if _, err := js[1].Append(state.Record{Type: state.TypeHold, Account: "w2-u00@example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := js[1].WriteSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := js[2].WriteSnapshot(); err != nil {
		t.Fatal(err)
	}
	var serial int64
	if err := s.Pool().QueryRow(ctx, `SELECT serial FROM mailmig_state_snapshot`).Scan(&serial); err != nil || serial != 2+workers*each {
		t.Fatalf("snapshot serial %d %v", serial, err)
	}
}

// TestSharedJournalNeedsRemote: a state directory has one writer.
func TestSharedJournalNeedsRemote(t *testing.T) {
	ctx := context.Background()
	d := state.Dir(t.TempDir())
	if _, err := d.OpenJournal(ctx, &state.Options{Shared: true}); !errors.Is(err, state.ErrSharedNeedsRemote) {
		t.Fatalf("shared journal in a directory: %v", err)
	}
	if _, _, err := d.LockShared(ctx, "tester@example.test", "w1"); !errors.Is(err, state.ErrSharedNeedsRemote) {
		t.Fatalf("shared lock in a directory: %v", err)
	}
}

// TestSharedLock: workers hold the lock together; an exclusive taker is
// refused naming every worker, and a worker is refused while an
// exclusive holder runs; every holder is listed; a worker whose session
// ended cannot append and is cleaned up by the next taker.
func TestSharedLock(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	s1, s2, s3 := openOther(t, dsn), openOther(t, dsn), openOther(t, dsn)
	b1, b2, b3 := state.Remote{Store: s1}, state.Remote{Store: s2}, state.Remote{Store: s3}
	admin := state.Remote{Store: s}

	l1, taken, err := b1.LockShared(ctx, "one@example.test", "w1")
	if err != nil || taken != nil {
		t.Fatal(err, taken)
	}
	l2, _, err := b2.LockShared(ctx, "two@example.test", "w2")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = admin.Lock(ctx, "admin@example.test", "routes set")
	var le *state.LockError
	if !errors.As(err, &le) || !errors.Is(err, state.ErrLocked) || len(le.Holders) != 2 || !strings.Contains(err.Error(), "apply workers w1, w2 hold the state") {
		t.Fatalf("exclusive lock while workers run: %v", err)
	}
	t.Log(err)
	hs, err := admin.ReadLocks(ctx)
	if err != nil || len(hs) != 2 || !hs[0].Shared || hs[0].Worker != "w1" || hs[1].Worker != "w2" || hs[1].Liveness() != state.LockAlive || hs[0].Operation != "apply -worker w1" {
		t.Fatalf("holders %+v %v", hs, err)
	}

	// w1's session ends (its machine went away): it is dead, it cannot
	// append, and the next worker cleans its row up.
	terminate(t, dsn, s1)
	j1, err := b1.OpenJournal(ctx, &state.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j1.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("append of a worker whose session ended: %v", err)
	}
	if hs, err := admin.ReadLocks(ctx); err != nil || len(hs) != 2 || hs[0].Worker != "w2" || hs[1].Liveness() != state.LockDead {
		t.Fatalf("holders after w1 died %+v %v", hs, err)
	}
	_, _, err = admin.Lock(ctx, "admin@example.test", "routes set")
	if !errors.As(err, &le) || len(le.Holders) != 1 || !strings.Contains(err.Error(), "apply worker w2 holds the state") {
		t.Fatalf("exclusive lock while w2 runs: %v", err)
	}
	l3, taken, err := b3.LockShared(ctx, "three@example.test", "w3")
	if err != nil || taken == nil || taken.Worker != "w1" || taken.Liveness() != state.LockDead {
		t.Fatalf("w3 %+v %v", taken, err)
	}
	if hs, err := admin.ReadLocks(ctx); err != nil || len(hs) != 2 || hs[0].Worker != "w2" || hs[1].Worker != "w3" {
		t.Fatalf("holders %+v %v", hs, err)
	}
	// w2 appends through its lock's session.
	j2, err := b2.OpenJournal(ctx, &state.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j2.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); err != nil {
		t.Fatal(err)
	}
	_ = l1.Unlock() // its session ended: nothing to do, no error expected either
	if err := l2.Unlock(); err != nil {
		t.Fatal(err)
	}
	// force-unlock of one worker ends its session.
	hs, _ = admin.ReadLocks(ctx)
	if len(hs) != 1 {
		t.Fatalf("holders %+v", hs)
	}
	if _, err := admin.ForceUnlock(ctx, hs[0].ID); err != nil {
		t.Fatal(err)
	}
	_ = l3.Unlock()

	// An exclusive holder keeps the workers out, naming itself.
	lx, taken, err := admin.Lock(ctx, "admin@example.test", "apply")
	if err != nil || taken != nil {
		t.Fatalf("exclusive %+v %v", taken, err)
	}
	_, _, err = b1.LockShared(ctx, "one@example.test", "w1")
	if !errors.As(err, &le) || le.Info.Owner != "admin@example.test" || le.Info.Shared || len(le.Holders) != 0 {
		t.Fatalf("worker while an apply runs: %v", err)
	}
	t.Log(err)
	if err := lx.Unlock(); err != nil {
		t.Fatal(err)
	}
	if hs, err := admin.ReadLocks(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("holders at the end %+v %v", hs, err)
	}
	if _, _, err := b1.LockShared(ctx, "one@example.test", "w1"); err != nil {
		t.Fatalf("worker after the apply: %v", err)
	}
}
