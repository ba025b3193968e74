package jmap_test

import (
	"context"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// TestExportStaleSubscription: the target still holds a subscription for a
// mailbox name that no longer exists there (IMAP DELETE keeps it, RFC 3501;
// an emptied account after a trial run looks like this). Cyrus then creates
// the mailbox subscribed although the export asked for isSubscribed false.
// The next export pass must repair it — before the fix it never looked
// again (the archive's mailbox had not changed), so verify failed on every
// cut-over and the account was rolled back forever (found by `just demo`).
func TestExportStaleSubscription(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()

	ic, err := imapclient.DialInsecure(s.Cyrus.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(acct.Email, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	const name = "Проекты" // unsubscribed in the archive
	for _, step := range []func() error{
		func() error { return ic.Create(name, nil).Wait() },
		func() error { return ic.Subscribe(name).Wait() },
		func() error { return ic.Delete(name).Wait() },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ic.Logout().Wait()

	a := tempArchive(t)
	src := &source{folders: folders, msgs: genCorpus(21, 12)}
	src.load(t, a)
	c := dial(t, s.Cyrus.JMAPURL(), acct)
	acctID, _ := c.Session().FindAccount("")
	// Staging, then a catch-up pass with nothing new in the archive.
	for pass := 1; pass <= 2; pass++ {
		if _, err := tj.Export(ctx, a, c, acctID, nil); err != nil {
			t.Fatalf("export pass %d: %v", pass, err)
		}
	}
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)
}
