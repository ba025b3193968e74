package imap_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	_ "modernc.org/sqlite"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	ti "github.com/mailmig/mailmig/vandelay/targets/imap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
)

// childEnv makes the test binary a copy-back child (for
// TestCopyBackKillResume) instead of running tests.
const childEnv = "MAILMIG_COPYBACK_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childCopyBack())
	}
	if os.Getenv(exportChildEnv) == "1" {
		os.Exit(childExport())
	}
	peers.Main(m)
}

func childCopyBack() int {
	ctx := context.Background()
	a, err := archive.Open(ctx, os.Getenv("CB_ARCHIVE"), nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer a.Close()
	c, err := imapsrc.Dial(ctx, &imapsrc.Options{Server: vandelay.Server{Address: os.Getenv("CB_SERVER"), TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: os.Getenv("CB_USER"), Password: os.Getenv("CB_PASS")}})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	res, err := ti.CopyBack(ctx, a, c, os.Getenv("CB_TARGET"), nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("%+v\n", *res)
	return 0
}

// cutOver migrates a fresh account with n messages Dovecot → archive →
// Cyrus, as a cut-over leaves it.
func cutOver(t *testing.T, n int) (*peers.Set, peers.Account, *archive.Archive, string, *jc.Client, string) {
	t.Helper()
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	c := login(t, s.Dovecot.IMAP, acct)
	for i := range n {
		appendMsg(t, c, "INBOX", msg("before", i, 800), []imap.Flag{imap.FlagSeen}, time.Date(2025, 3, 1, 10, i, 0, 0, time.UTC))
	}
	path := filepath.Join(t.TempDir(), "a.db")
	a, err := archive.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	src, err := imapsrc.New(srcOptions(s, acct))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vandelay.Import(ctx, src, a, nil); err != nil {
		t.Fatal(err)
	}
	src.Close()
	jcl, err := jc.Discover(ctx, s.Cyrus.JMAPURL(), &jc.Options{Auth: jc.BasicAuth{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := jcl.Session().FindAccount("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tj.Export(ctx, a, jcl, id, nil); err != nil {
		t.Fatal(err)
	}
	return s, acct, a, path, jcl, id
}

func srcOptions(s *peers.Set, acct peers.Account) *imapsrc.Options {
	return &imapsrc.Options{Server: vandelay.Server{Address: s.Dovecot.IMAP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}}
}

func login(t testing.TB, addr string, acct peers.Account) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func msg(tag string, i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: a@example.test\r\nTo: b@example.test\r\nSubject: %s %d\r\n", tag, i)
	if i%4 != 3 { // every fourth without a Message-ID: matched by size and bytes
		fmt.Fprintf(&b, "Message-ID: <%s.%d@example.test>\r\n", tag, i)
	}
	b.WriteString("Date: Mon, 2 Feb 2026 10:00:00 +0100\r\n\r\n")
	for b.Len() < size {
		fmt.Fprintf(&b, "%s line %d of %d\r\n", tag, b.Len(), i)
	}
	return []byte(b.String())
}

func appendMsg(t testing.TB, c *imapclient.Client, mailbox string, body []byte, flags []imap.Flag, date time.Time) {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), &imap.AppendOptions{Flags: flags, Time: date})
	cmd.Write(body)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %q: %v", mailbox, err)
	}
}

// view is a server's content: mailbox → sha256 → copies, and per
// sha256 the flags and internal date of one copy.
type view struct {
	copies map[string]map[string]int
	flags  map[string]string
	dates  map[string]time.Time
}

func readView(t testing.TB, addr string, acct peers.Account) view {
	t.Helper()
	c := login(t, addr, acct)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	v := view{copies: map[string]map[string]int{}, flags: map[string]string{}, dates: map[string]time.Time{}}
	sec := &imap.FetchItemBodySection{Peek: true}
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sd, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		v.copies[l.Mailbox] = map[string]int{}
		if sd.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			sum := sha256.Sum256(m.FindBodySection(sec))
			h := hex.EncodeToString(sum[:])
			v.copies[l.Mailbox][h]++
			var fl []string
			for _, f := range m.Flags {
				if f != `\Recent` {
					fl = append(fl, strings.ToLower(string(f)))
				}
			}
			slices.Sort(fl)
			v.flags[h] = strings.Join(fl, " ")
			v.dates[h] = m.InternalDate
		}
	}
	return v
}

func hashOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// deliverToTarget puts mail on Cyrus after the cut-over, through its own
// IMAP (as a client of the migrated user would): into INBOX with flags,
// into a folder made on the target, and one message into two folders.
func deliverToTarget(t *testing.T, s *peers.Set, acct peers.Account, n int) map[string][]string {
	t.Helper()
	c := login(t, s.Cyrus.IMAP, acct)
	if err := c.Create("After cut-over", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{} // hash → source mailboxes
	for i := range n {
		body := msg("after", i, 600+i*37)
		box, sbox := "INBOX", "INBOX"
		flags := []imap.Flag{}
		switch i % 3 {
		case 1:
			flags = []imap.Flag{imap.FlagFlagged, imap.FlagSeen}
		case 2:
			box, sbox = "After cut-over", "After cut-over"
			flags = []imap.Flag{"$label1"}
		}
		appendMsg(t, c, box, body, flags, time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC))
		want[hashOf(body)] = append(want[hashOf(body)], sbox)
		if i == 0 {
			appendMsg(t, c, "After cut-over", body, flags, time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC))
		}
	}
	return want
}

// TestCopyBack: after a cut-over, mail arrives on Cyrus (5 messages, one
// of them in two folders, one folder made there, flags set); ReadBack
// records them, CopyBack writes them onto Dovecot: each exactly once per
// folder, hash-equal, with its flags and internal date. A second read-back
// and copy-back do nothing; a copy whose record was lost (the crash window
// between APPEND and record) is matched, not appended again.
func TestCopyBack(t *testing.T) {
	s, acct, a, _, jcl, id := cutOver(t, 6)
	ctx := context.Background()
	before := readView(t, s.Dovecot.IMAP, acct)
	want := deliverToTarget(t, s, acct, 5)
	// The user flags one migrated message on the target and marks another
	// unread.
	cy := login(t, s.Cyrus.IMAP, acct)
	if _, err := cy.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, st := range []*imap.StoreFlags{{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, {Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}}} {
		sd, err := cy.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: fmt.Sprintf("before %d", i)}}}, nil).Wait()
		if err != nil || len(sd.AllUIDs()) != 1 {
			t.Fatalf("find message %d on Cyrus: %v %v", i, sd, err)
		}
		if err := cy.Store(imap.UIDSetNum(sd.AllUIDs()...), st, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}

	cnt, err := tj.ReadBack(ctx, a, jcl, id, &tj.ReadBackOptions{CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Pending != 5 || cnt.New != 5 || len(cnt.Reflag) != 2 {
		t.Fatalf("count: %+v, want 5 to copy back and 2 to re-flag", cnt)
	}
	rb, err := tj.ReadBack(ctx, a, jcl, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rb.New != 5 || rb.Recorded != 6 || rb.Pending != 6 || rb.Known != 0 {
		t.Fatalf("read back: %+v, want 5 new, 6 copies recorded", rb)
	}
	c, err := imapsrc.Dial(ctx, srcOptions(s, acct))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := ti.CopyBack(ctx, a, c, rb.Target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Appended != 6 || res.Matched != 0 || res.MailboxesCreated != 1 {
		t.Fatalf("copy back: %+v, want 6 appended, 1 mailbox created", res)
	}
	var changes []ti.KeywordChange
	for _, k := range rb.Reflag {
		changes = append(changes, ti.KeywordChange{ArchiveID: k.ArchiveID, Add: k.Add, Remove: k.Remove})
	}
	if n, err := ti.Reflag(ctx, a, c, changes, nil); err != nil || n != 2 {
		t.Fatalf("reflag: %d, %v; want 2 copies", n, err)
	}
	after := readView(t, s.Dovecot.IMAP, acct)
	if f := after.flags[hashOf(msg("before", 0, 800))]; f != `\flagged \seen` {
		t.Errorf("message flagged on the target: %q on the source", f)
	}
	if f := after.flags[hashOf(msg("before", 1, 800))]; f != "" {
		t.Errorf("message marked unread on the target: %q on the source", f)
	}
	for h, boxes := range want {
		for _, b := range boxes {
			if n := after.copies[b][h]; n != 1 {
				t.Errorf("%s: %d copies of %.12s, want 1", b, n, h)
			}
		}
	}
	rs, _ := a.Returns(ctx, rb.Target, false)
	for _, r := range rs {
		if r.Copied.IsZero() || r.SourceKey == "" {
			t.Errorf("return %+v not recorded as copied", r)
		}
		if got := after.dates[r.Blob]; !got.Equal(r.ReceivedAt) {
			t.Errorf("%.12s: internal date %v, want %v", r.Blob, got, r.ReceivedAt)
		}
	}
	// The flags as set on the target: i%3 == 1 flagged and seen, 2
	// labelled, 0 none.
	nFlagged, nLabel, nPlain := 0, 0, 0
	for h := range want {
		switch f := after.flags[h]; f {
		case `$label1`:
			nLabel++
		case `\flagged \seen`:
			nFlagged++
		case "":
			nPlain++
		default:
			t.Errorf("%.12s: flags %q on the source", h, f)
		}
	}
	if nFlagged != 2 || nLabel != 1 || nPlain != 2 {
		t.Errorf("flags on the source: %d flagged+seen (want 2), %d $label1 (want 1), %d none (want 2)", nFlagged, nLabel, nPlain)
	}
	// Nothing else changed at the source.
	for b, hs := range before.copies {
		for h, n := range hs {
			if after.copies[b][h] != n {
				t.Errorf("%s: %.12s has %d copies, had %d", b, h, after.copies[b][h], n)
			}
		}
	}

	// Convergence: nothing new to read, nothing to copy.
	rb2, err := tj.ReadBack(ctx, a, jcl, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := ti.CopyBack(ctx, a, c, rb.Target, nil)
	if err != nil {
		t.Fatal(err)
	}
	// (rb2.Reflag still lists the two flag changes: the archive learns the
	// source's flags at its next import; setting them again is a no-op.)
	if rb2.New != 0 || rb2.Recorded != 0 || rb2.Pending != 0 || res2.Appended+res2.Matched != 0 {
		t.Fatalf("second run: read back %+v, copy back %+v; want nothing", rb2, res2)
	}

	// The crash window: the APPENDs happened, their records were lost.
	a.Close()
	forgetCopies(t, a.Path())
	a2, err := archive.Open(ctx, a.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	res3, err := ti.CopyBack(ctx, a2, c, rb.Target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res3.Appended != 0 || res3.Matched != 6 {
		t.Fatalf("after lost records: %+v, want 6 matched, none appended", res3)
	}
	if again := readView(t, s.Dovecot.IMAP, acct); !sameCopies(after, again) {
		t.Fatal("the source changed after matching lost records")
	}
}

func sameCopies(x, y view) bool {
	if len(x.copies) != len(y.copies) {
		return false
	}
	for b, hs := range x.copies {
		if len(hs) != len(y.copies[b]) {
			return false
		}
		for h, n := range hs {
			if y.copies[b][h] != n {
				return false
			}
		}
	}
	return true
}

// TestCopyBackKillResume SIGKILLs a copy-back of 60 messages at random
// moments and runs it again until it completes: every message is on the
// source exactly once, hash-equal.
func TestCopyBackKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	s, acct, a, path, jcl, id := cutOver(t, 3)
	ctx := context.Background()
	c := login(t, s.Cyrus.IMAP, acct)
	want := map[string]bool{}
	for i := range 60 {
		body := msg("late", i, 2000+i*500)
		appendMsg(t, c, "INBOX", body, nil, time.Date(2026, 2, 1, 0, i, 0, 0, time.UTC))
		want[hashOf(body)] = true
	}
	rb, err := tj.ReadBack(ctx, a, jcl, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Recorded != 60 {
		t.Fatalf("read back %+v, want 60", rb)
	}
	a.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills, done := 0, false
	for i := 0; i < 12 && !done; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "CB_ARCHIVE="+path, "CB_SERVER="+s.Dovecot.IMAP, "CB_USER="+acct.Email,
			"CB_PASS="+acct.Password, "CB_TARGET="+rb.Target)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var limit <-chan time.Time
		if i < 10 { // the last runs finish
			limit = time.After(time.Duration(20+rng.IntN(120)) * time.Millisecond)
		}
		select {
		case <-limit:
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
		case err := <-exited:
			if err != nil {
				t.Fatalf("copy-back child: %v\n%s", err, out)
			}
			done = true
		}
	}
	if !done {
		t.Fatal("copy-back never completed")
	}
	t.Logf("%d kills", kills)
	got := readView(t, s.Dovecot.IMAP, acct)
	for h := range want {
		if n := got.copies["INBOX"][h]; n != 1 {
			t.Errorf("INBOX: %d copies of %.12s, want 1", n, h)
		}
	}
	a2, err := archive.Open(ctx, path, &archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if p, _ := a2.Returns(ctx, rb.Target, true); len(p) != 0 {
		t.Errorf("%d returns still pending", len(p))
	}
}

// forgetCopies clears the copied marks, as if every APPEND had happened
// and the process had died before recording it.
func forgetCopies(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE copy_back SET copied_at = NULL, source_key = ''"); err != nil {
		t.Fatal(err)
	}
}
