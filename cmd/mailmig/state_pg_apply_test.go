package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine/state"
)

// usePostgresState points an e2e plan's state at a fresh PostgreSQL
// database (the archives and logs stay in state/) and returns its DSN.
func usePostgresState(t *testing.T, x *e2e) string {
	t.Helper()
	dsn := x.s.Postgres.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("MAILMIG_TEST_PGPASS", pw)
	b, err := os.ReadFile(x.planFile)
	if err != nil {
		t.Fatal(err)
	}
	old := "state {\n  path = \"state/\"\n}\n"
	if !bytes.Contains(b, []byte(old)) {
		t.Fatal("the e2e plan has no state block to replace")
	}
	b = bytes.Replace(b, []byte(old), []byte("state {\n  path         = \"state/\"\n  postgres     = \""+u.String()+"\"\n  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n}\n"), 1)
	if err := os.WriteFile(x.planFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// pgVerify runs "journal verify -json" (which reads PostgreSQL).
func pgVerify(t *testing.T, x *e2e) state.VerifyResult {
	t.Helper()
	var res state.VerifyResult
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-f", x.planFile, "journal", "verify", "-json"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || code != exitOK || !res.OK {
		t.Fatalf("journal verify: exit %d %+v %v\n%s", code, res, err, errb.String())
	}
	return res
}

// TestApplyPostgresStateOutage runs a migration whose journal, snapshot
// and apply lock live in PostgreSQL, and takes the database away in the
// middle of a cut-over for longer than the plan's outage_wait (the test's
// own database stops accepting connections and its sessions are ended,
// as in TestFleetDatabaseOutage: the shared server keeps running for the
// other tests). The apply waits outage_wait, loses its lock with its
// session and stops with an error instead of writing on; once the
// database is back the chain verifies, the next applies resume from the
// journal and finish, and every message is on the target exactly once.
// (TestApplyPostgresOutageWait: an outage shorter than the wait.)
func TestApplyPostgresStateOutage(t *testing.T) {
	x := newE2E(t, 1)
	dsn := usePostgresState(t, x)
	setOutageWait(t, x, "2s")
	x.cli(exitOK, "apply", "-auto-approve")
	staged := pgVerify(t, x)
	if staged.Records < 3 {
		t.Fatalf("the journal in PostgreSQL has %d records after staging", staged.Records)
	}
	// plan reads the same observation from the database: an empty local
	// state directory (a fresh CI runner) does not matter.
	if _, err := os.Stat(x.dir + "/state/" + state.JournalFile); err == nil {
		if b, _ := os.ReadFile(x.dir + "/state/" + state.JournalFile); bytes.Contains(b, []byte(`"type":"start"`)) {
			t.Fatal("apply wrote its records into the local journal")
		}
	}
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
	if !waitFrozen(t, x, a.Email, 60*time.Second) {
		t.Fatalf("the cut-over never froze the account:\n%s", (<-done).out)
	}
	admin(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS false`)
	admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + db + `'`)
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("apply did not end while the database was away")
	}
	admin(`ALTER DATABASE ` + db + ` ALLOW_CONNECTIONS true`)
	t.Logf("apply during the outage: exit %d\n%s", r.code, r.out)
	if r.code == exitOK {
		t.Log("the cut-over finished before the database went away")
	} else if !strings.Contains(oneLine(r.out), "PostgreSQL") {
		t.Errorf("the failure does not name the database:\n%s", r.out)
	}
	mid := pgVerify(t, x)
	if mid.Records <= staged.Records {
		t.Fatalf("journal after the outage: %+v", mid)
	}
	// The next applies resume (the interrupted cut-over is rolled back or
	// finished) until nothing is left.
	for i := 0; i < 4; i++ {
		out := x.cli(exitOK, "apply", "-auto-approve")
		t.Logf("rerun %d:\n%s", i, out)
		if strings.Contains(out, "No changes") {
			break
		}
	}
	stop()
	x.deliverAll("after")
	x.check("seed", "outage", "after")
	final := pgVerify(t, x)
	if final.Records <= mid.Records || final.Lineage != staged.Lineage {
		t.Fatalf("final journal %+v, after the outage %+v", final, mid)
	}
	// The lock went with the dead session: nobody holds it now.
	if out := x.cli(exitOK, "state", "lock"); !strings.Contains(out, "not locked") {
		t.Fatalf("state lock after the runs:\n%s", out)
	}
}

// setOutageWait sets the state block's outage_wait of an e2e plan whose
// state usePostgresState moved to PostgreSQL.
func setOutageWait(t *testing.T, x *e2e, wait string) {
	t.Helper()
	b, err := os.ReadFile(x.planFile)
	if err != nil {
		t.Fatal(err)
	}
	old := "  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n}\n"
	if !bytes.Contains(b, []byte(old)) {
		t.Fatal("the e2e plan has no PostgreSQL state block")
	}
	b = bytes.Replace(b, []byte(old), []byte("  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n  outage_wait  = \""+wait+"\"\n}\n"), 1)
	if err := os.WriteFile(x.planFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
