package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// fleet is a plan whose route table is a fresh PostgreSQL database, with
// helpers to run the CLI and start `mailmig proxy` processes on it.
type fleet struct {
	t        *testing.T
	s        *peers.Set
	a        peers.Account
	dir      string
	planFile string
	dsn      string // with the password, for the test's own checks
}

// newFleet makes the plan with the given route lease.
func newFleet(t *testing.T, lease string) *fleet {
	s := needPeers(t)
	f := &fleet{t: t, s: s, a: s.NewAccount(t), dir: t.TempDir()}
	f.dsn = s.Postgres.NewDatabase(t)
	u, err := url.Parse(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	// The password comes from the environment, as a plan should take it;
	// the proxy processes inherit it.
	t.Setenv("MAILMIG_TEST_PGPASS", pw)
	f.planFile = filepath.Join(f.dir, "migration.hcl")
	plan := fmt.Sprintf(`routes {
  postgres        = %q
  password_ref    = "env:MAILMIG_TEST_PGPASS"
  lease           = %q
  barrier_timeout = "15s"
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
}
backend "legacy2" {
  imap {
    address = %q
    tls     = "none"
  }
}
proxy {
  listen {
    imap = "127.0.0.1:0"
  }
  hold_logins = "500ms"
}
`, u.String(), lease, s.Dovecot.IMAP, s.Dovecot2.IMAP)
	if err := os.WriteFile(f.planFile, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	// A marker message only on the second Dovecot tells the backends apart.
	d2, err := imapclient.DialInsecure(s.Dovecot2.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Login(f.a.Email, f.a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	msg := "Subject: marker\r\n\r\nx\r\n"
	ac := d2.Append("INBOX", int64(len(msg)), nil)
	ac.Write([]byte(msg))
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fleet) cli(args ...string) string {
	f.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"-f", f.planFile}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != exitOK {
		f.t.Fatalf("mailmig %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// proxies returns `mailmig routes proxies -json`.
func (f *fleet) proxies() proxiesView {
	f.t.Helper()
	var v proxiesView
	if err := json.Unmarshal([]byte(f.cli("routes", "proxies", "-json")), &v); err != nil {
		f.t.Fatal(err)
	}
	return v
}

// waitLive waits until exactly the named proxies are live and caught up.
func (f *fleet) waitLive(ids ...string) {
	f.t.Helper()
	for range 200 {
		v := f.proxies()
		live := map[string]bool{}
		for _, p := range v.Proxies {
			if p.Live && p.Lag == 0 {
				live[p.ID] = true
			}
		}
		ok := len(live) == len(ids)
		for _, id := range ids {
			ok = ok && live[id]
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("proxies %v not live and caught up: %+v", ids, f.proxies())
}

// login logs in through a proxy and returns the client and the number of
// messages in INBOX (1 on legacy2, 0 on legacy).
func (f *fleet) login(addr string) (*imapclient.Client, uint32, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, 0, err
	}
	if err := c.Login(f.a.Email, f.a.Password).Wait(); err != nil {
		c.Close()
		return nil, 0, err
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, sel.NumMessages, nil
}

func (f *fleet) barrier(timeout time.Duration) *pgroutes.Barrier {
	st, err := pgroutes.Open(context.Background(), f.dsn, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { st.Close() })
	return &pgroutes.Barrier{Store: st, Timeout: timeout}
}

// TestFleetFlip: three `mailmig proxy` processes follow one route table in
// PostgreSQL. An IMAP client holds a session through each; a flip is
// acknowledged by all three (the barrier returns), every session ends and
// every proxy routes the next login to the new backend. Then the account
// is marked pending, one proxy is SIGKILLed and the account frozen: the
// barrier waits out the dead proxy's lease and goes ahead without it (it
// had seen the mark), `routes proxies` shows it dead, and the
// proxy, restarted, refuses the frozen account until it is unfrozen.
func TestFleetFlip(t *testing.T) {
	f := newFleet(t, "2s")
	f.cli("routes", "set", f.a.Email, "legacy")
	var px []*proxyProcess
	for _, id := range []string{"p1", "p2", "p3"} {
		px = append(px, startProxyProcess(t, f.dir, f.planFile, 2, "-id", id, "-admin", "127.0.0.1:0"))
	}
	f.waitLive("p1", "p2", "p3")
	// The admin listener shows the fleet too, with the bound addresses.
	resp, err := http.Get("http://" + px[0].addr["admin"] + "/fleet")
	if err != nil {
		t.Fatal(err)
	}
	var fv pgroutes.FleetView
	err = json.NewDecoder(resp.Body).Decode(&fv)
	resp.Body.Close()
	if err != nil || fv.Self != "p1" || len(fv.Proxies) != 3 || !strings.Contains(fv.Proxies[1].Address, px[1].addr["imap"]) {
		t.Fatalf("GET /fleet: %+v %v", fv, err)
	}
	var sessions []*imapclient.Client
	for _, p := range px {
		c, n, err := f.login(p.addr["imap"])
		if err != nil || n != 0 {
			t.Fatalf("login through %s before the flip: %d messages, %v", p.addr["imap"], n, err)
		}
		defer c.Close()
		sessions = append(sessions, c)
	}
	b := f.barrier(15 * time.Second)
	f.cli("routes", "set", f.a.Email, "legacy2")
	if err := b.AwaitRoute(context.Background(), f.a.Email); err != nil {
		t.Fatal(err)
	}
	for i, c := range sessions {
		select {
		case <-c.Closed():
		case <-time.After(10 * time.Second):
			t.Fatalf("session through p%d not ended after the flip", i+1)
		}
	}
	for i, p := range px {
		c, n, err := f.login(p.addr["imap"])
		if err != nil || n != 1 {
			t.Fatalf("login through p%d after the flip: %d messages (want the marker on legacy2), %v", i+1, n, err)
		}
		c.Close()
	}

	// The account is pending (an apply marks it at its first import) and
	// every proxy has seen that: a proxy that dies now may be left out of
	// the barrier after its lease (it would refuse the account if it were
	// only cut off).
	if _, err := b.Store.MarkPending(context.Background(), f.a.Email, "legacy"); err != nil {
		t.Fatal(err)
	}
	f.waitLive("p1", "p2", "p3")
	// SIGKILL p3 in the middle of a freeze.
	if err := px[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	px[2].wait(10 * time.Second)
	f.cli("routes", "freeze", f.a.Email)
	if err := b.AwaitRoute(context.Background(), f.a.Email); err != nil {
		t.Fatalf("barrier with a dead proxy: %v", err)
	}
	var dead bool
	for _, p := range f.proxies().Proxies {
		if p.ID == "p3" {
			dead = !p.Live && p.Lag > 0
		}
	}
	if !dead {
		t.Fatalf("p3 not shown dead and behind: %+v", f.proxies())
	}
	// Restarted, it has caught up at once: the account is frozen there.
	p3 := startProxyProcess(t, f.dir, f.planFile, 1, "-id", "p3")
	if _, _, err := f.login(p3.addr["imap"]); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("login through the restarted p3 while frozen: %v, want NO [UNAVAILABLE]", err)
	}
	f.cli("routes", "unfreeze", f.a.Email)
	if err := b.AwaitRoute(context.Background(), f.a.Email); err != nil {
		t.Fatal(err)
	}
	c, n, err := f.login(p3.addr["imap"])
	if err != nil || n != 1 {
		t.Fatalf("login through p3 after unfreeze: %d, %v", n, err)
	}
	c.Close()
}

// TestFleetDatabaseOutage: the route database goes away for 10 s (its
// connections are cut and new ones refused). The proxies keep serving an
// active account from their table; after their lease they refuse the
// account that was in transition when contact was lost; once the database
// is back they catch up, acknowledge, and follow the next flip.
func TestFleetDatabaseOutage(t *testing.T) {
	// A lease long enough that the route change below is surely within
	// one lease of the outage, short enough to run out within it.
	f := newFleet(t, "4s")
	other := f.s.NewAccount(t)
	f.cli("routes", "set", other.Email, "legacy")
	f.cli("routes", "set", f.a.Email, "legacy")
	// other's route is old news: not in transition whatever the machine's
	// speed between here and the outage.
	st, err := pgroutes.Open(context.Background(), f.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Pool().Exec(context.Background(), `UPDATE mailmig_routes SET updated = now() - interval '1 hour' WHERE account = $1`, strings.ToLower(other.Email))
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	p1 := startProxyProcess(t, f.dir, f.planFile, 1, "-id", "p1", "-drain", "1s")
	f.waitLive("p1")
	// f.a is in transition: its route changed within the lease before the
	// outage.
	f.cli("routes", "set", f.a.Email, "legacy2")
	b := f.barrier(15 * time.Second)
	if err := b.AwaitRoute(context.Background(), f.a.Email); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := admin.Config().Database
	admin.Close(ctx)
	adminDSN := f.s.Postgres.DSN // the maintenance database
	exec := func(q string) {
		t.Helper()
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS false`)
	exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + db + `'`)
	down := time.Now()
	t.Cleanup(func() { exec(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS true`) })

	// The untouched account keeps working all along.
	loginOther := func() error {
		c, err := imapclient.DialInsecure(p1.addr["imap"], nil)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Login(other.Email, other.Password).Wait()
	}
	if err := loginOther(); err != nil {
		t.Fatalf("login of an active account during the outage: %v\n%s", err, p1.stderr)
	}
	// After the lease the account in transition is refused.
	refused := false
	for range 100 {
		c, _, err := f.login(p1.addr["imap"])
		if err == nil {
			c.Close()
		} else if strings.Contains(err.Error(), "UNAVAILABLE") {
			refused = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !refused {
		t.Fatalf("the account in transition was not refused after the lease\n%s", p1.stderr)
	}
	if err := loginOther(); err != nil {
		t.Fatalf("login of an active account after the lease: %v\n%s", err, p1.stderr)
	}
	if rest := 10*time.Second - time.Since(down); rest > 0 {
		time.Sleep(rest) // the outage the issue asks for
	}
	exec(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS true`)
	// Back: the proxy catches up and follows the next flip.
	f.waitLive("p1")
	if c, n, err := f.login(p1.addr["imap"]); err != nil || n != 1 {
		t.Fatalf("login after the outage: %d, %v", n, err)
	} else {
		c.Close()
	}
	f.cli("routes", "set", f.a.Email, "legacy")
	if err := b.AwaitRoute(context.Background(), f.a.Email); err != nil {
		t.Fatal(err)
	}
	if c, n, err := f.login(p1.addr["imap"]); err != nil || n != 0 {
		t.Fatalf("login after the flip back: %d, %v", n, err)
	} else {
		c.Close()
	}
	if !strings.Contains(p1.stderr.String(), "out of reach") {
		t.Errorf("the proxy did not log the outage:\n%s", p1.stderr)
	}
}

// TestFleetApplyBarrier: `mailmig apply` with the route table in
// PostgreSQL waits for the fleet after freezing. A proxy that stays live
// but never acknowledges makes the barrier time out and the cut-over roll
// back (the account back on its source, unfrozen); with a proxy that
// follows, the same cut-over completes.
func TestFleetApplyBarrier(t *testing.T) {
	s := needPeers(t)
	dsn := s.Postgres.NewDatabase(t)
	u, _ := url.Parse(dsn)
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	dir := t.TempDir()
	plan := strings.Replace(crashPlan, `canary            = 1`, `canary            = 0`, 1) + fmt.Sprintf(`
routes {
  postgres        = %q
  password_ref    = "env:MAILMIG_TEST_PGPASS"
  lease           = "2s"
  barrier_timeout = "2s"
}
`, u.String())
	if err := os.WriteFile(filepath.Join(dir, "migration.hcl"), []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	world := filepath.Join(dir, "world.json")
	writeWorld(t, world, &fakeData{Source: map[string]int64{"a@example.test": 3, "b@example.test": 3, "c@example.test": 3, "d@example.test": 3}})
	apply := func() (string, error) {
		cmd := exec.Command(os.Args[0], "apply", "-auto-approve", "-target", "a@example.test")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=1", "MAILMIG_TEST_WORLD="+world, "MAILMIG_TEST_PGPASS="+pw)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := apply(); err != nil {
		t.Fatalf("staging: %v\n%s", err, out)
	}
	ctx := context.Background()
	st, err := pgroutes.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A proxy that heartbeats (for an hour) and never applies anything.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO mailmig_proxies VALUES ('stuck', 'imap 192.0.2.1:143', now(), now() + interval '1 hour', 2000, 0, now())`); err != nil {
		t.Fatal(err)
	}
	out, err := apply()
	if err == nil || !strings.Contains(out, "did not acknowledge the freeze") || !strings.Contains(out, "stuck") {
		t.Fatalf("apply with a stuck proxy: %v\n%s", err, out)
	}
	if r, err := st.Get(ctx, "a@example.test"); err != nil || r.Backend != "legacy" || r.State != "active" {
		t.Fatalf("route after the barrier timed out: %+v %v", r, err)
	}
	if _, err := st.Pool().Exec(ctx, `DELETE FROM mailmig_proxies WHERE id = 'stuck'`); err != nil {
		t.Fatal(err)
	}
	f, err := pgroutes.Follow(ctx, st, &pgroutes.FollowOptions{ID: "live", Lease: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.Run(fctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The rolled-back cut-over halted the wave: release the account (as
	// an operator would) and cut over again.
	var rout, rerr bytes.Buffer
	if code := run(ctx, []string{"-f", filepath.Join(dir, "migration.hcl"), "state", "release", "a@example.test"},
		Streams{In: strings.NewReader(""), Out: &rout, Err: &rerr}); code != exitOK {
		t.Fatalf("state release: %d\n%s%s", code, rout.String(), rerr.String())
	}
	if out, err = apply(); err != nil {
		t.Fatalf("apply with a live proxy: %v\n%s", err, out)
	}
	if r, err := st.Get(ctx, "a@example.test"); err != nil || r.Backend != "target" || r.State != "active" {
		t.Fatalf("route after the cut-over with a live proxy: %+v %v\n%s", r, err, out)
	}
	if f.Applied() == 0 {
		t.Error("the live proxy acknowledged nothing")
	}
}
