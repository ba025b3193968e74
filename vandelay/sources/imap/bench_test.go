package imap_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// BenchmarkImport measures, in one run on one corpus, mailmig's full IMAP
// import (Dovecot → archive) against the limits around it: a raw FETCH (the
// Go IMAP client reading every body of the same account over the same
// number of connections and discarding it: the wire and Dovecot, which an
// import cannot beat), mbsync (isync) copying the same account into a local
// Maildir, the no-change re-run, and the import's peak RSS, also for an
// account whose big message is 100 MiB (the memory bound must not follow
// it):
//
//	just bench-import
//	go test -run '^$' -bench Import -benchtime 1x -timeout 30m ./vandelay/sources/imap
//
// The import runs as the real command (mailmig vandelay import imap, built
// for the run), so its peak RSS is the process's own. Every contender runs
// twice, interleaved, and the better time counts: the machine is shared.
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
	bin := buildMailmig(b)
	a := newAccount(b)
	c := corpus.Generate(corpus.Options{Seed: 1, Messages: n, HugeSize: 25 << 20})
	if err := c.LoadIMAP(context.Background(), a.addr, a.user, a.pass, 4); err != nil {
		b.Fatal(err)
	}
	big := newAccount(b)
	cBig := corpus.Generate(corpus.Options{Seed: 2, Messages: 20, HugeSize: 100 << 20})
	if err := cBig.LoadIMAP(context.Background(), big.addr, big.user, big.pass, 4); err != nil {
		b.Fatal(err)
	}
	size := float64(c.Size())
	for b.Loop() {
		// mbsync first, so that any warming of Dovecot's caches favours it.
		tMbsync := runMbsync(b, mbsync, a, false)
		tRaw := rawFetch(b, a, conns)
		imp := runImport(b, bin, a, conns)
		// and once more each, in the other order; the better of two counts.
		imp2 := runImport(b, bin, a, conns)
		tRaw = min(tRaw, rawFetch(b, a, conns))
		tMbsync = min(tMbsync, runMbsync(b, mbsync, a, false))
		tMbsyncDurable := runMbsync(b, mbsync, a, true)
		tFull := min(imp.wall, imp2.wall)
		rss := max(imp.maxRSS, imp2.maxRSS)

		// The no-change re-run, in-process: the import's own work without
		// the process start.
		ar, err := archive.Open(context.Background(), imp.archive, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		s2 := a.factory(withConns(conns))(b)
		res2 := vandelaytest.Import(b, ar, s2, nil)
		tRerun := time.Since(start)
		s2.Close()
		ar.Close()
		if res2.Fetched != 0 {
			b.Fatalf("no-change re-run fetched %d bodies", res2.Fetched)
		}
		// What the re-run cannot avoid: connect, greeting, login and one
		// LIST … RETURN (STATUS), by go-imap; under load this is most of
		// the re-run (Dovecot starts a login process per connection).
		tLogin := loginList(b, a)

		// The 100 MiB message.
		bigImp := runImport(b, bin, big, conns)
		tBigRaw := rawFetch(b, big, conns)

		rate := func(d time.Duration) string {
			return fmt.Sprintf("%6.0f msg/s %6.1f MB/s", float64(len(c.Messages))/d.Seconds(), size/1e6/d.Seconds())
		}
		b.Logf("corpus: %d messages, %.1f MB (largest 25 MiB), %d folders, %d connections", len(c.Messages), size/1e6, len(c.Folders), conns)
		b.Logf("raw FETCH (go-imap)  %7.2fs  %s  (best of 2)", tRaw.Seconds(), rate(tRaw))
		b.Logf("mailmig import       %7.2fs  %s  (best of 2: %.2fs, %.2fs; peak RSS %.0f MB)", tFull.Seconds(), rate(tFull),
			imp.wall.Seconds(), imp2.wall.Seconds(), float64(rss)/1e6)
		b.Logf("mailmig no-change    %7.3fs  (go-imap connect+login+LIST-STATUS alone: %.3fs)", tRerun.Seconds(), tLogin.Seconds())
		b.Logf("mbsync → Maildir     %7.2fs  %s  (FSync no, best of 2)", tMbsync.Seconds(), rate(tMbsync))
		b.Logf("mbsync → Maildir     %7.2fs  %s  (FSync yes, its default)", tMbsyncDurable.Seconds(), rate(tMbsyncDurable))
		b.Logf("ratios: import/raw FETCH %.2f (goal ≤ 2), import/mbsync %.2f (FSync no; goal ≤ 1.0), %.2f (FSync yes)",
			tFull.Seconds()/tRaw.Seconds(), tFull.Seconds()/tMbsync.Seconds(), tFull.Seconds()/tMbsyncDurable.Seconds())
		b.Logf("100 MiB message (%d messages, %.1f MB): import %.2fs, raw FETCH %.2fs (ratio %.2f), peak RSS %.0f MB",
			len(cBig.Messages), float64(cBig.Size())/1e6, bigImp.wall.Seconds(), tBigRaw.Seconds(),
			bigImp.wall.Seconds()/tBigRaw.Seconds(), float64(bigImp.maxRSS)/1e6)
		b.ReportMetric(tFull.Seconds(), "import-s")
		b.ReportMetric(tRaw.Seconds(), "rawfetch-s")
		b.ReportMetric(tRerun.Seconds(), "rerun-s")
		b.ReportMetric(tLogin.Seconds(), "loginlist-s")
		b.ReportMetric(tMbsync.Seconds(), "mbsync-s")
		b.ReportMetric(float64(len(c.Messages))/tFull.Seconds(), "msgs/s")
		b.ReportMetric(tFull.Seconds()/tRaw.Seconds(), "ratio-raw")
		b.ReportMetric(tFull.Seconds()/tMbsync.Seconds(), "ratio-mbsync")
		b.ReportMetric(float64(rss)/1e6, "rss-MB")
		b.ReportMetric(float64(bigImp.maxRSS)/1e6, "rss100MiB-MB")
	}
}

// benchImports numbers the profiled imports of MAILMIG_BENCH_PROFILE.
var benchImports int

type importRun struct {
	wall    time.Duration
	maxRSS  int64 // bytes
	archive string
}

// runImport runs "mailmig vandelay import imap" into a fresh archive: the
// wall time of the process (archive creation to close, which checkpoints
// the WAL) and its peak RSS.
func runImport(b *testing.B, bin string, a account, conns int) importRun {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	args := []string{"vandelay", "import", "imap", "--server", a.addr, "--tls", "none", "--allow-cleartext",
		"--user", a.user, "--password-env", "MAILMIG_BENCH_PW", "--progress", "none", "--connections", strconv.Itoa(conns)}
	// MAILMIG_BENCH_PROFILE=DIR keeps a CPU profile and a trace of every
	// import in DIR (import-N.cpu, import-N.trace) for go tool pprof/trace.
	if dir := os.Getenv("MAILMIG_BENCH_PROFILE"); dir != "" {
		benchImports++
		p := filepath.Join(dir, fmt.Sprintf("import-%d", benchImports))
		args = append(args, "--cpuprofile", p+".cpu", "--trace", p+".trace")
	}
	args = append(args, path)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MAILMIG_BENCH_PW="+a.pass)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("mailmig import: %v\n%s", err, out)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // KiB on Linux
	}
	return importRun{wall: d, maxRSS: rss, archive: path}
}

// loginList times a connection, login and one LIST … RETURN (STATUS):
// the floor of a no-change re-run.
func loginList(b *testing.B, a account) time.Duration {
	b.Helper()
	start := time.Now()
	c, err := imapclient.DialInsecure(a.addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.user, a.pass).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, UIDNext: true,
		UIDValidity: true, HighestModSeq: true}}).Collect(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// rawFetch reads every body of the account with go-imap over conns
// connections and discards it: the same work division as the import (UID
// FETCH chunks of 100 from a shared queue, after one UID SEARCH per
// mailbox), none of its storage. It returns the wall time from the first
// dial to the last byte.
func rawFetch(b *testing.B, a account, conns int) time.Duration {
	b.Helper()
	start := time.Now()
	dial := func() *imapclient.Client {
		c, err := imapclient.DialInsecure(a.addr, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Login(a.user, a.pass).Wait(); err != nil {
			b.Fatal(err)
		}
		return c
	}
	type task struct {
		mailbox string
		uids    []imap.UID
	}
	c0 := dial()
	list, err := c0.List("", "*", nil).Collect()
	if err != nil {
		b.Fatal(err)
	}
	var tasks []task
	for _, ld := range list {
		if slices.ContainsFunc(ld.Attrs, func(x imap.MailboxAttr) bool {
			return x == imap.MailboxAttrNoSelect || x == imap.MailboxAttrNonExistent
		}) {
			continue
		}
		if _, err := c0.Select(ld.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			b.Fatal(err)
		}
		sd, err := c0.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			b.Fatal(err)
		}
		for uids := range slices.Chunk(sd.AllUIDs(), 100) {
			tasks = append(tasks, task{ld.Mailbox, uids})
		}
	}
	q := make(chan task, len(tasks))
	for _, t := range tasks {
		q <- t
	}
	close(q)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		c := c0
		if i > 0 {
			c = dial()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			selected := ""
			for t := range q {
				if t.mailbox != selected {
					if _, err := c.Select(t.mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
						errs <- err
						return
					}
					selected = t.mailbox
				}
				var set imap.UIDSet
				set.AddNum(t.uids...)
				cmd := c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
					BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
				for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
					for item := msg.Next(); item != nil; item = msg.Next() {
						if bs, ok := item.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
							if _, err := io.Copy(io.Discard, bs.Literal); err != nil {
								errs <- err
								return
							}
						}
					}
				}
				if err := cmd.Close(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
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
