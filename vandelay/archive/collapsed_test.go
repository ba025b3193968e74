package archive

import (
	"context"
	"testing"
	"time"
)

// TestCollapsed counts duplicate copies in one mailbox and messages whose
// copies carry different keywords, as a JMAP target folds them.
func TestCollapsed(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1"), mb("Sent", "2"), mb("Junk", "3")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, sent, junk := boxes["INBOX"].ID, boxes["Sent"].ID, boxes["Junk"].ID
	add := func(mbox int64, key, body string, kws ...string) {
		t.Helper()
		if err := r.Add(ctx, mbox, key, &NewMessage{Body: []byte(body), ReceivedAt: time.Unix(1e9, 0), Keywords: kws}); err != nil {
			t.Fatal(err)
		}
	}
	a1 := "Subject: a\r\n\r\na\r\n"
	add(in, "1", a1, "$seen")
	add(in, "2", a1, "$seen") // the same bytes twice in INBOX: 1 duplicate
	add(in, "3", a1, "$seen") // three times: 2 duplicates
	b := "Subject: b\r\n\r\nb\r\n"
	add(sent, "1", b, "$seen")
	add(junk, "1", b, "$junk") // in Sent and Junk with other keywords: merged
	c := "Subject: c\r\n\r\nc\r\n"
	add(in, "4", c, "$flagged")
	add(sent, "2", c, "$flagged") // same keywords in two mailboxes: nothing to merge
	if _, err := r.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	got, err := a.Collapsed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Collapsed{Duplicates: 2, KeywordsMerged: 1}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
