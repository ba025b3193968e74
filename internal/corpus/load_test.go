package corpus

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
)

func TestMain(m *testing.M) { peers.Main(m) }

// TestLoadIMAP loads a corpus into each IMAP server and reads it back:
// every message with the same bytes, flags, keywords and internal date in
// the same folder, and the same subscriptions.
func TestLoadIMAP(t *testing.T) {
	s := peers.Get(t)
	c := Generate(Options{Seed: 7, Messages: 120, Folders: 16, MaxSize: 512 << 10, HugeSize: 2 << 20})
	for _, tt := range []struct{ name, addr string }{
		{"dovecot", s.Dovecot.IMAP},
		{"cyrus", s.Cyrus.IMAP},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := s.NewAccount(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := c.LoadIMAP(ctx, tt.addr, a.Email, a.Password, 3); err != nil {
				t.Fatal(err)
			}
			verifyIMAP(t, c, tt.addr, a.Email, a.Password)
			if tt.name == "dovecot" {
				// loading again into existing folders only appends
				if err := c.LoadIMAP(ctx, tt.addr, a.Email, a.Password, 2); err != nil {
					t.Fatalf("second load: %v", err)
				}
			}
		})
	}
}

func entry(sha [32]byte, flags []string, date time.Time) string {
	f := slices.Clone(flags)
	slices.Sort(f)
	return fmt.Sprintf("%x %s %d", sha[:6], strings.Join(f, ","), date.Unix())
}

func verifyIMAP(t *testing.T, c *Corpus, addr, user, pass string) {
	t.Helper()
	cl, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	subs, err := cl.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	subscribed := map[string]bool{}
	for _, l := range subs {
		subscribed[l.Mailbox] = true
	}
	for _, f := range c.Folders {
		if f.Name != "INBOX" && subscribed[f.Name] != f.Subscribed {
			t.Errorf("folder %q: subscribed %v, want %v", f.Name, subscribed[f.Name], f.Subscribed)
		}
		var want []string
		for _, m := range c.InFolder(f.Name) {
			want = append(want, entry(m.SHA256, m.Flags, m.InternalDate))
		}
		sel, err := cl.Select(f.Name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Errorf("select %q: %v", f.Name, err)
			continue
		}
		var got []string
		if sel.NumMessages > 0 {
			msgs, err := cl.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true,
				BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil {
				t.Fatalf("fetch %q: %v", f.Name, err)
			}
			for _, m := range msgs {
				var flags []string
				for _, fl := range m.Flags {
					if fl != `\Recent` {
						flags = append(flags, string(fl))
					}
				}
				var body []byte
				for _, b := range m.BodySection {
					body = b.Bytes
				}
				got = append(got, entry(sha256.Sum256(body), flags, m.InternalDate))
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("folder %q: %d messages differ from the corpus (%d)\n got %v\nwant %v", f.Name, len(got), len(want), head(got), head(want))
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// BenchmarkLoadIMAP3000 loads the benchmark corpus (3,000 messages with one
// of 25 MiB) into a fresh Dovecot account per iteration:
//
//	go test -run '^$' -bench LoadIMAP -benchtime 1x ./internal/corpus
func BenchmarkLoadIMAP3000(b *testing.B) {
	s := peers.Get(b)
	c := Generate(Options{Seed: 1, Messages: 3000, HugeSize: 25 << 20})
	b.SetBytes(c.Size())
	for b.Loop() {
		b.StopTimer()
		a := s.NewAccount(b)
		b.StartTimer()
		if err := c.LoadIMAP(context.Background(), s.Dovecot.IMAP, a.Email, a.Password, 4); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(c.Messages))*float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
