package main

import (
	"context"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// runningApply returns the apply (or other locking command) that holds
// the state lock now, unless its process is known to be gone: a lock of
// a live process on this host (pid checked), or of a process on another
// host (which cannot be checked). Nil when the state is unlocked, the
// holder died (a crash: what it left in flight is interrupted), or the
// lock cannot be read.
func runningApply(m *plan.Migration) *engine.RunningApply {
	b, err := openState(context.Background(), m, false)
	if err != nil {
		return nil
	}
	defer b.Close()
	info, err := b.ReadLock(context.Background())
	if err != nil || info == nil {
		return nil
	}
	l := info.Liveness()
	if l == state.LockDead {
		return nil
	}
	return &engine.RunningApply{LockInfo: *info, Liveness: l}
}

// inFlightStatus words what an action in flight is doing, given the
// lock's holder: "running" (its apply is alive), "maybe running" (the
// lock is held on another host) or "interrupted".
func inFlightStatus(run *engine.RunningApply) string {
	switch {
	case run == nil:
		return "interrupted"
	case run.Liveness == state.LockElsewhere:
		return "maybe running"
	}
	return "running"
}
