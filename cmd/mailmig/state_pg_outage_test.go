package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// TestApplyPostgresOutageWait is TestApplyPostgresStateOutage's twin with
// the apply waiting through the outage (state { outage_wait }): journal,
// lock and route table in one PostgreSQL database, followed by the
// in-process proxy; the database goes away for 10 s in the middle of a
// cut-over (ALLOW_CONNECTIONS false and its sessions ended, so the shared
// server keeps running for other tests). The apply waits, takes its lock
// again, and finishes the cut-over: exit 0, every message on Cyrus
// exactly once, the chain verifies, and nobody holds the lock afterwards.
func TestApplyPostgresOutageWait(t *testing.T) {
	s := needPeers(t)
	dsn := s.Postgres.NewDatabase(t)
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
		pg := "  postgres     = \"" + u.String() + "\"\n  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n"
		return strings.Replace(p, old, "state {\n  path         = \"state/\"\n"+pg+"  outage_wait  = \"60s\"\n}\nroutes {\n"+pg+"}\n", 1)
	}})
	x.cli(exitOK, "apply", "-auto-approve")
	staged := pgVerify(t, x)
	x.cli(exitOK, "apply", "-auto-approve") // catch-up
	a := x.accts[0]

	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := c.Config().Database
	c.Close(ctx)
	admin := func(q string) {
		t.Helper()
		c, err := pgx.Connect(ctx, x.s.Postgres.DSN) // the maintenance database
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { admin(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS true`) })

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
	admin(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS false`)
	admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + db + `'`)
	down := time.Now()
	var r result
	select {
	case r = <-done:
		t.Fatalf("apply ended while the database was away (exit %d):\n%s", r.code, r.out)
	case <-time.After(10 * time.Second): // the outage the issue asks for
	}
	admin(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS true`)
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("apply did not finish after the database came back")
	}
	t.Logf("apply through a %s outage: exit %d\n%s", time.Since(down).Round(time.Second), r.code, r.out)
	if r.code != exitOK {
		t.Fatalf("apply through the outage: exit %d\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "took the apply lock again") {
		t.Errorf("the apply did not say it took its lock again:\n%s", r.out)
	}
	stop()
	x.deliverAll("after")
	x.check("seed", "outage", "after")
	final := pgVerify(t, x)
	if final.Records <= staged.Records || final.Lineage != staged.Lineage {
		t.Fatalf("final journal %+v, after staging %+v", final, staged)
	}
	if out := x.cli(exitOK, "state", "lock"); !strings.Contains(out, "not locked") {
		t.Fatalf("state lock after the run:\n%s", out)
	}
}

// waitFrozenPG waits until the PostgreSQL route table shows account
// frozen.
func waitFrozenPG(t *testing.T, dsn, account string, within time.Duration) bool {
	t.Helper()
	st, err := pgroutes.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r, err := st.Get(context.Background(), account); err == nil && r.State == routes.Frozen {
			return true
		}
		<-time.After(10 * time.Millisecond) // polling another process's progress
	}
	return false
}
