package jmap_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
	"github.com/mailmig/mailmig/vandelay/verify"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		exportChild()
	}
	peers.Main(m)
}

// cyrusDefaults are the folders Cyrus creates for a new user.
var cyrusDefaults = []string{"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}

func checkTarget(t *testing.T, s *peers.Set, acct peers.Account, src *source, rep *verify.Report) {
	t.Helper()
	if !rep.OK() {
		for _, m := range rep.Mismatches {
			t.Errorf("verify: %s", m)
		}
	}
	if rep.HashEqual != rep.ArchiveEmails || rep.ArchiveEmails == 0 {
		t.Errorf("verify: %d of %d archive emails hash-equal on the target", rep.HashEqual, rep.ArchiveEmails)
	}
	// Independent read-back through Cyrus's own IMAP server.
	for _, d := range diffViews(src.expectedView(cyrusDefaults), readIMAP(t, s.Cyrus.IMAP, acct)) {
		t.Errorf("cyrus imap: %s", d)
	}
}

func TestExportConverges(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	a := tempArchive(t)
	src := &source{folders: append(folders[:0:0], folders...), msgs: genCorpus(1, 60)}
	src.load(t, a)

	c := dial(t, "http://"+s.Cyrus.HTTP+"/.well-known/jmap", acct)
	acctID, err := c.Session().FindAccount(acct.Email)
	if err != nil {
		t.Fatal(err)
	}
	// dry run first: it lists the work and changes nothing
	dry, err := tj.Export(ctx, a, c, acctID, &tj.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.EmailsImported != 60 || dry.MailboxesCreated == 0 || c.Stats().Uploads.Load() != 0 {
		t.Fatalf("dry run: %+v, uploads %d", dry, c.Stats().Uploads.Load())
	}
	res, err := tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first export: %d imported, %d mailboxes created, %d matched, %v", res.EmailsImported, res.MailboxesCreated, res.MailboxesMatched, res.Duration)
	if res.EmailsImported != 60 || res.Partial() || res.Uploads != 60 {
		t.Fatalf("first export: %+v", res)
	}
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)

	// Source changes: 5 new, 3 deleted, 2 moved, 4 re-flagged, a folder renamed.
	more := genCorpus(2, 5)
	for i, m := range more {
		m.key = fmt.Sprint("n", i)
	}
	src.msgs = append(src.msgs, more...)
	src.msgs = src.msgs[3:] // deletes messages 0, 1, 2
	moved := 0
	for _, m := range src.msgs {
		if moved < 2 && len(m.boxes) == 1 && m.boxes[0] != "Trash" && m.key != "7" {
			m.boxes = []string{"Trash"}
			moved++
		}
	}
	for i := 10; i < 14; i++ {
		src.msgs[i].kws = []string{"$flagged", "Neu"}
	}
	for i, f := range src.folders {
		if f.Path == "Проекты" {
			src.folders[i].Path = "Проекты 2025"
		}
	}
	for _, m := range src.msgs {
		for j, b := range m.boxes {
			if b == "Проекты" {
				m.boxes[j] = "Проекты 2025"
			}
		}
	}
	src.load(t, a)
	c2 := dial(t, "http://"+s.Cyrus.HTTP+"/.well-known/jmap", acct)
	res, err = tj.Export(ctx, a, c2, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second export: %+v", res.Changes)
	if res.Uploads != 5 || res.EmailsImported != 5 || res.EmailsDestroyed != 3 || res.MailboxesUpdated != 1 {
		t.Errorf("second export: %d uploads (want 5: movers are patches), %d imported, %d destroyed, %d mailboxes renamed",
			res.Uploads, res.EmailsImported, res.EmailsDestroyed, res.MailboxesUpdated)
	}
	if res.EmailsUpdated < 6 {
		t.Errorf("second export updated %d emails, want at least 2 moves + 4 re-flags", res.EmailsUpdated)
	}
	rep, err = verify.Target(ctx, a, c2, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)

	// No change: nothing uploaded, nothing patched.
	c3 := dial(t, "http://"+s.Cyrus.HTTP+"/.well-known/jmap", acct)
	start := time.Now()
	res, err = tj.Export(ctx, a, c3, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploads != 0 || res.EmailsUpdated != 0 || res.EmailsImported != 0 || res.MailboxesCreated+res.MailboxesUpdated != 0 {
		t.Errorf("no-change export did work: %+v", res)
	}
	t.Logf("no-change export: %v, %d requests", time.Since(start), c3.Stats().Requests.Load())

	// Sampled verify takes the mapping for the rest.
	rep, err = verify.Target(ctx, a, c3, acctID, &verify.Options{Sample: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Hashed > 10 {
		t.Errorf("sampled verify: ok=%v hashed %d: %v", rep.OK(), rep.Hashed, rep.Mismatches)
	}
}

// TestExportTargetHoldsSome: a third of the messages is already on the
// target (put there by another tool); the export matches them instead of
// duplicating, and gives them the archive's mailboxes and keywords.
func TestExportTargetHoldsSome(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	a := tempArchive(t)
	src := &source{folders: folders, msgs: genCorpus(3, 30)}
	// one pre-existing message without a Message-ID: matched by size and content
	src.msgs[3].body = regexp.MustCompile(`Message-ID: [^\r]*\r\n`).ReplaceAll(src.msgs[3].body, nil)
	src.load(t, a)
	c := dial(t, s.Cyrus.JMAPURL(), acct)
	acctID, _ := c.Session().FindAccount("")
	boxes, _, err := c.Mailboxes(ctx, acctID)
	if err != nil {
		t.Fatal(err)
	}
	inbox := ""
	for _, b := range boxes {
		if b.Role == "inbox" {
			inbox = b.ID
		}
	}
	for i := 0; i < 30; i += 3 {
		body := src.msgs[i].body
		blob, err := c.Upload(ctx, acctID, "message/rfc822", int64(len(body)), func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(string(body))), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		call := importCall(acctID, blob.BlobID, inbox, src.msgs[i].date)
		if err := c.Exec(ctx, usingMail, callList(call)); err != nil || call.Err != nil {
			t.Fatal(err, call.Err)
		}
	}
	res, err := tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.EmailsMatched != 10 || res.EmailsImported != 20 {
		t.Errorf("export: %d matched (want 10), %d imported (want 20)", res.EmailsMatched, res.EmailsImported)
	}
	// matched before any upload (Message-ID or size, then content), not
	// through Cyrus's alreadyExists
	indexed := 0
	for _, ch := range res.Changes {
		if ch.Action == '=' && ch.Kind == "Email" {
			indexed++
		}
	}
	if indexed != 10 || res.Uploads != 20 {
		t.Errorf("%d emails matched by index, %d uploads; want 10 and 20", indexed, res.Uploads)
	}
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)
	// The matched messages were not created by the export: a tombstone
	// forgets them but leaves them on the target.
	src.msgs = src.msgs[1:] // message 0 was pre-existing
	src.load(t, a)
	res, err = tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.EmailsDestroyed != 0 {
		t.Errorf("a pre-existing email was destroyed")
	}
}

// TestExportPrune: target objects the archive does not hold are destroyed
// with Prune (a dry run only lists them); role mailboxes stay.
func TestExportPrune(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	a := tempArchive(t)
	src := &source{folders: folders, msgs: genCorpus(11, 12)}
	src.load(t, a)
	c := dial(t, s.Cyrus.JMAPURL(), acct)
	acctID, _ := c.Session().FindAccount("")
	if _, err := tj.Export(ctx, a, c, acctID, nil); err != nil {
		t.Fatal(err)
	}
	// a stranger's mailbox with an email in it
	var sr jc.SetResponse
	mk := &jc.Call{Method: "Mailbox/set", Args: map[string]any{"accountId": acctID, "create": map[string]any{"x": map[string]any{"name": "Fremd"}}}, Result: &sr}
	if err := c.Exec(ctx, usingMail, callList(mk)); err != nil || mk.Err != nil {
		t.Fatal(err, mk.Err)
	}
	body := "From: x@example.test\r\nSubject: stray\r\nMessage-ID: <stray@example.test>\r\n\r\nstray\r\n"
	blob, err := c.Upload(ctx, acctID, "message/rfc822", int64(len(body)), func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil })
	if err != nil {
		t.Fatal(err)
	}
	imp := importCall(acctID, blob.BlobID, sr.CreatedID("x"), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := c.Exec(ctx, usingMail, callList(imp)); err != nil || imp.Err != nil {
		t.Fatal(err, imp.Err)
	}
	dry, err := tj.Export(ctx, a, c, acctID, &tj.Options{Prune: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.EmailsDestroyed != 1 || dry.MailboxesDestroyed != 1 {
		t.Errorf("dry-run prune: %d emails, %d mailboxes; want 1 and 1 (%v)", dry.EmailsDestroyed, dry.MailboxesDestroyed, dry.Changes)
	}
	res, err := tj.Export(ctx, a, c, acctID, &tj.Options{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.EmailsDestroyed != 1 || res.MailboxesDestroyed != 1 {
		t.Errorf("prune: %d emails, %d mailboxes destroyed; want 1 and 1", res.EmailsDestroyed, res.MailboxesDestroyed)
	}
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)
}

// TestExportTargetMailboxRemoved: someone deletes an exported mailbox (and
// its emails) on the target; the next export recreates it, re-imports the
// emails that were destroyed and gives the survivors their membership back.
func TestExportTargetMailboxRemoved(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	a := tempArchive(t)
	src := &source{folders: folders, msgs: genCorpus(13, 40)}
	src.load(t, a)
	c := dial(t, s.Cyrus.JMAPURL(), acct)
	acctID, _ := c.Session().FindAccount("")
	if _, err := tj.Export(ctx, a, c, acctID, nil); err != nil {
		t.Fatal(err)
	}
	boxes, _, err := c.Mailboxes(ctx, acctID)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, b := range boxes {
		if b.Name == "Проекты" {
			victim = b.ID
		}
	}
	var sr jc.SetResponse
	del := &jc.Call{Method: "Mailbox/set", Args: map[string]any{"accountId": acctID, "destroy": []string{victim}, "onDestroyRemoveEmails": true}, Result: &sr}
	if err := c.Exec(ctx, usingMail, callList(del)); err != nil || del.Err != nil || len(sr.Destroyed) != 1 {
		t.Fatal(err, del.Err, sr.NotDestroyed)
	}
	res, err := tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after removal: %d mailboxes created, %d emails imported, %d updated", res.MailboxesCreated, res.EmailsImported, res.EmailsUpdated)
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)
}
