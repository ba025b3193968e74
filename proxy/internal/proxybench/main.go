// Command proxybench measures mailmig's IMAP proxy against the real servers
// of a running peer set (MAILMIG_PEERS_ROOT, MAILMIG_PEERS_OFFSET):
//
//	(a) sessions per second of connect + LOGIN + SELECT + FETCH one
//	    message + LOGOUT, through mailmig's proxy, directly to Dovecot,
//	    through Dovecot's own proxy and through nginx's mail proxy, with the
//	    same Go client (go-imap v2) and the same concurrency, in one run;
//	(b) bulk FETCH throughput (UID FETCH 1:* BODY.PEEK[] of a ~32 MB
//	    mailbox) through the proxy and directly;
//	(c) resident memory of the proxy process per idle connection, with
//	    -idle connections open before login and -bridged logged-in
//	    sessions (Dovecot allows 1000 imap processes in the test config).
//
// The proxy runs as its own process (`mailmig proxy` from a generated
// plan), so its RSS is its own. `just bench-proxy` runs it; the figures go
// to docs/proxy.md.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
)

func main() {
	bin := flag.String("mailmig", "", "mailmig binary (built by the caller)")
	workers := flag.Int("workers", 4, "concurrent clients for (a)")
	dur := flag.Duration("duration", 5*time.Second, "measuring time per target and round for (a)")
	rounds := flag.Int("rounds", 7, "rounds of (a); targets alternate within a round")
	bulkMsgs := flag.Int("bulk-messages", 800, "messages in the bulk mailbox for (b)")
	bulkSize := flag.Int("bulk-size", 40*1024, "bytes per bulk message")
	bulkRuns := flag.Int("bulk-runs", 7, "runs of (b) per target")
	flag.IntVar(&bulkRepeat, "bulk-repeat", 4, "fetches of the bulk mailbox per run of (b)")
	idle := flag.Int("idle", 5000, "idle pre-login connections for (c)")
	bridged := flag.Int("bridged", 900, "idle logged-in sessions for (c)")
	only := flag.String("targets", "direct,mailmig,dovecot,nginx", "targets of (a), comma-separated (direct is always measured for the ratios)")
	flag.Parse()
	if err := run(*bin, *workers, *dur, *rounds, *bulkMsgs, *bulkSize, *bulkRuns, *idle, *bridged, strings.Split(*only, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func run(bin string, workers int, dur time.Duration, rounds, bulkMsgs, bulkSize, bulkRuns, idle, bridged int, only []string) error {
	if bin == "" {
		return fmt.Errorf("-mailmig is required")
	}
	s, err := peers.FromEnv()
	if err != nil || s == nil {
		return fmt.Errorf("needs a running peer set (MAILMIG_PEERS_ROOT): %v", err)
	}
	ctx := context.Background()
	acct := peers.Account{Email: "bench" + randHex(4) + "@example.test", Password: "pw-" + randHex(6)}
	if err := s.AddAccount(ctx, acct); err != nil {
		return err
	}
	fmt.Printf("account %s on %s (offset %d)\n", acct.Email, s.Root, s.Offset)

	// Corpus: one small message in INBOX, a bulk mailbox.
	if err := populate(s.Dovecot.IMAP, acct, bulkMsgs, bulkSize); err != nil {
		return fmt.Errorf("populate: %w", err)
	}

	px, err := startProxy(bin, s)
	if err != nil {
		return err
	}
	defer px.stop()
	fmt.Printf("mailmig proxy pid %d on %s\n\n", px.cmd.Process.Pid, px.imap)

	type target struct{ key, name, addr string }
	// cpuOf returns the CPU time the target's own processes used so far
	// (the proxy in front, not the Dovecot behind it), or -1 when unknown.
	backendTree := pidFile(filepath.Join(s.Root, "dovecot", "run", "master.pid"))
	cpuOf := func(key string) time.Duration {
		switch key {
		case "mailmig":
			return cpuTime(px.cmd.Process.Pid)
		case "dovecot":
			return treeCPU(pidFile(filepath.Join(s.Root, "dovecot-proxy", "run", "master.pid")))
		case "nginx":
			return treeCPU(pidFile(filepath.Join(s.Root, "nginx-mail", "run", "nginx.pid")))
		}
		return -1
	}
	var targets []target
	for _, tg := range []target{
		{"direct", "direct Dovecot", s.Dovecot.IMAP},
		{"mailmig", "mailmig proxy", px.imap},
		{"dovecot", "Dovecot proxy", s.DovecotProxy.IMAP},
		{"nginx", "nginx mail proxy", s.NginxMail.IMAP},
	} {
		if tg.key == "direct" || slices.Contains(only, tg.key) {
			targets = append(targets, tg)
		}
	}
	// (a)
	fmt.Printf("(a) sessions/s: connect+LOGIN+SELECT+FETCH 1 (BODY[])+LOGOUT, %d workers, %v x %d rounds\n", workers, dur, rounds)
	res := map[string][]float64{}
	frontCPU := map[string]time.Duration{}
	backCPU := map[string]time.Duration{}
	done := map[string]float64{}
	for r := 0; r < rounds; r++ {
		for i := range targets {
			tg := targets[(i+r)%len(targets)]
			f0, b0 := cpuOf(tg.key), treeCPU(backendTree)
			rate, errs := sessions(tg.addr, acct, workers, dur)
			frontCPU[tg.key] += cpuOf(tg.key) - f0
			backCPU[tg.key] += treeCPU(backendTree) - b0
			done[tg.key] += rate * dur.Seconds()
			if errs > 0 {
				fmt.Printf("  %s: %d errors\n", tg.name, errs)
			}
			res[tg.name] = append(res[tg.name], rate)
		}
	}
	direct := median(res["direct Dovecot"])
	for _, tg := range targets {
		m := median(res[tg.name])
		fmt.Printf("  %-18s %7.1f sessions/s median, %7.1f best (rounds %s)  %.2fx direct\n", tg.name, m, slices.Max(res[tg.name]), fmtList(res[tg.name]), m/direct)
	}
	// Paired ratios: each round measures every target back to back, so
	// the ratio within a round cancels most of the machine's drift.
	for _, tg := range targets {
		if tg.key == "mailmig" || tg.key == "direct" || res["mailmig proxy"] == nil {
			continue
		}
		var ratios []float64
		for r := range res[tg.name] {
			ratios = append(ratios, res["mailmig proxy"][r]/res[tg.name][r])
		}
		wins := 0
		for _, x := range ratios {
			if x >= 1 {
				wins++
			}
		}
		fmt.Printf("  mailmig / %-16s %.3f median of per-round ratios (rounds %s; mailmig ahead in %d of %d)\n", tg.name, median(ratios), fmtList3(ratios), wins, len(ratios))
	}
	// CPU per session is steadier than sessions/s on a small machine
	// where client, proxy and Dovecot share the cores.
	fmt.Printf("  CPU per session (user+system, the front's processes / the Dovecot behind it):\n")
	for _, tg := range targets {
		front := "-"
		if tg.key != "direct" {
			front = fmt.Sprintf("%.2f ms", msPer(frontCPU[tg.key], done[tg.key]))
		}
		fmt.Printf("  %-18s front %8s   Dovecot %.2f ms\n", tg.name, front, msPer(backCPU[tg.key], done[tg.key]))
	}
	if slices.ContainsFunc(targets, func(t target) bool { return t.key == "nginx" }) {
		fmt.Printf("  (nginx: master and workers; its auth_http endpoint, a Python test helper, is not counted)\n")
	}

	// (b)
	fmt.Printf("\n(b) bulk UID FETCH 1:* BODY.PEEK[] of %d messages x %d bytes, %d times a run, %d runs each\n", bulkMsgs, bulkSize, bulkRepeat, bulkRuns)
	// Direct and mailmig, then the other fronts for reference: what one
	// more hop costs on this machine whoever makes it.
	bulkTargets := []target{targets[0], {"mailmig", "mailmig proxy", px.imap}}
	for _, tg := range targets {
		if tg.key != "direct" && tg.key != "mailmig" {
			bulkTargets = append(bulkTargets, tg)
		}
	}
	bres := map[string][]float64{}
	var total int64
	bulkCPU := map[string]time.Duration{}
	bulkBytes := map[string]int64{}
	for r := 0; r < bulkRuns; r++ {
		for _, tg := range bulkTargets {
			cpu0 := cpuOf(tg.key)
			mbps, n, err := bulk(tg.addr, acct)
			bulkCPU[tg.key] += cpuOf(tg.key) - cpu0
			bulkBytes[tg.key] += n
			if err != nil {
				return fmt.Errorf("bulk %s: %w", tg.name, err)
			}
			total = n
			bres[tg.name] = append(bres[tg.name], mbps)
		}
	}
	bd := median(bres["direct Dovecot"])
	for _, tg := range bulkTargets {
		if bulkRuns == 0 {
			break
		}
		m := median(bres[tg.name])
		fmt.Printf("  %-18s %7.1f MB/s median, %7.1f best (runs %s; %.1f MB each)  %.2fx direct (best %.2fx)\n", tg.name, m, slices.Max(bres[tg.name]), fmtList(bres[tg.name]), float64(total)/1e6, m/bd, slices.Max(bres[tg.name])/slices.Max(bres["direct Dovecot"]))
	}

	for _, tg := range bulkTargets[1:] {
		if bulkBytes[tg.key] > 0 {
			fmt.Printf("  %-18s front CPU %.2f ms per MB\n", tg.name, msPer(bulkCPU[tg.key], float64(bulkBytes[tg.key])/1e6))
		}
	}

	// (c)
	// Each measurement in a fresh proxy process: the Go runtime returns
	// freed memory to the OS lazily, so a second measurement in the same
	// process would start from an inflated base.
	fmt.Printf("\n(c) proxy RSS per idle connection (fresh proxy process for each line)\n")
	px.stop()
	for _, kind := range []string{"idle", "bridged"} {
		p2, err := startProxy(bin, s)
		if err != nil {
			return err
		}
		n := idle
		if kind == "bridged" {
			n = bridged
		}
		if n == 0 {
			p2.stop()
			continue
		}
		err = idleRSS(p2, acct, kind, n)
		p2.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func fmtList(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x, 'f', 1, 64))
	}
	return strings.Join(parts, " ")
}

func fmtList3(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x, 'f', 3, 64))
	}
	return strings.Join(parts, " ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	return c[len(c)/2]
}

func populate(addr string, a peers.Account, n, size int) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		return err
	}
	if err := appendOne(c, "INBOX", 0, 2000); err != nil {
		return err
	}
	if err := c.Create("Bulk", nil).Wait(); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if err := appendOne(c, "Bulk", i, size); err != nil {
			return err
		}
	}
	return c.Logout().Wait()
}

func appendOne(c *imapclient.Client, mbox string, i, size int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "From: bench@example.test\r\nTo: bench@example.test\r\nSubject: bench %d\r\nMessage-ID: <bench-%d-%s@example.test>\r\n\r\n", i, i, randHex(4))
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	msg := b.String()
	cmd := c.Append(mbox, int64(len(msg)), nil)
	cmd.Write([]byte(msg))
	cmd.Close()
	_, err := cmd.Wait()
	return err
}

type proxyProc struct {
	cmd  *exec.Cmd
	imap string
	dir  string
}

func (p *proxyProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
	}
	os.RemoveAll(p.dir)
}

func startProxy(bin string, s *peers.Set) (*proxyProc, error) {
	dir, err := os.MkdirTemp("", "mmbench")
	if err != nil {
		return nil, err
	}
	port := 20000 + s.Offset + 90
	imapAddr := "127.0.0.1:" + strconv.Itoa(port)
	planText := fmt.Sprintf(`state {
  path = "state/"
}
routes {
  sqlite = "state/routes.db"
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
}
proxy {
  listen {
    imap = %q
  }
}
`, s.Dovecot.IMAP, imapAddr)
	planFile := filepath.Join(dir, "migration.hcl")
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-f", planFile, "routes", "default", "legacy").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("routes default: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-f", planFile, "proxy", "-max-conns-per-ip", "100000")
	cmd.Stdout, _ = os.Create(filepath.Join(dir, "proxy.log"))
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proxyProc{cmd: cmd, imap: imapAddr, dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", imapAddr)
		if err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("mailmig proxy did not listen on %s", imapAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func oneSession(addr string, a peers.Account) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		return err
	}
	if len(msgs) != 1 {
		return fmt.Errorf("fetched %d messages", len(msgs))
	}
	return c.Logout().Wait()
}

func sessions(addr string, a peers.Account, workers int, dur time.Duration) (perSec float64, errs int64) {
	var n, e atomic.Int64
	stop := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := oneSession(addr, a); err != nil {
					if e.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "  session error on %s: %v\n", addr, err)
					}
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), e.Load()
}

// bulkRepeat is how often one run of (b) fetches the bulk mailbox.
var bulkRepeat = 4

func bulk(addr string, a peers.Account) (mbps float64, bytes int64, err error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		return 0, 0, err
	}
	if _, err := c.Select("Bulk", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, 0, err
	}
	// The mailbox is fetched bulkRepeat times in one session, so that a
	// run lasts long enough (about a second) to be measured; one buffer
	// serves every literal, so that the client's own garbage does not
	// compete with the servers for the CPU.
	buf := make([]byte, 64*1024)
	start := time.Now()
	var all imap.UIDSet
	all.AddRange(1, 0)
	for range bulkRepeat {
		cmd := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			for {
				item := msg.Next()
				if item == nil {
					break
				}
				if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
					for {
						k, err := bs.Literal.Read(buf)
						bytes += int64(k)
						if err != nil {
							break
						}
					}
				}
			}
		}
		if err := cmd.Close(); err != nil {
			return 0, 0, err
		}
	}
	el := time.Since(start)
	c.Logout().Wait()
	return float64(bytes) / 1e6 / el.Seconds(), bytes, nil
}

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// cpuTime returns the user+system CPU time of a process.
func cpuTime(pid int) time.Duration {
	f := statFields(pid)
	if f == nil {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ = 100
}

func msPer(d time.Duration, n float64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / 1000 / n
}

func pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// treeCPU returns the CPU time of a process and its living descendants,
// plus what its reaped children used (cutime, cstime: Dovecot's login
// and auth processes may come and go).
func treeCPU(root int) time.Duration {
	if root == 0 {
		return 0
	}
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); f != nil {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	var ticks int64
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p != root {
				continue
			}
			f := statFields(pid)
			if f == nil {
				break
			}
			for _, i := range []int{11, 12} { // utime, stime
				v, _ := strconv.ParseInt(f[i], 10, 64)
				ticks += v
			}
			if pid == root {
				for _, i := range []int{13, 14} { // cutime, cstime
					v, _ := strconv.ParseInt(f[i], 10, 64)
					ticks += v
				}
			}
			break
		}
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ = 100
}

// statFields returns the fields of /proc/PID/stat after the command name
// (field 3, the state, is index 0).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	return strings.Fields(s[i+2:])
}

func settle() { time.Sleep(2 * time.Second) }

func idleRSS(px *proxyProc, a peers.Account, kind string, n int) error {
	pid := px.cmd.Process.Pid
	settle()
	base, err := rssKiB(pid)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", px.imap)
		if err != nil {
			return fmt.Errorf("%s connection %d: %w (raise ulimit -n)", kind, i, err)
		}
		conns = append(conns, c)
		br := bufio.NewReader(c)
		if _, err := br.ReadString('\n'); err != nil {
			return fmt.Errorf("%s connection %d greeting: %w", kind, i, err)
		}
		if kind == "bridged" {
			fmt.Fprintf(c, "a LOGIN %s %s\r\n", a.Email, a.Password)
			l, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(l, "a OK") {
				return fmt.Errorf("bridged session %d: %q %v", i, l, err)
			}
		}
	}
	settle()
	after, _ := rssKiB(pid)
	what := "idle connections before login"
	if kind == "bridged" {
		what = "idle logged-in (bridged) sessions"
	}
	fmt.Printf("  %5d %s: RSS %d -> %d KiB, %.1f KiB each\n", n, what, base, after, float64(after-base)/float64(n))
	return nil
}
