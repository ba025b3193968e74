package jmap_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
)

// BenchmarkEndToEnd measures, in one run on one corpus, mailmig's import
// (Dovecot IMAP → archive) plus export (archive → Cyrus JMAP) against
// mbsync copying the same Dovecot account IMAP → IMAP into Cyrus, and the
// no-change import+export re-run:
//
//	just bench-export
//	go test -run '^$' -bench EndToEnd -benchtime 1x -timeout 60m ./vandelay/targets/jmap
//
// MAILMIG_BENCH_MESSAGES sets the corpus size (default 3000, with one
// 25 MiB message).
func BenchmarkEndToEnd(b *testing.B) {
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("MAILMIG_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		b.Skip("mbsync (Debian package isync) is not installed")
	}
	s := peers.Get(b)
	ctx := context.Background()
	c := corpus.Generate(corpus.Options{Seed: 1, Messages: n, HugeSize: 25 << 20})
	src := s.NewAccount(b)
	if err := c.LoadIMAP(ctx, s.Dovecot.IMAP, src.Email, src.Password, 4); err != nil {
		b.Fatal(err)
	}
	size := float64(c.Size())
	for b.Loop() {
		// mailmig: import into a fresh archive, export into a fresh Cyrus account.
		dst := s.NewAccount(b)
		a := tempArchive(b)
		start := time.Now()
		importIMAP(b, s, src, a)
		tImport := time.Since(start)
		cl := dial(b, s.Cyrus.JMAPURL(), dst)
		acctID, _ := cl.Session().FindAccount("")
		res, err := tj.Export(ctx, a, cl, acctID, nil)
		if err != nil {
			b.Fatal(err)
		}
		tMailmig := time.Since(start)
		if res.EmailsImported+res.EmailsMatched == 0 || res.Partial() {
			b.Fatalf("export: %+v", res)
		}
		// no-change re-run
		start = time.Now()
		importIMAP(b, s, src, a)
		res, err = tj.Export(ctx, a, dial(b, s.Cyrus.JMAPURL(), dst), acctID, nil)
		if err != nil {
			b.Fatal(err)
		}
		tRerun := time.Since(start)
		if res.Uploads != 0 {
			b.Fatalf("no-change re-run uploaded %d", res.Uploads)
		}

		// mbsync: the same source account into another fresh Cyrus account.
		dst2 := s.NewAccount(b)
		tMbsync := runMbsync(b, mbsync, s, src, dst2)

		// Cyrus's own ingest rate: the same corpus APPENDed over Cyrus's
		// IMAP (4 connections, what the corpus loader does) into a third
		// fresh account. The export cannot beat what Cyrus accepts; this
		// says how close it gets.
		dst3 := s.NewAccount(b)
		start = time.Now()
		if err := c.LoadIMAP(ctx, s.Cyrus.IMAP, dst3.Email, dst3.Password, 4); err != nil {
			b.Fatal(err)
		}
		tAppend := time.Since(start)
		tExport := tMailmig - tImport

		rate := func(d time.Duration) string {
			return fmt.Sprintf("%6.0f msg/s %6.1f MB/s", float64(len(c.Messages))/d.Seconds(), size/1e6/d.Seconds())
		}
		b.Logf("\n%d messages, %.1f MB (Dovecot → Cyrus, same run)\n"+
			"  mailmig import+export %7.1fs  %s  (import %.1fs, export %.1fs)\n"+
			"  mbsync IMAP→IMAP      %7.1fs  %s\n"+
			"  ratio mailmig/mbsync time %.2f\n"+
			"  mailmig export alone  %7.1fs  %s\n"+
			"  Cyrus IMAP APPEND     %7.1fs  %s  (the corpus loader, 4 connections)\n"+
			"  ratio export/APPEND time %.2f\n"+
			"  mailmig no-change import+export re-run %.2fs",
			len(c.Messages), size/1e6, tMailmig.Seconds(), rate(tMailmig), tImport.Seconds(), tExport.Seconds(),
			tMbsync.Seconds(), rate(tMbsync), tMailmig.Seconds()/tMbsync.Seconds(),
			tExport.Seconds(), rate(tExport), tAppend.Seconds(), rate(tAppend), tExport.Seconds()/tAppend.Seconds(), tRerun.Seconds())
		b.ReportMetric(tExport.Seconds()/tAppend.Seconds(), "export/append")
		b.ReportMetric(float64(len(c.Messages))/tMailmig.Seconds(), "mailmig-msg/s")
		b.ReportMetric(float64(len(c.Messages))/tMbsync.Seconds(), "mbsync-msg/s")
		b.ReportMetric(tMailmig.Seconds()/tMbsync.Seconds(), "time-ratio")
		b.ReportMetric(tRerun.Seconds(), "rerun-s")
	}
}

func runMbsync(b *testing.B, mbsync string, s *peers.Set, src, dst peers.Account) time.Duration {
	b.Helper()
	dir := b.TempDir()
	host := func(addr string) (string, string) {
		i := strings.LastIndexByte(addr, ':')
		return addr[:i], addr[i+1:]
	}
	sh, sp := host(s.Dovecot.IMAP)
	dh, dp := host(s.Cyrus.IMAP)
	rc := fmt.Sprintf(`IMAPAccount src
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs PLAIN
PipelineDepth 50
# the default 20 s timed out once on the 25 MiB APPEND on a loaded machine
Timeout 120

IMAPStore src
Account src

IMAPAccount dst
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs PLAIN
PipelineDepth 50
# the default 20 s timed out once on the 25 MiB APPEND on a loaded machine
Timeout 120

IMAPStore dst
Account dst

Channel copy
Far :src:
Near :dst:
Patterns *
Create Near
Remove None
Expunge None
Sync Pull
CopyArrivalDate yes
SyncState %s/
`, sh, sp, src.Email, src.Password, dh, dp, dst.Email, dst.Password, filepath.Join(dir, "state"))
	cfg := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(cfg, []byte(rc), 0o600); err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "state"), 0o700)
	start := time.Now()
	out, err := exec.Command(mbsync, "-q", "-c", cfg, "-a").CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("mbsync: %v\n%s", err, out)
	}
	return d
}
