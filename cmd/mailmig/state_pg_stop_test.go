package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
)

// TestApplyPostgresStopped is TestApplyPostgresOutageWait with a real
// outage: journal, lock and route table live in a PostgreSQL cluster of
// the test's own (peers.Postgres.Private), which is stopped (pg_ctl stop
// -m fast) in the middle of a cut-over from Dovecot to Cyrus and started
// again 10 s later; the shared cluster of the other tests is not touched.
// Meanwhile the in-process proxy, which follows the route table, keeps
// serving an account that is not being migrated (IMAP login and SELECT
// through it), and mail trickles in through its LMTP. The apply waits and
// finishes: exit 0, every message on Cyrus exactly once, the journal's
// chain verifies, and nobody holds the lock afterwards.
func TestApplyPostgresStopped(t *testing.T) {
	s := needPeers(t)
	pg := s.Postgres.Private(t)
	dsn := pg.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("MAILMIG_TEST_PGPASS", pw)
	x := newE2EWith(t, 1, e2eOptions{EditPlan: func(p string) string {
		old := "state {\n  path = \"state/\"\n}\n"
		if !strings.Contains(p, old) {
			t.Fatal("the e2e plan has no state block to replace")
		}
		pgBlock := "  postgres     = \"" + u.String() + "\"\n  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n"
		return strings.Replace(p, old, "state {\n  path         = \"state/\"\n"+pgBlock+"  outage_wait  = \"60s\"\n}\nroutes {\n"+pgBlock+"}\n", 1)
	}})
	// Not in the migration: the proxy routes it to Dovecot by the default.
	other := s.NewAccount(t)
	if err := selectThrough(x.imap, other); err != nil {
		t.Fatalf("the proxy before the stop: %v", err)
	}
	x.cli(exitOK, "apply", "-auto-approve")
	staged := pgVerify(t, x)
	x.cli(exitOK, "apply", "-auto-approve") // catch-up
	a := x.accts[0]

	// The account stays frozen through the outage and the final sync
	// after it: deliveries retry their 451s for that long.
	x.deliverWithin = 2 * time.Minute
	stop := x.trickle("outage")
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		var out bytes.Buffer
		code := run(context.Background(), []string{"-f", x.planFile, "apply", "-auto-approve", "-refresh=false"}, Streams{In: strings.NewReader(""), Out: &out, Err: &out})
		done <- result{code, out.String()}
	}()
	if !waitFrozenPG(t, dsn, a.Email, 60*time.Second) {
		t.Fatalf("the cut-over never froze the account:\n%s", (<-done).out)
	}
	pg.Stop(t)
	down := time.Now()
	served := 0
	var r result
	for time.Since(down) < 10*time.Second { // the outage the issue asks for
		if err := selectThrough(x.imap, other); err != nil {
			t.Fatalf("the proxy %s after the database stopped: %v", time.Since(down).Round(time.Second), err)
		}
		served++
		select {
		case r = <-done:
			t.Fatalf("apply ended while the database was stopped (exit %d):\n%s", r.code, r.out)
		case <-time.After(time.Second):
		}
	}
	pg.Start(t)
	t.Logf("the proxy served %s %d times while PostgreSQL was stopped", other.Email, served)
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("apply did not finish after the database started again")
	}
	t.Logf("apply through a %s stop: exit %d\n%s", time.Since(down).Round(time.Second), r.code, r.out)
	if r.code != exitOK {
		t.Fatalf("apply through the stop: exit %d\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "took the apply lock again") {
		t.Errorf("the apply did not say it took its lock again:\n%s", r.out)
	}
	stop()
	x.deliverAll("after")
	x.check("seed", "outage", "after")
	if err := selectThrough(x.imap, other); err != nil {
		t.Fatalf("the proxy after the restart: %v", err)
	}
	final := pgVerify(t, x)
	if final.Records <= staged.Records || final.Lineage != staged.Lineage {
		t.Fatalf("final journal %+v, after staging %+v", final, staged)
	}
	if out := x.cli(exitOK, "state", "lock"); !strings.Contains(out, "not locked") {
		t.Fatalf("state lock after the run:\n%s", out)
	}
}

// selectThrough logs a in through the IMAP listener addr and selects its
// INBOX.
func selectThrough(addr string, a peers.Account) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		return fmt.Errorf("login %s: %w", a.Email, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("select INBOX of %s: %w", a.Email, err)
	}
	return c.Logout().Wait()
}
