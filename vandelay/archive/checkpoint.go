package archive

import (
	"context"
	"sync"
)

// checkpointEvery is how many committed message bytes wake the background
// checkpointer. It was one default batch (RunOptions.BatchBytes) while the
// blob bytes went through the WAL; since they go to the pack file (schema
// 10) the WAL holds a batch's rows and index pages only, about 1–2 MB per
// 200 messages, and a checkpoint per batch mostly added fsyncs competing
// with the pack's for the disk.
const checkpointEvery = 256 << 20

// checkpointer copies the WAL into the database file in the background
// while a run writes (PRAGMA wal_checkpoint(PASSIVE) on a connection of
// its own), so that neither a commit (SQLite's automatic checkpoint runs
// inside the commit that crosses wal_autocheckpoint, with the run's lock
// held) nor Close (which checkpoints what is left, fsync included) has to
// copy and sync the whole import at once. A passive checkpoint never
// waits for the writer and never makes it wait; when it has copied every
// frame, the writer's next transaction restarts the WAL from its start, so
// the WAL file stays about one batch long instead of growing with the
// import. Measured on the 3,000-message import (docs/import.md, "Where the
// time goes"): Close went from 1.4–2.4 s of wall time to 1.1–1.5 s on a
// machine whose disk other test runs kept busy, and from 1.41 s of CPU
// (with the large page cache) to 0.18 s.
type checkpointer struct {
	a     *Archive
	kick  chan struct{}
	done  chan struct{}
	once  sync.Once
	ctx   context.Context
	close context.CancelFunc
}

func startCheckpointer(a *Archive) *checkpointer {
	c := &checkpointer{a: a, kick: make(chan struct{}, 1), done: make(chan struct{})}
	c.ctx, c.close = context.WithCancel(context.Background())
	a.ckptMu.Lock()
	if a.ckpts == nil {
		a.ckpts = map[*checkpointer]bool{}
	}
	a.ckpts[c] = true
	a.ckptMu.Unlock()
	go c.loop()
	return c
}

func (c *checkpointer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		}
		// Errors are not the run's: a checkpoint that fails (busy, I/O)
		// leaves the frames in the WAL, where they are just as safe, for
		// the next checkpoint or Close.
		if _, err := c.a.db.ExecContext(c.ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil && c.ctx.Err() == nil {
			c.a.log.Debug("background checkpoint", "err", err)
		}
	}
}

// wake asks for a checkpoint; it never blocks (one pending request is
// enough: a checkpoint copies everything committed before it starts).
func (c *checkpointer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stop ends the checkpointer and waits for a running checkpoint. Safe on a
// nil checkpointer and more than once.
func (c *checkpointer) stop() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		c.close()
		<-c.done
		c.a.ckptMu.Lock()
		delete(c.a.ckpts, c)
		c.a.ckptMu.Unlock()
	})
}

// stopCheckpointers stops those of runs that were never finished, before
// the database closes under them.
func (a *Archive) stopCheckpointers() {
	a.ckptMu.Lock()
	cs := make([]*checkpointer, 0, len(a.ckpts))
	for c := range a.ckpts {
		cs = append(cs, c)
	}
	a.ckptMu.Unlock()
	for _, c := range cs {
		c.stop()
	}
}
