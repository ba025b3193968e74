package archive

import (
	"context"
	"testing"
	"time"
)

// TestReturns: read-back messages are stored once per (target, id,
// mailbox) however often they are added, listed while pending, and
// marked copied once.
func TestReturns(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	body := []byte("Subject: late\r\n\r\narrived on the target\r\n")
	h := Hash(body)
	rs := []Return{
		{Target: "jmap x", RemoteID: "e1", Mailbox: "INBOX", Sep: "/", Blob: h, Size: int64(len(body)), ReceivedAt: time.Unix(1.7e9, 0), Keywords: []string{"$seen"}},
		{Target: "jmap x", RemoteID: "e1", Mailbox: "Later", Sep: "/", Blob: h, Size: int64(len(body)), ReceivedAt: time.Unix(1.7e9, 0)},
	}
	for i, want := range []int{2, 0} { // again: an interrupted read-back repeated
		n, err := a.AddReturns(ctx, rs, map[string][]byte{h: body})
		if err != nil || n != want {
			t.Fatalf("add %d: %d, %v; want %d", i, n, err, want)
		}
	}
	if _, err := a.AddReturns(ctx, rs, nil); err == nil {
		t.Fatal("a return without its body was accepted")
	}
	ids, err := a.ReturnedRemoteIDs(ctx, "jmap x")
	if err != nil || len(ids) != 1 || !ids["e1"] {
		t.Fatalf("returned ids %v, %v", ids, err)
	}
	pending, err := a.Returns(ctx, "jmap x", true)
	if err != nil || len(pending) != 2 || pending[0].Keywords[0] != "$seen" || !pending[0].ReceivedAt.Equal(time.Unix(1.7e9, 0)) {
		t.Fatalf("pending %+v, %v", pending, err)
	}
	if got, _ := a.BlobBytes(ctx, h); string(got) != string(body) {
		t.Fatalf("blob %q", got)
	}
	for range 2 {
		if err := a.MarkReturned(ctx, pending[0].ID, "42"); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := a.Returns(ctx, "jmap x", true)
	all, _ := a.Returns(ctx, "", false)
	if len(left) != 1 || len(all) != 2 || all[0].SourceKey != "42" || all[0].Copied.IsZero() {
		t.Fatalf("after marking: pending %+v, all %+v", left, all)
	}
	if live, _ := a.HasLiveMessage(ctx, h); live {
		t.Error("a read-back message became an archive message before the source had it")
	}
}
