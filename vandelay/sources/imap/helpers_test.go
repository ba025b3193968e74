package imap_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
)

// testFolders has nested, non-ASCII and special-use folders.
var testFolders = []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work/Reports 2024", "Entwürfe/Projekte",
	"Проекты", "日本語のフォルダ", "Ünïcödé & Co", "Lists/golang-nuts"}

type account struct {
	set        *peers.Set
	addr       string
	user, pass string
}

func newAccount(t testing.TB) account {
	t.Helper()
	s := peers.Get(t)
	a := s.NewAccount(t)
	return account{set: s, addr: s.Dovecot.IMAP, user: a.Email, pass: a.Password}
}

func (a account) client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(a.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(a.user, a.pass).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testMessage builds a deterministic message of about size bytes.
func testMessage(seed uint64, i int, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	var b strings.Builder
	fmt.Fprintf(&b, "From: =?UTF-8?Q?J=C3=BCrgen?= <j%d@example.test>\r\nTo: someone@example.test\r\n", i)
	fmt.Fprintf(&b, "Subject: test %d/%d =?UTF-8?B?w5xiZXJzaWNodA==?=\r\nMessage-ID: <%d.%d@example.test>\r\n", seed, i, seed, i)
	fmt.Fprintf(&b, "Date: Mon, 2 Feb 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < size {
		fmt.Fprintf(&b, "line %d of message %d: %x Grüße\r\n", b.Len(), i, rng.Uint64())
	}
	return []byte(b.String())
}

// load creates the test folders (subscribed) and appends n messages
// spread over them with varied flags, keywords and internal dates; one
// message is \Deleted and one is duplicated into a second folder.
func (a account) load(t testing.TB, seed uint64, n int) {
	t.Helper()
	c := a.client(t)
	for _, f := range testFolders {
		if f != "INBOX" {
			c.Create(f, nil).Wait() // special-use folders exist already
			if err := c.Subscribe(f).Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for i := 0; i < n; i++ {
		f := testFolders[rng.IntN(len(testFolders))]
		var flags []imap.Flag
		for _, fl := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, "$Forwarded", "Projekt-X", "$label1"} {
			if rng.IntN(3) == 0 {
				flags = append(flags, fl)
			}
		}
		if i == 7 {
			flags = append(flags, imap.FlagDeleted)
		}
		date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(5*365*24)) * time.Hour)
		body := testMessage(seed, i, 500+rng.IntN(20000))
		a.appendMsg(t, c, f, body, flags, date)
		if i == 3 {
			a.appendMsg(t, c, "Archive", body, []imap.Flag{imap.FlagSeen}, date)
		}
	}
}

func (a account) appendMsg(t testing.TB, c *imapclient.Client, mailbox string, body []byte, flags []imap.Flag, date time.Time) {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), &imap.AppendOptions{Flags: flags, Time: date})
	cmd.Write(body)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %q: %v", mailbox, err)
	}
}

func (a account) config(mods ...func(*imapsrc.Options)) *imapsrc.Options {
	cfg := &imapsrc.Options{Server: vandelay.Server{Address: a.addr, TLS: vandelay.TLSNone, AllowCleartext: true}, Login: vandelay.Login{User: a.user, Password: a.pass}, Connections: 4}
	for _, m := range mods {
		m(cfg)
	}
	return cfg
}

func (a account) factory(mods ...func(*imapsrc.Options)) func(testing.TB) vandelay.MailSource {
	return func(t testing.TB) vandelay.MailSource {
		src, err := imapsrc.New(a.config(mods...))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
}

var _ = context.Background
