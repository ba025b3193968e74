package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// killBody is message i of the kill test: 1–300 KiB, every 25th 3 MiB
// (larger than the pack's buffer: written directly), deterministic.
func killBody(i int) []byte {
	rng := rand.New(rand.NewPCG(17, uint64(i)))
	n := 1<<10 + rng.IntN(300<<10)
	if i%25 == 24 {
		n = 3 << 20
	}
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return append([]byte(fmt.Sprintf("Message-ID: <%d@kill>\r\n\r\n", i)), b...)
}

const killMessages = 400

// importKillBodies adds the kill test's messages the archive lacks, in
// batches of 20; the streamed path for every 10th.
func importKillBodies(ctx context.Context, a *Archive) error {
	r, err := a.BeginRun(ctx, src, &RunOptions{BatchMessages: 20})
	if err != nil {
		return err
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	if err != nil {
		return err
	}
	in := boxes["INBOX"].ID
	locs, err := r.Locations(ctx, in)
	if err != nil {
		return err
	}
	for i := 0; i < killMessages; i++ {
		if _, ok := locs[strconv.Itoa(i)]; ok {
			continue
		}
		b := killBody(i)
		m := &NewMessage{Body: b, ReceivedAt: time.Unix(1e9, 0)}
		if i%10 == 9 {
			// The spooled path: a file the kernel copies into the pack.
			f, err := os.CreateTemp(filepath.Dir(a.Path()), "spool")
			if err != nil {
				return err
			}
			os.Remove(f.Name())
			f.Write(b)
			f.Seek(0, 0)
			m = &NewMessage{Content: f, Size: int64(len(b)), Hash: Hash(b), ReceivedAt: time.Unix(1e9, 0)}
			defer f.Close()
		}
		if err := r.Add(ctx, in, strconv.Itoa(i), m); err != nil {
			return err
		}
	}
	_, err = r.Finish(ctx, true)
	return err
}

// TestPackKillHelper is the child process of TestPackKillResume.
func TestPackKillHelper(t *testing.T) {
	path := os.Getenv("MAILMIG_PACK_KILL_ARCHIVE")
	if path == "" {
		t.Skip("the child process of TestPackKillResume")
	}
	ctx := context.Background()
	a, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := importKillBodies(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Close()
}

// TestPackKillResume SIGKILLs a process while it imports into an archive
// (bodies into the pack, rows into the database, batches of 20) at moments
// chosen by the pack's growth, so that kills land mid-batch, mid-write and
// around the sync before a commit. After every kill each committed message
// reads back hash-equal (a read-only open, which leaves the torn tail);
// the next run (a read-write open, which truncates it) resumes; at the end
// every message is there once and the pack holds each blob once: nothing
// lost, nothing doubled.
func TestPackKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes; skipped with -short")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kill.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var committed int64
	kills := 0
	for round := 0; round < 30 && kills < 8; round++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestPackKillHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MAILMIG_PACK_KILL_ARCHIVE="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill once the pack has grown by a random amount past its size
		// at the start (bounded wait: the child may finish first).
		var start int64
		if fi, err := os.Stat(path + PackSuffix); err == nil {
			start = fi.Size()
		}
		grow := int64(100<<10 + rng.IntN(8<<20))
		killed := false
	wait:
		for i := 0; i < 3000; i++ {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("child: %v", err)
				}
				break wait
			case <-time.After(2 * time.Millisecond):
			}
			if fi, err := os.Stat(path + PackSuffix); err == nil && fi.Size() >= start+grow {
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
				killed = true
				kills++
				break
			}
		}
		if !killed && cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		ro, err := Open(ctx, path, &Options{ReadOnly: true})
		if err != nil {
			continue // killed before the schema committed
		}
		st, err := ro.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages < committed {
			t.Errorf("after kill %d: %d messages, fewer than %d before", kills, st.Messages, committed)
		}
		committed = st.Messages
		for m, err := range ro.Messages(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			b, err := ro.BlobBytes(ctx, m.Blob)
			if err != nil || Hash(b) != m.Blob {
				t.Fatalf("after kill %d: message %d's blob %.12s reads back wrong (%v)", kills, m.ID, m.Blob, err)
			}
		}
		ro.Close()
		if !killed {
			break // the child finished: everything is in
		}
	}
	t.Logf("%d kills, %d messages committed before the final run", kills, committed)
	a, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := importKillBodies(ctx, a); err != nil {
		t.Fatal(err)
	}
	st, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i := 0; i < killMessages; i++ {
		b := killBody(i)
		want += int64(len(b))
		got, err := a.BlobBytes(ctx, Hash(b))
		if err != nil || Hash(got) != Hash(b) {
			t.Fatalf("message %d missing or wrong after the final run (%v)", i, err)
		}
	}
	if st.Messages != killMessages || st.Blobs != killMessages || st.BlobBytes != want {
		t.Errorf("after the final run: %d messages, %d blobs of %d bytes; want %d of %d bytes", st.Messages, st.Blobs, st.BlobBytes, killMessages, want)
	}
	if st.PackBytes != int64(PackHeader)+want {
		t.Errorf("pack file %d bytes, want %d (each blob once)", st.PackBytes, int64(PackHeader)+want)
	}
}
