package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
	"github.com/mailmig/mailmig/vandelay/verify"
)

func TestMain(m *testing.M) { peers.Main(m) }

// tamperMsg is one message of the small account every tamper case exports.
type tamperMsg struct {
	key, box string
	kws      []string
}

// The account: three messages in INBOX, two in Work, and an empty
// mailbox (so that removing it on the target removes nothing else).
var tamperMsgs = []tamperMsg{
	{"m1", "INBOX", []string{"$seen"}},
	{"m2", "INBOX", []string{"$seen", "$flagged"}},
	{"m3", "INBOX", nil},
	{"m4", "Work", []string{"$seen"}},
	{"m5", "Work", nil},
}

var tamperBoxes = []archive.MailboxInfo{
	{Path: "INBOX", Sep: "/", Role: archive.RoleInbox, Subscribed: true, Selectable: true, SourceRef: "b0"},
	{Path: "Work", Sep: "/", Subscribed: true, Selectable: true, SourceRef: "b1"},
	{Path: "Empty", Sep: "/", Subscribed: true, Selectable: true, SourceRef: "b2"},
}

var tamperDate = time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)

func tamperBody(key string) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: tamper %s\r\n"+
		"Message-ID: <%s@tamper.example.test>\r\nDate: Fri, 1 Mar 2024 09:30:00 +0000\r\n\r\nBody of %s.\r\n", key, key, key)
}

func msgID(key string) string { return key + "@tamper.example.test" }

// exported loads the account into a new archive, exports it to a new Cyrus
// account and returns the archive, the JMAP client, the account id and the
// archive message id of each key.
func exported(t *testing.T, s *peers.Set, acct peers.Account) (*archive.Archive, *jc.Client, string, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	run, err := a.BeginRun(ctx, archive.Source{Kind: "imap", Endpoint: "gen", Account: acct.Email, Login: acct.Email}, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := run.SyncMailboxes(ctx, tamperBoxes, nil)
	if err != nil {
		t.Fatal(err)
	}
	byHash := map[string]string{}
	for _, m := range tamperMsgs {
		body := tamperBody(m.key)
		h := sha256.Sum256(body)
		byHash[hex.EncodeToString(h[:])] = m.key
		if err := run.Add(ctx, boxes[m.box].ID, m.key, &archive.NewMessage{Body: body, ReceivedAt: tamperDate, Keywords: m.kws}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for m, err := range a.Messages(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		ids[byHash[m.Blob]] = m.ID
	}
	c, err := jc.Discover(ctx, s.Cyrus.JMAPURL(), &jc.Options{Auth: jc.BasicAuth{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	acctID, err := c.Session().FindAccount(acct.Email)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tj.Export(ctx, a, c, acctID, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.HashEqual != len(tamperMsgs) {
		t.Fatalf("untouched export does not verify: %d hash-equal, %v", rep.HashEqual, rep.Mismatches)
	}
	return a, c, acctID, ids
}

// cyrusIMAP logs in to the account on Cyrus's own IMAP server: the
// tampering goes past mailmig entirely.
func cyrusIMAP(t *testing.T, s *peers.Set, acct peers.Account) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Cyrus.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// uidOf selects box and finds the message with the key's Message-ID.
func uidOf(t *testing.T, c *imapclient.Client, box, key string) imap.UIDSet {
	t.Helper()
	if _, err := c.Select(box, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<" + msgID(key) + ">"}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := sd.AllUIDs()
	if len(uids) != 1 {
		t.Fatalf("%s in %s on Cyrus: uids %v", key, box, uids)
	}
	return imap.UIDSetNum(uids...)
}

func expunge(t *testing.T, c *imapclient.Client, uids imap.UIDSet) {
	t.Helper()
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(uids).Close(); err != nil {
		t.Fatal(err)
	}
}

func appendMsg(t *testing.T, c *imapclient.Client, box string, body []byte, flags []imap.Flag) {
	t.Helper()
	cmd := c.Append(box, int64(len(body)), &imap.AppendOptions{Flags: flags, Time: tamperDate})
	if _, err := cmd.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestTargetTampered exports a small account to the real Cyrus, checks it
// verifies, changes the target behind mailmig's back through Cyrus's own
// IMAP server, and checks that verify.Target reports exactly the
// mismatches the change makes — the kind and the message or mailbox each
// names. A verify that always said OK fails every case.
func TestTargetTampered(t *testing.T) {
	s := peers.Get(t)
	// ids maps keys to archive ids; the want funcs build the expected
	// mismatches from them (with only the identifying fields and values
	// compared: Item is prose, TargetID is Cyrus's).
	for name, tc := range map[string]struct {
		tamper func(t *testing.T, c *imapclient.Client)
		want   func(ids map[string]int64) []verify.Mismatch
	}{
		"message deleted": {
			tamper: func(t *testing.T, c *imapclient.Client) { expunge(t, c, uidOf(t, c, "INBOX", "m1")) },
			want: func(ids map[string]int64) []verify.Mismatch {
				return []verify.Mismatch{
					{Kind: verify.KindMissing, Mailbox: "INBOX", ArchiveID: ids["m1"]},
					{Kind: verify.KindCount, Mailbox: "INBOX", Want: "3", Got: "2"},
				}
			},
		},
		"keyword changed": {
			tamper: func(t *testing.T, c *imapclient.Client) {
				uids := uidOf(t, c, "INBOX", "m2")
				if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
					t.Fatal(err)
				}
			},
			want: func(ids map[string]int64) []verify.Mismatch {
				return []verify.Mismatch{{Kind: verify.KindKeywords, ArchiveID: ids["m2"], MessageID: msgID("m2"), Want: "[$flagged $seen]", Got: "[$seen]"}}
			},
		},
		"message moved": {
			tamper: func(t *testing.T, c *imapclient.Client) {
				uids := uidOf(t, c, "INBOX", "m3")
				if _, err := c.Move(uids, "Work").Wait(); err != nil {
					t.Fatal(err)
				}
			},
			want: func(ids map[string]int64) []verify.Mismatch {
				return []verify.Mismatch{
					{Kind: verify.KindMembership, ArchiveID: ids["m3"], MessageID: msgID("m3"), Want: "INBOX", Got: "Work"},
					{Kind: verify.KindCount, Mailbox: "INBOX", Want: "3", Got: "2"},
					{Kind: verify.KindCount, Mailbox: "Work", Want: "2", Got: "3"},
				}
			},
		},
		"extra message": {
			tamper: func(t *testing.T, c *imapclient.Client) {
				appendMsg(t, c, "INBOX", tamperBody("stray"), nil)
			},
			want: func(ids map[string]int64) []verify.Mismatch {
				return []verify.Mismatch{
					{Kind: verify.KindExtra, Mailbox: "INBOX", MessageID: msgID("stray")},
					{Kind: verify.KindCount, Mailbox: "INBOX", Want: "3", Got: "4"},
				}
			},
		},
		"mailbox missing": {
			tamper: func(t *testing.T, c *imapclient.Client) {
				if err := c.Delete("Empty").Wait(); err != nil {
					t.Fatal(err)
				}
			},
			want: func(ids map[string]int64) []verify.Mismatch {
				return []verify.Mismatch{{Kind: verify.KindMailboxMissing, Mailbox: "Empty"}}
			},
		},
		"bytes altered": {
			// The message is replaced by one that differs in one byte,
			// same flags, date, mailbox and Message-ID.
			tamper: func(t *testing.T, c *imapclient.Client) {
				uids := uidOf(t, c, "Work", "m4")
				body := tamperBody("m4")
				i := bytes.LastIndexByte(body, '.')
				body[i] = '!'
				appendMsg(t, c, "Work", body, []imap.Flag{imap.FlagSeen})
				expunge(t, c, uids)
			},
			want: func(ids map[string]int64) []verify.Mismatch {
				body := tamperBody("m4")
				body[bytes.LastIndexByte(body, '.')] = '!'
				got := sha256.Sum256(body)
				want := sha256.Sum256(tamperBody("m4"))
				return []verify.Mismatch{{Kind: verify.KindContent, Mailbox: "Work", ArchiveID: ids["m4"], MessageID: msgID("m4"),
					Want: hex.EncodeToString(want[:]), Got: hex.EncodeToString(got[:])}}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			acct := s.NewAccount(t)
			a, c, acctID, ids := exported(t, s, acct)
			tc.tamper(t, cyrusIMAP(t, s, acct))
			rep, err := verify.Target(context.Background(), a, c, acctID, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := rep.Mismatches
			for i := range got {
				if got[i].Kind != verify.KindMailboxMissing && got[i].Kind != verify.KindCount && got[i].Kind != verify.KindMissing && got[i].TargetID == "" {
					t.Errorf("%s names no target email", got[i])
				}
				if got[i].ArchiveID != 0 && got[i].Hash == "" {
					t.Errorf("%s names no archive hash", got[i])
				}
				got[i].Item, got[i].TargetID, got[i].Hash = "", "", ""
			}
			sortMismatches(got)
			want := tc.want(ids)
			sortMismatches(want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("mismatches (-want +got):\n%s", d)
			}
			if rep.OK() {
				t.Error("report says OK")
			}
		})
	}
}

func sortMismatches(ms []verify.Mismatch) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].String() < ms[j].String() })
}
