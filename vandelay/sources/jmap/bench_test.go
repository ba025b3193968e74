package jmap_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// BenchmarkImportJMAP measures, in one run on one account, mailmig's full
// import from Cyrus's JMAP (Cyrus → archive), the no-change catch-up with
// its HTTP request count, and mbsync (isync) reading the same account over
// Cyrus's IMAP into a local Maildir:
//
//	just bench-import-jmap
//	go test -run '^$' -bench ImportJMAP -benchtime 1x -timeout 30m ./vandelay/sources/jmap
//
// MAILMIG_BENCH_MESSAGES sets the corpus size (default 3000, plus one
// 25 MiB message); MAILMIG_BENCH_CONNS the parallel downloads (default 4).
func BenchmarkImportJMAP(b *testing.B) {
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("MAILMIG_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	conns := 4
	if v, err := strconv.Atoi(os.Getenv("MAILMIG_BENCH_CONNS")); err == nil && v > 0 {
		conns = v
	}
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		b.Skip("mbsync (Debian package isync) is not installed")
	}
	s := peers.Get(b)
	acct := s.NewAccount(b)
	c := corpus.Generate(corpus.Options{Seed: 1, Messages: n, HugeSize: 25 << 20})
	start := time.Now()
	if err := c.LoadIMAP(context.Background(), s.Cyrus.IMAP, acct.Email, acct.Password, 4); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d messages into Cyrus in %v", len(c.Messages), time.Since(start))
	opts := &jmapsrc.Options{URL: s.Cyrus.JMAPURL(), Login: vandelay.Login{User: acct.Email, Password: acct.Password}, Connections: conns}
	size := float64(c.Size())
	for b.Loop() {
		tMbsync := runMbsync(b, mbsync, s.Cyrus.IMAP, acct)
		arPath := filepath.Join(b.TempDir(), "bench.db")
		start := time.Now()
		ar, err := archive.Open(context.Background(), arPath, nil)
		if err != nil {
			b.Fatal(err)
		}
		src, err := jmapsrc.New(opts)
		if err != nil {
			b.Fatal(err)
		}
		res := vandelaytest.Import(b, ar, src, nil)
		if err := ar.Close(); err != nil {
			b.Fatal(err)
		}
		tFull := time.Since(start)
		full := src.(*jmapsrc.Source).Stats()
		if res.MessagesAdded == 0 {
			b.Fatal("nothing imported")
		}
		if ar, err = archive.Open(context.Background(), arPath, nil); err != nil {
			b.Fatal(err)
		}
		// The catch-up is a few milliseconds of work: on a shared machine
		// its time is mostly scheduling noise, so take the best of five.
		var tRerun time.Duration
		var st jmapsrc.Stats
		for i := range 5 {
			src2, _ := jmapsrc.New(opts)
			start = time.Now()
			res2 := vandelaytest.Import(b, ar, src2, nil)
			if d := time.Since(start); i == 0 || d < tRerun {
				tRerun = d
			}
			st = src2.(*jmapsrc.Source).Stats()
			if res2.Fetched != 0 || st.Full {
				b.Fatalf("no-change catch-up fetched %d bodies (full: %v)", res2.Fetched, st.Full)
			}
		}
		ar.Close()
		// The session GET of discovery, the API POSTs and the downloads.
		httpRequests := 1 + st.Requests + st.Downloads
		tMbsync = min(tMbsync, runMbsync(b, mbsync, s.Cyrus.IMAP, acct))

		rate := func(d time.Duration) string {
			return fmt.Sprintf("%6.0f msg/s %6.1f MB/s", float64(len(c.Messages))/d.Seconds(), size/1e6/d.Seconds())
		}
		b.Logf("corpus: %d messages, %.1f MB (largest 25 MiB), %d folders, %d parallel downloads", len(c.Messages), size/1e6, len(c.Folders), conns)
		b.Logf("mailmig import from Cyrus JMAP  %7.2fs  %s  (%d API requests, %d downloads)", tFull.Seconds(), rate(tFull), full.Requests, full.Downloads)
		b.Logf("mailmig no-change catch-up      %7.3fs  (best of 5; %d HTTP requests: session + %d API, %d calls)", tRerun.Seconds(), httpRequests, st.Requests, st.Calls)
		b.Logf("mbsync from Cyrus IMAP → Maildir %7.2fs  %s  (FSync no, best of a run before and one after mailmig)", tMbsync.Seconds(), rate(tMbsync))
		b.Logf("ratio mailmig/mbsync %.2f", tFull.Seconds()/tMbsync.Seconds())
		b.ReportMetric(tFull.Seconds(), "import-s")
		b.ReportMetric(tRerun.Seconds(), "catchup-s")
		b.ReportMetric(float64(httpRequests), "catchup-requests")
		b.ReportMetric(tMbsync.Seconds(), "mbsync-s")
		b.ReportMetric(tFull.Seconds()/tMbsync.Seconds(), "ratio")
	}
}

// runMbsync copies the account from addr into a fresh local Maildir with
// mbsync (FSync no: the archive does not fsync per message either) and
// returns the wall time.
func runMbsync(b *testing.B, mbsync, addr string, acct peers.Account) time.Duration {
	b.Helper()
	dir := b.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`FSync no

IMAPAccount src
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs PLAIN
PipelineDepth 50

IMAPStore src
Account src

MaildirStore local
Path %s/mail/
Inbox %s/mail/INBOX
SubFolders Verbatim

Channel copy
Far :src:
Near :local:
Patterns *
Create Near
Remove None
Expunge None
Sync Pull
CopyArrivalDate yes
SyncState *
`, host, port, acct.Email, acct.Password, dir, dir)
	cf := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "mail"), 0o700)
	start := time.Now()
	out, err := exec.Command(mbsync, "-q", "-c", cf, "-a").CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("mbsync: %v\n%s", err, out)
	}
	return d
}
