package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/engine/state/pgstate"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// The test seam MAILMIG_TEST_PAUSE_FROZEN=DURATION makes every cut-over of
// the process wait that long right after its freeze (in front of the
// barrier), so that a test can kill the process in the middle of a
// cut-over. This init runs before seams_test.go's, whose MAILMIG_TEST_MAIN
// starts the command (files initialise in name order).
func init() {
	d, err := time.ParseDuration(os.Getenv("MAILMIG_TEST_PAUSE_FROZEN"))
	if err != nil || d <= 0 {
		return
	}
	open := openWorld
	openWorld = func(ctx context.Context, m *plan.Migration, write bool, log *slog.Logger) (*world, error) {
		w, err := open(ctx, m, write, log)
		if err == nil {
			w.Barrier = pausedBarrier{next: w.Barrier, d: d}
		}
		return w, err
	}
}

// pausedBarrier sleeps after a freeze, then waits on next.
type pausedBarrier struct {
	next engine.Barrier
	d    time.Duration
}

func (b pausedBarrier) AwaitRoute(ctx context.Context, account string, ev engine.RouteEvent) error {
	if ev == engine.RouteFrozen {
		fmt.Fprintf(os.Stderr, "test seam: %s frozen, pausing %v\n", account, b.d)
		select {
		case <-time.After(b.d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.next == nil {
		return nil
	}
	return b.next.AwaitRoute(ctx, account, ev)
}

// workerFleet is a plan of fresh accounts moving from the real Dovecot to
// the real Cyrus, with the journal, the apply lock, the claims and the
// route table in one PostgreSQL database, and one directory per worker
// (each its own state/ with its own archives, as on separate machines).
type workerFleet struct {
	t     *testing.T
	s     *peers.Set
	accts []peers.Account
	dsn   string
	dirs  map[string]string // worker → its directory
	par   string            // -parallelism of runAll's workers
}

func newWorkerFleet(t *testing.T, n, seed int, workers ...string) *workerFleet {
	if testing.Short() {
		t.Skip("starts worker processes against the real servers")
	}
	s := needPeers(t)
	f := &workerFleet{t: t, s: s, dirs: map[string]string{}, par: "2"}
	f.dsn = s.Postgres.NewDatabase(t)
	u, err := url.Parse(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("MAILMIG_TEST_PGPASS", pw)
	var csv strings.Builder
	csv.WriteString("address,source_login,target_login,password_ref\n")
	for i := 0; i < n; i++ {
		a := s.NewAccount(t)
		f.accts = append(f.accts, a)
		env := fmt.Sprintf("MAILMIG_WORKER_PW_%d", i)
		t.Setenv(env, a.Password)
		fmt.Fprintf(&csv, "%s,,,env:%s\n", a.Email, env)
		seedWorkerAccount(t, s, a, seed)
	}
	planText := fmt.Sprintf(`state {
  path         = "state/"
  postgres     = %[1]q
  password_ref = "env:MAILMIG_TEST_PGPASS"
}
routes {
  postgres        = %[1]q
  password_ref    = "env:MAILMIG_TEST_PGPASS"
  lease           = "2s"
  barrier_timeout = "10s"
}
backend "legacy" {
  imap {
    address = %[2]q
    tls     = "none"
  }
}
backend "cyrus" {
  imap {
    address = %[3]q
    tls     = "none"
  }
  jmap {
    url = %[4]q
  }
}
accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = csv("accounts.csv")
  data = ["mail"]
}
wave "all" {
  accounts          = accounts.staff
  catchup_threshold = 1000
}
`, u.String(), s.Dovecot.IMAP, s.Cyrus.IMAP, s.Cyrus.JMAPURL())
	for _, w := range workers {
		dir := filepath.Join(t.TempDir(), w)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"migration.hcl": planText, "accounts.csv": csv.String()} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		f.dirs[w] = dir
	}
	f.cli(workers[0], exitOK, "routes", "default", "legacy")
	return f
}

// seedWorkerAccount appends n messages to the account's INBOX at Dovecot.
func seedWorkerAccount(t *testing.T, s *peers.Set, a peers.Account, n int) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		msg := testMessage(a.Email, fmt.Sprintf("worker-seed-%d-%s", i, a.Email))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
}

// cli runs mailmig in the worker's directory, in this process.
func (f *workerFleet) cli(worker string, want int, args ...string) string {
	f.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"-f", filepath.Join(f.dirs[worker], "migration.hcl")}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != want {
		f.t.Fatalf("mailmig %s (%s): exit %d, want %d\n%s%s", strings.Join(args, " "), worker, code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

// start starts "mailmig apply -worker NAME" as a child process.
func (f *workerFleet) start(worker string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	f.t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"apply", "-worker", worker, "-auto-approve", "-lease", "2s"}, args...)...)
	cmd.Dir = f.dirs[worker]
	cmd.Env = append(append(os.Environ(), "MAILMIG_TEST_MAIN=1", "MAILMIG_ACTOR=test@example.test"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// runAll starts the workers together and waits for all of them; each must
// exit 0.
func (f *workerFleet) runAll(workers ...string) map[string]string {
	f.t.Helper()
	type proc struct {
		cmd *exec.Cmd
		out *bytes.Buffer
	}
	ps := map[string]proc{}
	for _, w := range workers {
		c, o := f.start(w, nil, "-parallelism", f.par)
		ps[w] = proc{c, o}
	}
	outs := map[string]string{}
	for _, w := range workers {
		p := ps[w]
		err := p.cmd.Wait()
		outs[w] = p.out.String()
		if err != nil {
			f.t.Fatalf("worker %s: %v\n%s", w, err, p.out.String())
		}
		f.t.Logf("worker %s:\n%s", w, p.out.String())
	}
	return outs
}

// records reads the journal from the database.
func (f *workerFleet) records() []state.Record {
	f.t.Helper()
	st, err := pgstate.Open(context.Background(), f.dsn, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	var out []state.Record
	if err := (state.Remote{Store: st}).ReadRecords(context.Background(), func(r *state.Record) bool {
		out = append(out, *r)
		return true
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// verify runs "journal verify -json" against the database.
func (f *workerFleet) verify(worker string) {
	f.t.Helper()
	out := f.cli(worker, exitOK, "journal", "verify")
	if !strings.Contains(out, "Journal OK") {
		f.t.Fatalf("journal verify:\n%s", out)
	}
}

// route returns the account's route in the PostgreSQL table.
func (f *workerFleet) route(account string) (backend string, frozen bool) {
	f.t.Helper()
	st, err := pgroutes.Open(context.Background(), f.dsn, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Get(context.Background(), account)
	if err != nil {
		return "", false
	}
	return r.Backend, r.State == "frozen"
}

// checkMessages asserts that every account's INBOX on Cyrus holds exactly
// the messages of its INBOX on Dovecot, compared by the SHA-256 of their
// bytes, each once.
func (f *workerFleet) checkMessages() {
	f.t.Helper()
	for _, a := range f.accts {
		src, dst := messageHashes(f.t, f.s.Dovecot.IMAP, a), messageHashes(f.t, f.s.Cyrus.IMAP, a)
		if len(src) == 0 || strings.Join(src, ",") != strings.Join(dst, ",") {
			f.t.Errorf("%s: Dovecot has %d messages, Cyrus %d; they differ by hash (or one is doubled)", a.Email, len(src), len(dst))
		}
	}
}

// messageHashes returns the sorted SHA-256 of every message in the
// account's INBOX (not deleted).
func messageHashes(t *testing.T, addr string, a peers.Account) []string {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if sel.NumMessages == 0 {
		return out
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(set, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		deleted := false
		for _, fl := range m.Flags {
			deleted = deleted || fl == imap.FlagDeleted
		}
		if deleted {
			continue
		}
		sum := sha256.Sum256(m.FindBodySection(body))
		out = append(out, hex.EncodeToString(sum[:]))
	}
	sort.Strings(out)
	c.Logout().Wait()
	return out
}

// workersByAccount maps each account to the workers named by the actors
// of its start records.
func workersByAccount(recs []state.Record) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, r := range recs {
		if r.Type != state.TypeStart {
			continue
		}
		_, w, ok := strings.Cut(r.Actor, "(worker ")
		if !ok {
			continue
		}
		if out[r.Account] == nil {
			out[r.Account] = map[string]bool{}
		}
		out[r.Account][strings.TrimSuffix(w, ")")] = true
	}
	return out
}

// TestApplyWorkers starts two "mailmig apply -worker" processes together
// on one plan of six accounts, twice: the first time they stage every
// account, the second they cut every account over. Each account is
// handled by one worker only (its archive stays on that worker's
// machine), each is cut over exactly once, the journal verifies, and
// Cyrus holds the same messages as Dovecot by hash, none twice.
func TestApplyWorkers(t *testing.T) {
	f := newWorkerFleet(t, 6, 5, "w1", "w2")
	f.runAll("w1", "w2") // staging
	outs := f.runAll("w1", "w2")
	for w, out := range outs {
		if !strings.Contains(out, "Worker "+w+" complete") {
			t.Errorf("worker %s did not finish cleanly:\n%s", w, out)
		}
	}
	recs := f.records()
	by := workersByAccount(recs)
	cutovers := map[string]int{}
	for _, r := range recs {
		if r.Type == state.TypeFinish && r.Action == "cutover" && r.Outcome == state.OutcomeOK {
			cutovers[r.Account]++
		}
		if r.Type == state.TypeTakeover {
			t.Errorf("unexpected takeover of %s: %s", r.Account, r.Note)
		}
	}
	used := map[string]bool{}
	for _, a := range f.accts {
		k := engine.Key(a.Email)
		if len(by[k]) != 1 {
			t.Errorf("%s was handled by workers %v, want one", k, by[k])
		}
		for w := range by[k] {
			used[w] = true
		}
		if cutovers[k] != 1 {
			t.Errorf("%s was cut over %d times", k, cutovers[k])
		}
		if b, frozen := f.route(k); b != "cyrus" || frozen {
			t.Errorf("%s: route %s frozen=%v", k, b, frozen)
		}
	}
	// Which worker gets which account depends on who asks first: only
	// logged (no timing assertion).
	t.Logf("workers used: %v; accounts per worker: %v", used, by)
	f.verify("w1")
	f.checkMessages()
	// Nothing left, nobody holds the lock, and both workers are listed as
	// stopped.
	if out := f.cli("w1", exitOK, "plan"); !strings.Contains(out, "No changes") {
		t.Errorf("plan after the workers:\n%s", out)
	}
	if out := f.cli("w1", exitOK, "state", "lock"); !strings.Contains(out, "not locked") {
		t.Errorf("state lock after the workers:\n%s", out)
	}
}

// TestApplyWorkerTakeover SIGKILLs a worker in the middle of a cut-over
// (the test seam pauses it right after the freeze). A second worker,
// started at once, waits until the first one's lease has run out, takes
// its accounts over (journaled) and, since their archive was on the dead
// worker's machine, rolls the frozen account back (or finishes it, had it
// been flipped) and imports the other one again into its own archive;
// its next run cuts both over. Every message ends on Cyrus exactly once.
func TestApplyWorkerTakeover(t *testing.T) {
	f := newWorkerFleet(t, 2, 5, "w1", "w2")
	f.runAll("w1") // w1 stages both accounts: their archives are on w1
	cmd, out := f.start("w1", []string{"MAILMIG_TEST_PAUSE_FROZEN=60s"}, "-parallelism", "1")
	frozen := ""
	for i := 0; i < 600 && frozen == ""; i++ {
		for _, a := range f.accts {
			if _, fr := f.route(engine.Key(a.Email)); fr {
				frozen = engine.Key(a.Email)
			}
		}
		time.Sleep(50 * time.Millisecond) // polling another process's progress
	}
	if frozen == "" {
		t.Fatalf("w1 never froze an account:\n%s", out.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t.Logf("w1 killed with %s frozen:\n%s", frozen, out.String())

	took := f.runAll("w2")["w2"]
	if !strings.Contains(took, "taken over") {
		t.Errorf("w2 does not say it took accounts over:\n%s", took)
	}
	if b, fr := f.route(frozen); fr || (b != "legacy" && b != "cyrus") {
		t.Fatalf("%s after the takeover: route %s frozen=%v", frozen, b, fr)
	}
	takeovers := map[string]string{}
	for _, r := range f.records() {
		if r.Type == state.TypeTakeover {
			takeovers[r.Account] = r.Note
		}
	}
	for _, a := range f.accts {
		k := engine.Key(a.Email)
		if !strings.Contains(takeovers[k], "from worker w1") {
			t.Errorf("no takeover of %s from w1 journaled: %q", k, takeovers[k])
		}
	}
	f.verify("w2")
	var ws struct{ Workers []workerView }
	if err := json.Unmarshal([]byte(f.cli("w2", exitOK, "state", "workers", "-json")), &ws); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, w := range ws.Workers {
		status[w.ID] = fmt.Sprintf("%s %d archives %d claims", w.Status, w.Archives, len(w.Claims))
	}
	if status["w1"] != "dead 0 archives 0 claims" || status["w2"] != "stopped 2 archives 0 claims" {
		t.Errorf("state workers after the takeover: %v", status)
	}
	t.Logf("state workers:\n%s", f.cli("w2", exitOK, "state", "workers"))
	// The cut-overs, from w2's own archives, as apply would do them.
	for i := 0; i < 3; i++ {
		if out := f.runAll("w2")["w2"]; strings.Contains(out, "taken over") {
			t.Errorf("w2 took an account over again:\n%s", out)
		}
		done := true
		for _, a := range f.accts {
			b, fr := f.route(engine.Key(a.Email))
			done = done && b == "cyrus" && !fr
		}
		if done {
			break
		}
	}
	for _, a := range f.accts {
		k := engine.Key(a.Email)
		if b, fr := f.route(k); b != "cyrus" || fr {
			t.Errorf("%s: route %s frozen=%v", k, b, fr)
		}
	}
	f.verify("w2")
	f.checkMessages()
}

// TestApplyWorkerLock: a worker is refused while a plain apply (any
// exclusive holder) has the lock, and a plain apply while a worker holds
// it shared; a plan without the state in PostgreSQL is refused at once.
func TestApplyWorkerLock(t *testing.T) {
	f := newWorkerFleet(t, 1, 1, "w1")
	ctx := context.Background()
	m, diags := loadMigration(&globals{PlanPath: filepath.Join(f.dirs["w1"], "migration.hcl")}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b, err := openState(ctx, m, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	l, _, err := b.Lock(ctx, "admin@example.test", "apply")
	if err != nil {
		t.Fatal(err)
	}
	out := f.cli("w1", exitError, "apply", "-worker", "w1", "-auto-approve")
	if !strings.Contains(out, "State locked") || !strings.Contains(out, "admin@example.test") {
		t.Errorf("worker while apply holds the lock:\n%s", out)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	l, _, err = b.LockShared(ctx, "ops@example.test", "w9")
	if err != nil {
		t.Fatal(err)
	}
	out = f.cli("w1", exitError, "apply", "-auto-approve")
	if !strings.Contains(out, "State locked") || !strings.Contains(out, "w9") {
		t.Errorf("apply while a worker holds the lock:\n%s", out)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	// The same plan with its state in files.
	p := filepath.Join(f.dirs["w1"], "migration.hcl")
	body, _ := os.ReadFile(p)
	local := bytes.Replace(body, []byte(`postgres     = `), []byte(`# postgres = `), 1)
	local = bytes.Replace(local, []byte(`password_ref = "env:MAILMIG_TEST_PGPASS"
}
routes`), []byte("}\nroutes"), 1)
	if err := os.WriteFile(p, local, 0o600); err != nil {
		t.Fatal(err)
	}
	out = f.cli("w1", exitError, "apply", "-worker", "w1", "-auto-approve")
	if !strings.Contains(out, "needs the journal in PostgreSQL") {
		t.Errorf("worker without state { postgres }:\n%s", out)
	}
}

// TestApplyWorkerClaimLost stops a worker (SIGSTOP) in the middle of a
// cut-over, right after the freeze, for longer than its lease: a second
// worker takes its accounts over and rolls the frozen one back. When the
// first worker runs again (SIGCONT), its next heartbeat finds its claims
// lost: it stops its batch — the cut-over it was in rolls back instead of
// flipping an account another worker now holds — and exits with an error.
// The second worker then cuts both accounts over; every message on Cyrus
// exactly once, the journal verifies.
func TestApplyWorkerClaimLost(t *testing.T) {
	f := newWorkerFleet(t, 2, 3, "w1", "w2")
	f.runAll("w1")
	cmd, out := f.start("w1", []string{"MAILMIG_TEST_PAUSE_FROZEN=20s"}, "-parallelism", "1")
	frozen := ""
	for i := 0; i < 600 && frozen == ""; i++ {
		for _, a := range f.accts {
			if _, fr := f.route(engine.Key(a.Email)); fr {
				frozen = engine.Key(a.Email)
			}
		}
		time.Sleep(50 * time.Millisecond) // polling another process's progress
	}
	if frozen == "" {
		t.Fatalf("w1 never froze an account:\n%s", out.String())
	}
	cmd.Process.Signal(syscall.SIGSTOP)
	took := f.runAll("w2")["w2"]
	if !strings.Contains(took, "taken over") {
		t.Errorf("w2 does not say it took accounts over:\n%s", took)
	}
	cmd.Process.Signal(syscall.SIGCONT)
	err := cmd.Wait()
	t.Logf("w1 after SIGCONT (%v):\n%s", err, out.String())
	if err == nil || !strings.Contains(out.String(), "another worker took over") {
		t.Errorf("w1 did not stop for its lost claims: %v", err)
	}
	if strings.Contains(out.String(), frozen+" cutover: flip") {
		t.Errorf("w1 flipped %s after losing it", frozen)
	}
	if b, fr := f.route(frozen); b != "legacy" || fr {
		t.Errorf("%s after both: route %s frozen=%v", frozen, b, fr)
	}
	for i := 0; i < 3; i++ {
		f.runAll("w2")
		done := true
		for _, a := range f.accts {
			b, fr := f.route(engine.Key(a.Email))
			done = done && b == "cyrus" && !fr
		}
		if done {
			break
		}
	}
	for _, a := range f.accts {
		if b, fr := f.route(engine.Key(a.Email)); b != "cyrus" || fr {
			t.Errorf("%s: route %s frozen=%v", a.Email, b, fr)
		}
	}
	f.verify("w2")
	f.checkMessages()
}
