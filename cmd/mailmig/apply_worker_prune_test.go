package main

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
)

// TestApplyWorkerTakeoverDeleted: worker w1 stages an account (its archive
// on w1's machine, its messages exported to Cyrus) and stops; the user
// deletes (and expunges) a message at Dovecot; w2 takes the account over
// (-take-over-stopped: w1's machine is gone) and imports it again into a
// new archive that never held the deleted message, which stays on Cyrus.
// Without -prune-on-takeover the cut-over rolls back, its error naming the
// extra email and the way out; with it the final catch-up prunes the
// email, the cut-over completes, Cyrus holds exactly Dovecot's messages by
// hash (the deleted one gone, none twice) and the journal verifies.
func TestApplyWorkerTakeoverDeleted(t *testing.T) {
	f := newWorkerFleet(t, 1, 4, "w1", "w2")
	a := f.accts[0]
	k := engine.Key(a.Email)
	f.runAll("w1") // staging: archive on w1, messages on Cyrus
	gone := expungeFirst(t, f.s, a)
	if !slices.Contains(messageHashes(t, f.s.Cyrus.IMAP, a), gone) {
		t.Fatalf("the message deleted at Dovecot was not on Cyrus after staging")
	}

	// w2 takes the account over and imports it again (the rehomed
	// catch-up); the stale message stays on Cyrus.
	if out := f.runAll2("w2", 0, "-take-over-stopped"); !strings.Contains(out, "taken over") {
		t.Fatalf("w2 does not say it took the account over:\n%s", out)
	}
	// Its cut-over rolls back: verify finds the email extra, and says why.
	out := f.runAll2("w2", 1)
	for _, want := range []string{"rolled back", "1 email this worker's archive does not", "-prune-on-takeover"} {
		if !strings.Contains(out, want) {
			t.Errorf("cut-over without -prune-on-takeover: output lacks %q:\n%s", want, out)
		}
	}
	var fin *state.Record
	for _, r := range f.records() {
		if r.Type == state.TypeFinish && r.Action == "cutover" && r.Account == k {
			fin = &r
		}
	}
	if fin == nil || fin.Outcome != state.OutcomeRolledBack || !strings.Contains(fin.Error, "-prune-on-takeover") ||
		len(fin.Mismatches) == 0 || !slices.ContainsFunc(fin.Mismatches, func(m state.Mismatch) bool { return m.Kind == "extra" }) {
		t.Fatalf("journaled cut-over: %+v", fin)
	}
	if b, fr := f.route(k); b != "legacy" || fr {
		t.Fatalf("after the rollback: route %s frozen=%v", b, fr)
	}

	// The wave halted on the rolled-back cut-over: release, then cut over
	// with -prune-on-takeover.
	f.cli("w2", exitOK, "state", "release", k)
	out = f.runAll2("w2", 0, "-prune-on-takeover")
	if !strings.Contains(out, "pruned 1 email(s)") {
		t.Errorf("w2 does not say it pruned the extra email:\n%s", out)
	}
	if b, fr := f.route(k); b != "cyrus" || fr {
		t.Fatalf("after the cut-over with -prune-on-takeover: route %s frozen=%v", b, fr)
	}
	pruned := int64(0)
	for _, r := range f.records() {
		if r.Type == state.TypeFinish && r.Account == k && r.Counts != nil {
			pruned += r.Counts.Pruned
		}
	}
	if pruned != 1 {
		t.Errorf("the journal counts %d pruned emails, want 1", pruned)
	}
	if slices.Contains(messageHashes(t, f.s.Cyrus.IMAP, a), gone) {
		t.Errorf("the message deleted at Dovecot is still on Cyrus")
	}
	f.checkMessages()
	f.verify("w2")
}

// runAll2 runs one worker with extra flags and wants exit code want.
func (f *workerFleet) runAll2(worker string, want int, args ...string) string {
	f.t.Helper()
	cmd, out := f.start(worker, nil, append([]string{"-parallelism", f.par}, args...)...)
	err := cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			code = ws.ExitStatus()
		}
	}
	f.t.Logf("worker %s %v (exit %d):\n%s", worker, args, code, out.String())
	if code != want {
		f.t.Fatalf("worker %s %v: exit %d, want %d", worker, args, code, want)
	}
	return out.String()
}

// expungeFirst deletes and expunges the first message of the account's
// INBOX at Dovecot and returns the SHA-256 of its bytes.
func expungeFirst(t *testing.T, s *peers.Set, a peers.Account) string {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	one := imap.SeqSetNum(1)
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(one, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch the first message: %v (%d)", err, len(msgs))
	}
	sum := sha256.Sum256(msgs[0].FindBodySection(body))
	if err := c.Store(one, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	return hex.EncodeToString(sum[:])
}
