package main

import (
	"bytes"

	"crypto/sha256"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
)

// cutOverAll applies until every account is done (staging, catch-up,
// cut-over).
func (x *e2e) cutOverAll() {
	x.t.Helper()
	for i := 0; i < 5; i++ {
		x.cli(exitOK, "apply", "-auto-approve")
		done := true
		for _, a := range x.accts {
			if !regexpLine(x.cli(exitOK, "state", "show", a.Email), `^phase: +done$`) {
				done = false
			}
		}
		if done {
			return
		}
	}
	x.t.Fatal("the accounts never cut over")
}

// bodies returns, per Message-ID, the SHA-256 of each copy of the
// account's INBOX on the server and its flags.
func bodies(t *testing.T, addr string, a peers.Account) (map[string][][32]byte, map[string][]imap.Flag) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	out, flags := map[string][][32]byte{}, map[string][]imap.Flag{}
	if sd.NumMessages == 0 {
		return out, flags
	}
	sec := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true, Flags: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		id := m.Envelope.MessageID
		out[id] = append(out[id], sha256.Sum256(m.FindBodySection(sec)))
		flags[id] = m.Flags
	}
	return out, flags
}

// flagOnCyrus sets \Flagged on the messages with these Message-IDs, as
// the user's client on the target would.
func flagOnCyrus(t *testing.T, s *peers.Set, a peers.Account, ids []string) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Cyrus.IMAP, nil)
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
	for _, id := range ids {
		sd, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
		if err != nil || len(sd.AllUIDs()) != 1 {
			t.Fatalf("find %s on Cyrus: %v %v", id, sd, err)
		}
		if err := c.Store(imap.UIDSetNum(sd.AllUIDs()...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// deliverAfter sends n messages through the proxy to an account that is
// on Cyrus and returns their Message-IDs.
func (x *e2e) deliverAfter(a peers.Account, n int) []string {
	x.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		id := x.newID(a, "aftercut")
		if err := lmtpDeliver(x.lmtp, a.Email, testMessage(a.Email, id), 30*time.Second); err != nil {
			x.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkCopiedBack asserts that every message of ids is in the account's
// INBOX on Dovecot exactly once, hash-equal with Cyrus's copy.
func checkCopiedBack(t *testing.T, s *peers.Set, a peers.Account, ids []string) map[string][]imap.Flag {
	t.Helper()
	onDovecot, flags := bodies(t, s.Dovecot.IMAP, a)
	onCyrus, _ := bodies(t, s.Cyrus.IMAP, a)
	for _, id := range ids {
		d, c := onDovecot[id], onCyrus[id]
		if len(d) != 1 || len(c) != 1 || d[0] != c[0] {
			t.Errorf("%s: %d copies on Dovecot, %d on Cyrus, hash-equal %v; want one each, equal", id, len(d), len(c), len(d) == 1 && len(c) == 1 && d[0] == c[0])
		}
	}
	return flags
}

// TestRollbackCopiesBack cuts an account over Dovecot → Cyrus with the
// proxy in front, delivers 5 messages through the proxy (they land on
// Cyrus) and flags two of them there, then rolls back with "mailmig
// rollback": the prompt's change says 5 messages will be copied back,
// and afterwards the 5 are in Dovecot's INBOX exactly once, hash-equal
// with Cyrus's copies and visible through the proxy's IMAP, the two
// flagged; a migrated message flagged on Cyrus is flagged on Dovecot too;
// the route is on Dovecot. After
// the release a second cut-over succeeds with nothing extra on the target
// (verify finds 0 mismatches) and every message is on Cyrus once.
func TestRollbackCopiesBack(t *testing.T) {
	x := newE2E(t, 1)
	a := x.accts[0]
	x.cutOverAll()
	ids := x.deliverAfter(a, 5)
	flagOnCyrus(t, x.s, a, ids[:2])
	// A migrated message the user flags on the target.
	var seeded string
	for id := range x.expected[a.Email] {
		if strings.Contains(id, "-seed-") {
			seeded = id
			break
		}
	}
	flagOnCyrus(t, x.s, a, []string{seeded})

	out := x.cli(exitOK, "rollback", "-auto-approve", a.Email)
	if !strings.Contains(out, "copies back 5 messages that arrived on cyrus after the cut-over to legacy first, and the flags of 1 message changed there") {
		t.Errorf("the rollback did not say what it copies back:\n%s", out)
	}
	show := x.cli(exitOK, "state", "show", a.Email)
	if !regexpLine(show, `^route: +legacy$`) {
		t.Fatalf("not routed back:\n%s", show)
	}
	flags := checkCopiedBack(t, x.s, a, ids)
	// The user sees them through the proxy, which routes to Dovecot again.
	viaProxy, _ := bodies(t, x.imap, a)
	for _, id := range ids {
		if len(viaProxy[id]) != 1 {
			t.Errorf("%s: %d copies through the proxy, want 1", id, len(viaProxy[id]))
		}
	}
	for i, id := range ids {
		flagged := false
		for _, f := range flags[id] {
			flagged = flagged || f == imap.FlagFlagged
		}
		if flagged != (i < 2) {
			t.Errorf("%s: flags on Dovecot %v", id, flags[id])
		}
	}
	_, dflags := bodies(t, x.s.Dovecot.IMAP, a)
	if !slices.Contains(dflags[seeded], imap.FlagFlagged) {
		t.Errorf("%s, flagged on Cyrus after the cut-over: %v on Dovecot", seeded, dflags[seeded])
	}
	if j := readJournal(t, x.dir); !regexp.MustCompile(`"action":"rollback","outcome":"ok"[^\n]*"copied_back":5,"reflagged":1`).MatchString(j) {
		t.Errorf("the journal does not record 5 messages copied back and 1 re-flagged:\n%s", j)
	}

	// Migrate again: the copied-back mail is on the source now, so the
	// second cut-over's verify finds nothing extra on the target.
	x.cli(exitOK, "state", "release", a.Email)
	x.cutOverAll()
	x.check("seed", "aftercut")
}

// TestRollbackKilledMidCopyBack SIGKILLs "mailmig rollback" (a child
// process) while it copies 40 messages back, then runs the rollback
// again: every message is on Dovecot exactly once, and a later cut-over
// converges with nothing lost or doubled.
func TestRollbackKilledMidCopyBack(t *testing.T) {
	x := newE2E(t, 1)
	a := x.accts[0]
	x.cutOverAll()
	ids := x.deliverAfter(a, 40)
	before, _ := bodies(t, x.s.Dovecot.IMAP, a)
	// The copy-back honours the source's limits: 20 messages a second
	// make it last about 2 s, so the kill lands in the middle of it.
	slow(t, x.planFile)

	cmd := exec.Command(os.Args[0], "-f", x.planFile, "rollback", "-auto-approve", a.Email)
	cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for !killed && time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the rollback finished before the kill (%v):\n%s", err, out.String())
		case <-time.After(5 * time.Millisecond): // polling the other process's progress
		}
		if now, _ := bodies(t, x.s.Dovecot.IMAP, a); len(now) > len(before) {
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			killed = true
		}
	}
	if !killed {
		t.Fatalf("the copy-back never started:\n%s", out.String())
	}
	mid, _ := bodies(t, x.s.Dovecot.IMAP, a)
	t.Logf("killed after %d of 40 messages were copied back", len(mid)-len(before))
	if show := x.cli(exitOK, "state", "show", a.Email); !regexpLine(show, `^route: +cyrus$`) {
		t.Errorf("the route moved before the copy-back completed:\n%s", show)
	}
	// The plan finishes the interrupted rollback and says what is left.
	plan := x.cli(exitChanges, "plan", "-detailed-exitcode")
	if !regexp.MustCompile(`- rollback +\S+ \[DESTRUCTIVE\].*\n +copies back \d+ messages that arrived on cyrus after the cut-over to legacy first`).MatchString(plan) {
		t.Errorf("the plan does not finish the rollback with its copy-back count:\n%s", plan)
	}
	out2 := x.cli(exitOK, "rollback", "-auto-approve", a.Email)
	t.Logf("second rollback:\n%s", out2)
	checkCopiedBack(t, x.s, a, ids)
	x.cli(exitOK, "state", "release", a.Email)
	x.cutOverAll()
	x.check("seed", "aftercut")
}

func readJournal(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(dir + "/state/journal.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// slow limits the legacy backend to 20 messages a second.
func slow(t *testing.T, planFile string) {
	t.Helper()
	b, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "backend \"legacy\" {\n", "backend \"legacy\" {\n  limits {\n    messages_per_second = 20\n  }\n", 1)
	if err := os.WriteFile(planFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
