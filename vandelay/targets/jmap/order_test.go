package jmap_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
)

// TestExportKeepsSourceOrder checks that every Cyrus mailbox lists its
// messages in the source's UID order after an export (Thunderbird's
// "order received", mbsync's UIDVALIDITY recovery), with small batches
// and several workers so that one mailbox spans several batches. The
// source's dates are shuffled against the append order (sorting by date
// would be wrong), one message is larger than the inline-blob limit (it
// is uploaded, not inlined, in the middle of a batch), and one message is
// in two folders (one target Email: it keeps its place in its first
// mailbox). Then 3 messages added at the source must come last, in order,
// after a re-run, and 3 messages moved together to another folder must
// land there last, in order.
func TestExportKeepsSourceOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: real servers")
	}
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	c := imapLogin(t, s.Dovecot.IMAP, acct)
	defer c.Close()
	for _, f := range []string{"Work", "Lists"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	n := 0
	appendMsg := func(folder string, body []byte) {
		t.Helper()
		cmd := c.Append(folder, int64(len(body)), &imap.AppendOptions{Time: dateOf(body)})
		cmd.Write(body)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append to %s: %v", folder, err)
		}
	}
	newMsg := func(pad int) []byte {
		n++
		// dates in random order, so that date order is not append order
		d := base.Add(-time.Duration(rng.IntN(100000)) * time.Minute)
		body := fmt.Sprintf("Date: %s\r\nFrom: a@example.test\r\nTo: b@example.test\r\nSubject: order %d\r\nMessage-ID: <order-%d@example.test>\r\n\r\nbody %d\r\n%s",
			d.Format(time.RFC1123Z), n, n, n, strings.Repeat("0123456789abcdef\r\n", pad/18))
		return []byte(body)
	}
	shared := newMsg(0)
	plan := []struct {
		folder string
		count  int
	}{{"INBOX", 27}, {"Work", 14}, {"Lists", 12}}
	// Folders filled in turns, so that the appends interleave.
	left := map[string]int{}
	for _, p := range plan {
		left[p.folder] = p.count
	}
	for round := 0; ; round++ {
		done := true
		for _, p := range plan {
			if left[p.folder] == 0 {
				continue
			}
			done = false
			left[p.folder]--
			switch {
			case p.folder == "INBOX" && round == 4:
				appendMsg(p.folder, newMsg(2500<<10)) // over the 2 MiB inline limit
			case p.folder == "INBOX" && round == 9, p.folder == "Work" && round == 2:
				appendMsg(p.folder, shared)
			default:
				appendMsg(p.folder, newMsg(rng.IntN(4000)))
			}
		}
		if done {
			break
		}
	}

	a := tempArchive(t)
	opts := &tj.Options{BatchSize: 10, Workers: 4}
	export := func() *tj.Result {
		t.Helper()
		importIMAP(t, s, acct, a)
		cl := dial(t, s.Cyrus.JMAPURL(), acct)
		acctID, _ := cl.Session().FindAccount("")
		res, err := tj.Export(ctx, a, cl, acctID, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Partial() {
			t.Fatalf("export skipped %v", res.Skipped)
		}
		t.Logf("export: %d imported, %d matched, %d updated", res.EmailsImported, res.EmailsMatched, res.EmailsUpdated)
		return res
	}
	// The shared message is filed with its first mailbox (the lowest
	// archive mailbox id); elsewhere only its presence is checked.
	sharedID := "order-1@example.test"
	compare := func(phase string) {
		t.Helper()
		boxes, err := a.Mailboxes(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		first := ""
		var firstID int64
		for _, b := range boxes {
			if (b.Path == "INBOX" || b.Path == "Work") && (first == "" || b.ID < firstID) {
				first, firstID = b.Path, b.ID
			}
		}
		for _, p := range plan {
			want := uidOrder(t, s.Dovecot.IMAP, acct, p.folder)
			got := uidOrder(t, s.Cyrus.IMAP, acct, p.folder)
			if p.folder != first && slices.Contains(want, sharedID) {
				if !slices.Contains(got, sharedID) {
					t.Errorf("%s: %s: shared message missing", phase, p.folder)
				}
				want = slices.DeleteFunc(want, func(id string) bool { return id == sharedID })
				got = slices.DeleteFunc(got, func(id string) bool { return id == sharedID })
			}
			if !slices.Equal(want, got) {
				t.Errorf("%s: %s: Cyrus UID order differs from Dovecot's\n got %v\nwant %v", phase, p.folder, got, want)
			} else {
				t.Logf("%s: %s: %d messages in source order", phase, p.folder, len(got))
			}
		}
	}
	export()
	compare("first export")

	// Three new messages at the source, with dates older than most: they
	// are newest in UID order and must come last, in that order.
	var added []string
	for range 3 {
		m := newMsg(100)
		appendMsg("INBOX", m)
		added = append(added, fmt.Sprintf("order-%d@example.test", n))
	}
	// And three messages moved together from Lists to Work: patched, not
	// re-imported, they must land last in Work in Dovecot's order.
	if _, err := c.Select("Lists", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(2, 5, 8), "Work").Wait(); err != nil {
		t.Fatal(err)
	}
	if res := export(); res.EmailsImported != 3 || res.Uploads != 3 || res.EmailsUpdated != 3 {
		t.Errorf("re-run: %d imported, %d uploads, %d updated; want 3 new messages imported and 3 moves patched", res.EmailsImported, res.Uploads, res.EmailsUpdated)
	}
	compare("re-run")
	if got := uidOrder(t, s.Cyrus.IMAP, acct, "INBOX"); len(got) < 3 || !slices.Equal(got[len(got)-3:], added) {
		t.Errorf("re-run: the new messages are not last in INBOX: %v", got[max(0, len(got)-5):])
	}
}

func imapLogin(t *testing.T, addr string, acct peers.Account) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// uidOrder returns the Message-IDs of a mailbox in UID order, read over
// the server's own IMAP.
func uidOrder(t *testing.T, addr string, acct peers.Account, mailbox string) []string {
	t.Helper()
	c := imapLogin(t, addr, acct)
	defer c.Close()
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("select %s on %s: %v", mailbox, addr, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("fetch %s on %s: %v", mailbox, addr, err)
	}
	slices.SortFunc(msgs, func(x, y *imapclient.FetchMessageBuffer) int { return int(x.UID) - int(y.UID) })
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.Envelope == nil {
			t.Fatalf("%s on %s: UID %d without envelope", mailbox, addr, m.UID)
		}
		out = append(out, m.Envelope.MessageID)
	}
	return out
}

// dateOf returns the Date header of a generated message.
func dateOf(body []byte) time.Time {
	line, _, _ := bytes.Cut(bytes.TrimPrefix(body, []byte("Date: ")), []byte("\r\n"))
	d, _ := time.Parse(time.RFC1123Z, string(line))
	return d
}
