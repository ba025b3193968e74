package imap_test

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
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// BenchmarkImport measures, in one run on one corpus, mailmig's full IMAP
// import (Dovecot → archive), the no-change re-run, and mbsync (isync)
// copying the same account from the same Dovecot into a local Maildir:
//
//	just bench-import
//	go test -run '^$' -bench Import -benchtime 1x -timeout 30m ./vandelay/sources/imap
//
// MAILMIG_BENCH_MESSAGES sets the corpus size (default 3000, plus one
// 25 MiB message); MAILMIG_BENCH_CONNS the connections (default 4).
func BenchmarkImport(b *testing.B) {
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
	a := newAccount(b)
	c := corpus.Generate(corpus.Options{Seed: 1, Messages: n, HugeSize: 25 << 20})
	if err := c.LoadIMAP(context.Background(), a.addr, a.user, a.pass, 4); err != nil {
		b.Fatal(err)
	}
	size := float64(c.Size())
	for b.Loop() {
		// mbsync first, so that any warming of Dovecot's caches favours it.
		tMbsync := runMbsync(b, mbsync, a, false)
		// The import is timed from opening a new archive to closing it (the
		// close checkpoints the WAL into the database file).
		arPath := filepath.Join(b.TempDir(), "bench.db")
		start := time.Now()
		ar, err := archive.Open(context.Background(), arPath, nil)
		if err != nil {
			b.Fatal(err)
		}
		s1 := a.factory(withConns(conns))(b)
		res := vandelaytest.Import(b, ar, s1, nil)
		s1.Close()
		if err := ar.Close(); err != nil {
			b.Fatal(err)
		}
		tFull := time.Since(start)
		if res.MessagesAdded == 0 {
			b.Fatal("nothing imported")
		}
		if ar, err = archive.Open(context.Background(), arPath, nil); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		s2 := a.factory(withConns(conns))(b)
		res2 := vandelaytest.Import(b, ar, s2, nil)
		tRerun := time.Since(start)
		s2.Close()
		ar.Close()
		if res2.Fetched != 0 {
			b.Fatalf("no-change re-run fetched %d bodies", res2.Fetched)
		}
		// and once more after mailmig; the better of the two counts.
		tMbsync = min(tMbsync, runMbsync(b, mbsync, a, false))
		tMbsyncDurable := runMbsync(b, mbsync, a, true)

		rate := func(d time.Duration) string {
			return fmt.Sprintf("%6.0f msg/s %6.1f MB/s", float64(len(c.Messages))/d.Seconds(), size/1e6/d.Seconds())
		}
		b.Logf("corpus: %d messages, %.1f MB (largest 25 MiB), %d folders, %d connections", len(c.Messages), size/1e6, len(c.Folders), conns)
		b.Logf("mailmig import    %7.2fs  %s", tFull.Seconds(), rate(tFull))
		b.Logf("mailmig no-change %7.3fs", tRerun.Seconds())
		b.Logf("mbsync → Maildir  %7.2fs  %s  (FSync yes, its default)", tMbsyncDurable.Seconds(), rate(tMbsyncDurable))
		b.Logf("mbsync → Maildir  %7.2fs  %s  (FSync no, best of a run before and one after mailmig)", tMbsync.Seconds(), rate(tMbsync))
		b.Logf("ratio mailmig/mbsync %.2f (against FSync no; %.2f against the default)", tFull.Seconds()/tMbsync.Seconds(),
			tFull.Seconds()/tMbsyncDurable.Seconds())
		b.ReportMetric(tFull.Seconds(), "import-s")
		b.ReportMetric(tRerun.Seconds(), "rerun-s")
		b.ReportMetric(tMbsync.Seconds(), "mbsync-s")
		b.ReportMetric(float64(len(c.Messages))/tFull.Seconds(), "msgs/s")
		b.ReportMetric(size/1e6/tFull.Seconds(), "MB/s")
		b.ReportMetric(tFull.Seconds()/tMbsync.Seconds(), "ratio")
	}
}

// runMbsync copies the account into a fresh local Maildir with mbsync and
// returns the wall time. fsync selects mbsync's FSync option (default yes:
// an fsync per message); the archive commits in batches without an fsync
// per message (SQLite WAL, synchronous=NORMAL), so FSync no is the fair
// comparison.
func runMbsync(b *testing.B, mbsync string, a account, fsync bool) time.Duration {
	b.Helper()
	dir := b.TempDir()
	host, port, _ := splitHostPort(a.addr)
	conf := fmt.Sprintf(`IMAPAccount src
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
`, host, port, a.user, a.pass, dir, dir)
	if !fsync {
		conf = "FSync no\n\n" + conf
	}
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

func withConns(n int) func(*imapsrc.Options) {
	return func(c *imapsrc.Options) { c.Connections = n }
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
