package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCopies(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1"), mb("Work", "2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, wk := boxes["INBOX"].ID, boxes["Work"].ID
	add := func(mbox int64, key, body string) {
		t.Helper()
		if err := r.Add(ctx, mbox, key, &NewMessage{Body: []byte(body), ReceivedAt: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	add(in, "7", "Subject: a\r\n\r\na\r\n")
	add(wk, "3", "Subject: a\r\n\r\na\r\n") // the same message in Work
	add(in, "12", "Subject: b\r\n\r\nb\r\n")
	// more ids than one query chunk
	for i := range 600 {
		add(wk, fmt.Sprint(100+i), fmt.Sprintf("Subject: n%d\r\n\r\nn\r\n", i))
	}
	if _, err := r.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	got, err := a.Copies(ctx, []int64{2, 1, 99999})
	if err != nil {
		t.Fatal(err)
	}
	want := []Copy{{1, in, "7"}, {1, wk, "3"}, {2, in, "12"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
	ids := make([]int64, 0, 602)
	for id := int64(1); id <= 602; id++ {
		ids = append(ids, id)
	}
	all, err := a.Copies(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 603 || all[602].Key != "699" {
		t.Fatalf("%d copies, last %+v", len(all), all[len(all)-1])
	}
	if got, err := a.Copies(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no ids: %v %v", got, err)
	}
}
