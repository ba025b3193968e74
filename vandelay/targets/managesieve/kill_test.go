package managesieve_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/sieveclient"
)

// TestSieveExportKillResume SIGKILLs Sieve export children at random
// moments, then lets one finish: every script is at the target once with
// its bytes, the right one active, and every one is still known as
// created by the export (a deletion of all at the source deletes all at
// the target, and nothing else).
func TestSieveExportKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: several processes")
	}
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	a, err := archive.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := archive.Source{Kind: "managesieve", Endpoint: "test", Account: acct.Email}
	var scripts []archive.NewSieveScript
	// Cyrus allows 5 scripts per user (sieve_maxscripts); 7 shows the
	// quota refusal too, with the active one (the last) put first.
	for i := range 7 {
		scripts = append(scripts, archive.NewSieveScript{Name: fmt.Sprintf("s%02d", i),
			Body: []byte(fmt.Sprintf("# script %d\r\nif header :contains \"subject\" \"%d\" { keep; }\r\n", i, i)), Active: i == 6})
	}
	if _, err := a.SyncSieve(ctx, src, scripts, nil); err != nil {
		t.Fatal(err)
	}
	a.Close()

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	run := func(kill bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "EXPORT_ARCHIVE="+path, "EXPORT_SERVER="+s.Cyrus.ManageSieve,
			"EXPORT_USER="+acct.Email, "EXPORT_PASS="+acct.Password)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if !kill {
			if err := <-done; err != nil {
				t.Fatalf("final export: %v\n%s", err, out.String())
			}
			t.Logf("final export: %s", bytes.TrimSpace(out.Bytes()))
			return
		}
		delay := time.Duration(2+r.IntN(100)) * time.Millisecond
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child export: %v\n%s", err, out.String())
			}
			t.Logf("finished before the kill after %v", delay)
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			t.Logf("killed after %v", delay)
		}
	}
	for range 12 {
		run(true)
	}
	run(false)

	c, err := sieveclient.Dial(ctx, &sieveclient.Options{Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	got, active := scriptsAt(t, c)
	c.Logout(ctx)
	if len(got) != 5 || active != "s06" {
		t.Fatalf("target: %d scripts, active %q; want 5 (the quota), s06", len(got), active)
	}
	for _, sc := range scripts {
		if h, ok := got[sc.Name]; ok && h != sha256.Sum256(sc.Body) {
			t.Errorf("%s: bytes differ at the target", sc.Name)
		}
	}
	// Every script is still "created by the export": deleting all at the
	// source deletes all at the target.
	a, err = archive.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.SyncSieve(ctx, src, nil, nil); err != nil {
		t.Fatal(err)
	}
	a.Close()
	run(false)
	c, err = sieveclient.Dial(ctx, &sieveclient.Options{Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	if left, _ := scriptsAt(t, c); len(left) != 0 {
		t.Errorf("after deleting every script at the source, the target keeps %d", len(left))
	}
}
