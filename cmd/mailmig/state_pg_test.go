package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine/state"
)

// pgStatePlan writes two plans over one directory: local (state and
// routes in files) and remote (the same plus state and routes in a fresh
// PostgreSQL database, the password from the environment).
type pgStatePlan struct {
	t             *testing.T
	dir           string
	local, remote string
	dsn           string
}

func newPGStatePlan(t *testing.T) *pgStatePlan {
	s := needPeers(t)
	p := &pgStatePlan{t: t, dir: t.TempDir()}
	p.dsn = s.Postgres.NewDatabase(t)
	u, err := url.Parse(p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("MAILMIG_TEST_PGPASS", pw)
	backends := `backend "legacy" {
  imap {
    address = "127.0.0.1:1"
    tls     = "none"
  }
}
backend "legacy2" {
  imap {
    address = "127.0.0.1:2"
    tls     = "none"
  }
}
`
	p.local = filepath.Join(p.dir, "local.hcl")
	p.remote = filepath.Join(p.dir, "remote.hcl")
	remote := fmt.Sprintf(`state {
  postgres     = %q
  password_ref = "env:MAILMIG_TEST_PGPASS"
}
routes {
  postgres     = %q
  password_ref = "env:MAILMIG_TEST_PGPASS"
}
`, u.String(), u.String()) + backends
	for f, body := range map[string]string{p.local: backends, p.remote: remote} {
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// run runs mailmig with the plan and returns the exit code and output.
func (p *pgStatePlan) run(plan string, args ...string) (int, string) {
	p.t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), append([]string{"-f", plan}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &out})
	return code, out.String()
}

func (p *pgStatePlan) ok(plan string, args ...string) string {
	p.t.Helper()
	code, out := p.run(plan, args...)
	if code != exitOK {
		p.t.Fatalf("mailmig %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (p *pgStatePlan) verify(plan string) state.VerifyResult {
	p.t.Helper()
	var res state.VerifyResult
	if err := json.Unmarshal([]byte(p.ok(plan, "journal", "verify", "-json")), &res); err != nil {
		p.t.Fatal(err)
	}
	if !res.OK {
		p.t.Fatalf("journal verify: %+v", res)
	}
	return res
}

// oneLine joins wrapped output.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// routes returns the route table without generations (a copy starts
// them again) and times.
func (p *pgStatePlan) routes(plan string) string {
	p.t.Helper()
	var v routesView
	if err := json.Unmarshal([]byte(p.ok(plan, "routes", "list", "-json")), &v); err != nil {
		p.t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range v.Routes {
		fmt.Fprintf(&b, "%s %s %s\n", r.Account, r.Backend, r.State)
	}
	fmt.Fprintf(&b, "aliases %v default %s domains %v\n", v.Aliases, v.Default, v.Domains)
	return b.String()
}

// TestStateMigrate copies a local state (journal, snapshot, routes with
// a frozen route, an alias and a default) into PostgreSQL, checks the
// chain and the routes there, writes there (a route edit journaled in the
// database), refuses a second copy into a database that holds a journal,
// and copies everything back into an empty state directory.
func TestStateMigrate(t *testing.T) {
	p := newPGStatePlan(t)
	p.ok(p.local, "routes", "set", "alice@example.test", "legacy")
	p.ok(p.local, "routes", "set", "bob@example.test", "legacy2")
	p.ok(p.local, "routes", "freeze", "bob@example.test")
	p.ok(p.local, "routes", "alias", "add", "al@example.test", "alice@example.test")
	p.ok(p.local, "routes", "default", "legacy")
	before := p.verify(p.local)
	if before.Records != 6 {
		t.Fatalf("local journal has %d records, want 6", before.Records)
	}
	listBefore := p.routes(p.local)

	out := p.ok(p.remote, "state", "migrate", "-to", "postgres")
	t.Log(out)
	if !strings.Contains(out, "6 records") || !strings.Contains(out, "2 routes") {
		t.Fatalf("migrate output:\n%s", out)
	}
	after := p.verify(p.remote)
	if after.Records != before.Records || after.Head != before.Head || after.Lineage != before.Lineage {
		t.Fatalf("the chain changed: %+v, was %+v", after, before)
	}
	if got := p.routes(p.remote); got != listBefore {
		t.Fatalf("routes in PostgreSQL:\n%s\nwant:\n%s", got, listBefore)
	}
	if got, want := p.ok(p.remote, "journal"), p.ok(p.local, "journal"); got != want {
		t.Fatalf("journal in PostgreSQL:\n%s\nwant:\n%s", got, want)
	}
	// Refused: the database holds a journal now.
	if code, out := p.run(p.remote, "state", "migrate", "-to", "postgres"); code == exitOK || !strings.Contains(oneLine(out), "already holds a journal") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
	// Writes go to the database.
	p.ok(p.remote, "routes", "unfreeze", "bob@example.test")
	if res := p.verify(p.remote); res.Records != 7 {
		t.Fatalf("after an edit in PostgreSQL: %+v", res)
	}
	if res := p.verify(p.local); res.Records != 6 {
		t.Fatalf("the local journal changed: %+v", res)
	}

	// Back: refused while the state directory holds a journal.
	if code, out := p.run(p.remote, "state", "migrate", "-to", "local"); code == exitOK || !strings.Contains(oneLine(out), "already holds a journal") {
		t.Fatalf("migrate into a used directory: exit %d\n%s", code, out)
	}
	if err := os.Rename(filepath.Join(p.dir, "state"), filepath.Join(p.dir, "state.old")); err != nil {
		t.Fatal(err)
	}
	out = p.ok(p.remote, "state", "migrate", "-to", "local")
	t.Log(out)
	back := p.verify(p.local)
	if back.Records != 7 || back.Lineage != before.Lineage {
		t.Fatalf("copied back: %+v", back)
	}
	if got, want := p.routes(p.local), p.routes(p.remote); got != want {
		t.Fatalf("routes copied back:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "state", state.SnapshotFile)); err != nil {
		t.Fatalf("no snapshot in the copy: %v", err)
	}
	// The copy is a working journal: the next edit appends to its chain.
	p.ok(p.local, "routes", "set", "carol@example.test", "legacy")
	if res := p.verify(p.local); res.Records != 8 {
		t.Fatalf("after an edit of the copy: %+v", res)
	}
}

// TestStatePostgresBadInput: an unreachable server, a wrong password, a
// database without the schema (for a command that only reads) and a
// schema from a newer release each stop the command with an error that
// says what to do, and never show the password.
func TestStatePostgresBadInput(t *testing.T) {
	p := newPGStatePlan(t)
	// Create the schema, then make it "newer" on a second database.
	pw := os.Getenv("MAILMIG_TEST_PGPASS")
	u, _ := url.Parse(p.dsn)
	u.User = url.User(u.User.Username())
	good := u.String()
	unreachable := strings.Replace(good, u.Host, "127.0.0.1:1", 1)
	newer := needPeers(t).Postgres.NewDatabase(t)
	nu, _ := url.Parse(newer)
	nu.User = url.User(nu.User.Username())
	for _, tc := range []struct {
		name, dsn, pass string
		prep            func()
		args            []string
		want            string
	}{
		{name: "unreachable", dsn: unreachable, pass: pw, args: []string{"journal", "verify"}, want: "annot reach PostgreSQL at mailmig@127.0.0.1:1"},
		{name: "wrong password", dsn: good, pass: "not-the-password", args: []string{"journal", "verify"}, want: "refused the login"},
		{name: "no schema", dsn: good, pass: pw, args: []string{"plan"}, want: "then run \"mailmig apply\" (or \"mailmig state migrate -to postgres\" to bring a local state) to create it"},
		{name: "newer schema", dsn: nu.String(), pass: pw, prep: func() {
			ctx := context.Background()
			c, err := pgx.Connect(ctx, newer)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, `CREATE TABLE mailmig_schema (version integer NOT NULL); INSERT INTO mailmig_schema VALUES (9999)`); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"apply", "-auto-approve"}, want: "upgrade mailmig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prep != nil {
				tc.prep()
			}
			t.Setenv("MAILMIG_TEST_PGPASS", tc.pass)
			plan := filepath.Join(p.dir, "bad.hcl")
			body := fmt.Sprintf("state {\n  postgres     = %q\n  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n}\n", tc.dsn) +
				"backend \"legacy\" {\n  imap {\n    address = \"127.0.0.1:1\"\n    tls     = \"none\"\n  }\n}\n"
			if err := os.WriteFile(plan, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := p.run(plan, tc.args...)
			t.Log(out)
			if code == exitOK || !strings.Contains(oneLine(out), tc.want) {
				t.Fatalf("exit %d, want an error with %q:\n%s", code, tc.want, out)
			}
			if strings.Contains(out, pw) {
				t.Fatalf("the password is in the output:\n%s", out)
			}
		})
	}
}
