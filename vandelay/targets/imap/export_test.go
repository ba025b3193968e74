package imap_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	ti "github.com/mailmig/mailmig/vandelay/targets/imap"
)

// exportChildEnv makes the test binary an export child (for
// TestExportKillResume).
const exportChildEnv = "MAILMIG_EXPORTIMAP_CHILD"

func childExport() int {
	ctx := context.Background()
	a, err := archive.Open(ctx, os.Getenv("EX_ARCHIVE"), nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer a.Close()
	c, err := imapsrc.Dial(ctx, &imapsrc.Options{Server: vandelay.Server{Address: os.Getenv("EX_SERVER"), TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: os.Getenv("EX_USER"), Password: os.Getenv("EX_PASS")}})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	res, err := ti.Export(ctx, a, c, "imap cyrus", nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("%+v\n", *res)
	return 0
}

// importDovecot imports the account's Dovecot mail into a new archive.
func importDovecot(t *testing.T, s *peers.Set, acct peers.Account) (*archive.Archive, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	a, err := archive.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	reimport(t, s, acct, a)
	return a, path
}

func reimport(t *testing.T, s *peers.Set, acct peers.Account, a *archive.Archive) {
	t.Helper()
	src, err := imapsrc.New(srcOptions(s, acct))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := vandelay.Import(context.Background(), src, a, nil); err != nil {
		t.Fatal(err)
	}
}

func exportTo(t *testing.T, s *peers.Set, acct peers.Account, a *archive.Archive) *ti.ExportResult {
	t.Helper()
	ctx := context.Background()
	c, err := imapsrc.Dial(ctx, &imapsrc.Options{Server: vandelay.Server{Address: s.Cyrus.IMAP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := ti.Export(ctx, a, c, "imap cyrus", nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// flat is a view's content by SHA-256 across mailboxes (the mailbox named
// by its last level, since the two servers' separators and namespaces
// differ): leaf/hash → copies.
func flat(v view) map[string]int {
	out := map[string]int{}
	for box, hs := range v.copies {
		leaf := box[strings.LastIndexAny(box, "./")+1:]
		for h, n := range hs {
			out[leaf+" "+h] += n
		}
	}
	return out
}

// TestExportIMAP migrates an account Dovecot → archive → Cyrus over IMAP
// (the IMAP target): every copy is on Cyrus in the same mailbox,
// hash-equal, with its flags and internal date; a re-run copies nothing
// and reads the mapping only; a flag set at the source reaches the
// target's copy on the next import and export; a message the user had on
// Cyrus before (same bytes) is matched, not doubled, and left as it was.
func TestExportIMAP(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	c := login(t, s.Dovecot.IMAP, acct)
	if err := c.Create("Projekte/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		fl := []imap.Flag{imap.FlagSeen}
		if i%3 == 0 {
			fl = append(fl, imap.FlagFlagged)
		}
		appendMsg(t, c, "INBOX", msg("inbox", i, 600+i*100), fl, time.Date(2025, 4, 1, 9, i, 0, 0, time.UTC))
	}
	for i := range 3 {
		appendMsg(t, c, "Projekte/2026", msg("proj", i, 900), nil, time.Date(2025, 5, 1, 9, i, 0, 0, time.UTC))
	}
	// The user's own copy on the target already.
	tc := login(t, s.Cyrus.IMAP, acct)
	appendMsg(t, tc, "INBOX", msg("inbox", 1, 700), []imap.Flag{imap.FlagAnswered}, time.Date(2025, 4, 1, 9, 1, 0, 0, time.UTC))
	a, _ := importDovecot(t, s, acct)

	res := exportTo(t, s, acct, a)
	if res.Appended != 10 || res.Matched != 1 || res.Unchanged != 0 {
		t.Errorf("first export: %+v, want 10 appended, 1 matched", res)
	}
	src, dst := readView(t, s.Dovecot.IMAP, acct), readView(t, s.Cyrus.IMAP, acct)
	fs, fd := flat(src), flat(dst)
	for k, n := range fs {
		if fd[k] != n {
			t.Errorf("%s: %d on Dovecot, %d on Cyrus", k, n, fd[k])
		}
	}
	for h, f := range src.flags {
		if h == hashOf(msg("inbox", 1, 700)) {
			if dst.flags[h] != `\answered` {
				t.Errorf("the user's own copy changed flags: %q", dst.flags[h])
			}
			continue
		}
		if dst.flags[h] != f || !dst.dates[h].Equal(src.dates[h]) {
			t.Errorf("%.12s: flags %q date %v on Cyrus, want %q %v", h, dst.flags[h], dst.dates[h], f, src.dates[h])
		}
	}

	// Convergent: nothing to copy.
	if res := exportTo(t, s, acct, a); res.Appended != 0 || res.Matched != 0 || res.Reflagged != 0 || res.Unchanged != 11 {
		t.Errorf("second export: %+v, want 11 unchanged", res)
	}
	// A flag set at the source is carried.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "inbox 2"}}}, nil).Wait()
	if err != nil || len(sd.AllUIDs()) != 1 {
		t.Fatalf("find inbox 2: %v %v", sd, err)
	}
	if err := c.Store(imap.UIDSetNum(sd.AllUIDs()...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	reimport(t, s, acct, a)
	if res := exportTo(t, s, acct, a); res.Appended != 0 || res.Reflagged != 1 {
		t.Errorf("export after a flag change: %+v, want 1 reflagged", res)
	}
	if f := readView(t, s.Cyrus.IMAP, acct).flags[hashOf(msg("inbox", 2, 800))]; f != `\flagged \seen` {
		t.Errorf("inbox 2 on Cyrus: %q", f)
	}
}

// TestExportKillResume SIGKILLs an IMAP export of 60 messages at random
// moments and runs it again until it completes: every message is on
// Cyrus exactly once, hash-equal.
func TestExportKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	s := peers.Get(t)
	acct := s.NewAccount(t)
	c := login(t, s.Dovecot.IMAP, acct)
	want := map[string]bool{}
	for i := range 60 {
		body := msg("kill", i, 2000+i*300)
		appendMsg(t, c, "INBOX", body, nil, time.Date(2026, 2, 1, 0, i, 0, 0, time.UTC))
		want[hashOf(body)] = true
	}
	a, path := importDovecot(t, s, acct)
	a.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	kills, done := 0, false
	for i := 0; i < 12 && !done; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), exportChildEnv+"=1", "EX_ARCHIVE="+path, "EX_SERVER="+s.Cyrus.IMAP, "EX_USER="+acct.Email, "EX_PASS="+acct.Password)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var limit <-chan time.Time
		if i < 10 { // the last runs finish
			limit = time.After(time.Duration(150+rng.IntN(900)) * time.Millisecond)
		}
		select {
		case <-limit:
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
		case err := <-exited:
			if err != nil {
				t.Fatalf("export child: %v\n%s", err, out)
			}
			done = true
			t.Logf("last run: %s", strings.TrimSpace(out.String()))
		}
	}
	if !done {
		t.Fatal("the export never completed")
	}
	t.Logf("%d kills", kills)
	got := readView(t, s.Cyrus.IMAP, acct)
	for h := range want {
		if n := got.copies["INBOX"][h]; n != 1 {
			t.Errorf("INBOX: %d copies of %.12s, want 1", n, h)
		}
	}
	if len(got.copies["INBOX"]) != len(want) {
		t.Errorf("INBOX on Cyrus holds %d distinct messages, want %d", len(got.copies["INBOX"]), len(want))
	}
}

// TestBenchExportIMAP times an IMAP export of MAILMIG_BENCH_EXPORT_IMAP
// messages (2 KiB to 12 KiB) Dovecot → archive → Cyrus, then the no-change
// re-run; skipped unless the variable is set (just bench-export-imap).
func TestBenchExportIMAP(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MAILMIG_BENCH_EXPORT_IMAP"))
	if n <= 0 {
		t.Skip("set MAILMIG_BENCH_EXPORT_IMAP=N to run")
	}
	s := peers.Get(t)
	acct := s.NewAccount(t)
	c := login(t, s.Dovecot.IMAP, acct)
	var bytes int64
	for i := range n {
		body := msg("bench", i, 2048+(i%11)*1024)
		bytes += int64(len(body))
		appendMsg(t, c, "INBOX", body, []imap.Flag{imap.FlagSeen}, time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC))
	}
	a, _ := importDovecot(t, s, acct)
	start := time.Now()
	res := exportTo(t, s, acct, a)
	first := time.Since(start)
	start = time.Now()
	again := exportTo(t, s, acct, a)
	second := time.Since(start)
	t.Logf("export-imap: %d messages, %.1f MiB in %.2f s (%.0f msg/s); no-change re-run %.3f s (%+v)", res.Appended, float64(bytes)/(1<<20), first.Seconds(),
		float64(res.Appended)/first.Seconds(), second.Seconds(), *again)
}
