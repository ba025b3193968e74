package imap_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// buildMailmig builds the CLI once per test binary.
func buildMailmig(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailmig")
	cmd := exec.Command("go", "build", "-o", bin, "../../../cmd/mailmig")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build mailmig: %v\n%s", err, out)
	}
	return bin
}

// TestKillAndResume SIGKILLs "mailmig vandelay import imap" at random
// moments, checks after each kill that the archive is consistent, and
// that the final run fetches exactly the messages not yet committed.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	a := newAccount(t)
	a.load(t, 7, 400)
	bin := buildMailmig(t)
	arPath := filepath.Join(t.TempDir(), "kill.db")
	args := []string{"vandelay", "import", "imap", "--server", a.addr, "--tls", "none", "--allow-cleartext",
		"--user", a.user, "--password-env", "MM_TEST_PW", "--progress", "none", "--batch", "20",
		"--max-messages-per-second", "300", "--json", arPath}
	env := append(os.Environ(), "MM_TEST_PW="+a.pass)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	ctx := context.Background()
	var committed, committedMsgs int64
	kills := 0
	for i := 0; i < 8; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-time.After(time.Duration(40+rng.IntN(200)) * time.Millisecond):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		case <-done:
		}
		ar, err := archive.Open(ctx, arPath, &archive.Options{ReadOnly: true})
		if errors.Is(err, archive.ErrNotExist) && committedMsgs == 0 {
			// Killed before the first run committed its schema: an empty
			// archive, which the next run creates afresh.
			continue
		}
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		st, err := ar.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages < committedMsgs {
			t.Errorf("after kill %d: %d messages, fewer than %d before", i, st.Messages, committedMsgs)
		}
		committedMsgs = st.Messages
		// Copies (message in mailbox) decide what a run fetches.
		counts, err := ar.MailboxCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		committed = 0
		for _, c := range counts {
			committed += c.Messages
		}
		// Every committed message has its blob, hash-equal.
		for m, err := range ar.Messages(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			b, err := ar.BlobBytes(ctx, m.Blob)
			if err != nil || archive.Hash(b) != m.Blob || len(m.MailboxIDs) == 0 {
				t.Fatalf("after kill %d: message %d inconsistent (%v)", i, m.ID, err)
			}
		}
		ar.Close()
	}
	t.Logf("%d kills, %d messages (%d copies) committed before the final run", kills, committedMsgs, committed)
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	var res struct{ Fetched, MessagesAdded int }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("final run output %q: %v", out, err)
	}
	var copies int64
	for _, mb := range want.Mailboxes {
		copies += int64(len(mb.Messages))
	}
	if int64(res.Fetched) != copies-committed {
		t.Errorf("final run fetched %d bodies, want %d (%d copies, %d committed)", res.Fetched, copies-committed, copies, committed)
	}
	ar, err := archive.Open(ctx, arPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	vandelaytest.Check(t, ar, want)
	// Nothing doubled in the pack either: the bytes of kills' uncommitted
	// batches were dropped (by the next run's open), so the pack holds
	// each stored blob once.
	st, err := ar.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PackBytes != int64(archive.PackHeader)+st.BlobBytes {
		t.Errorf("pack file %d bytes, want %d (header + %d blobs of %d bytes)", st.PackBytes, int64(archive.PackHeader)+st.BlobBytes, st.Blobs, st.BlobBytes)
	}
}
