package jmap_test

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

// TestKillAndResume SIGKILLs "mailmig vandelay import jmap" at random
// moments, checks after each kill that the archive is consistent and
// lost nothing it had committed, and that the final run downloads
// exactly the messages not yet committed: nothing lost, nothing doubled.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	ca := newCyrus(t)
	ca.mkdir(t, "Work", "", true)
	ca.bulk(t, 9, 260, "Inbox", "Work", "Sent")
	bin := filepath.Join(t.TempDir(), "mailmig")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/mailmig").CombinedOutput(); err != nil {
		t.Fatalf("build mailmig: %v\n%s", err, out)
	}
	arPath := filepath.Join(t.TempDir(), "kill.db")
	args := []string{"vandelay", "import", "jmap", "--url", ca.set.Cyrus.JMAPURL(), "--user", ca.acct.Email,
		"--password-env", "MM_TEST_PW", "--progress", "none", "--max-messages-per-second", "200", "--json", arPath}
	env := append(os.Environ(), "MM_TEST_PW="+ca.acct.Password)
	// How long a whole run takes on this machine now (a loaded CI box is
	// several times slower than a quiet one): the kills land inside it.
	start := time.Now()
	scratch := append(append([]string{}, args[:len(args)-1]...), filepath.Join(t.TempDir(), "scratch.db"))
	measure := exec.Command(bin, scratch...)
	measure.Env = env
	if out, err := measure.CombinedOutput(); err != nil {
		t.Fatalf("measuring run: %v\n%s", err, out)
	}
	whole := time.Since(start)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	ctx := context.Background()
	var committed int64
	kills := 0
	for i := 0; i < 6; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-time.After(whole*3/5 + time.Duration(rng.Int64N(int64(whole)*7/20))):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		case <-done:
		}
		ar, err := archive.Open(ctx, arPath, &archive.Options{ReadOnly: true})
		if errors.Is(err, archive.ErrNotExist) && committed == 0 {
			continue
		}
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		st, err := ar.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages < committed {
			t.Errorf("after kill %d: %d messages, fewer than %d before", i, st.Messages, committed)
		}
		committed = st.Messages
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
		if committed > 0 && committed < 260 {
			break // a kill left a partial archive: the final run resumes it
		}
	}
	t.Logf("%d kills in a run of %v, %d messages committed before the final run", kills, whole, committed)
	want := ca.snapshot(t)
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
	if int64(res.Fetched) != int64(want.Count())-committed {
		t.Errorf("final run fetched %d bodies, want %d (%d messages, %d committed)", res.Fetched, int64(want.Count())-committed, want.Count(), committed)
	}
	ar, err := archive.Open(ctx, arPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	vandelaytest.Check(t, ar, want)
}
