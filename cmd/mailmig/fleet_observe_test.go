package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPlanRecordedObservations: an apply on machine 1 (state directory A,
// state in PostgreSQL) stages two accounts and records what their
// archives say; mail arrives at the source of one of them; plan on
// machine 2 (an empty state directory B, the same database) shows the
// same plan as machine 1 — the same catch-ups, "3 new" for the account
// that got mail, no "not imported" — and says whose observation it used.
// The apply also took and gave back its connection slots in the shared
// budget.
func TestPlanRecordedObservations(t *testing.T) {
	x := newE2E(t, 2)
	dsn := usePostgresState(t, x)
	x.cli(exitOK, "apply", "-auto-approve") // machine 1 stages both
	for range 3 {
		if err := lmtpDeliver(x.s.Dovecot.LMTP, x.accts[0].Email, testMessage(x.accts[0].Email, x.newID(x.accts[0], "late")), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	one := x.cli(exitOK, "plan")

	// Machine 2: the same plan files, nothing in its state directory.
	dirB := t.TempDir()
	for _, f := range []string{"migration.hcl", "accounts.csv"} {
		b, err := os.ReadFile(filepath.Join(x.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirB, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	planB := filepath.Join(dirB, "migration.hcl")
	plan2 := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"-f", planB, "plan"}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != exitOK {
			t.Fatalf("plan on machine 2: exit %d\n%s%s", code, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	two := plan2()
	if _, err := os.Stat(filepath.Join(dirB, "state", "archives")); err == nil {
		t.Fatal("machine 2 has archives of its own")
	}
	host, _ := os.Hostname()
	note := regexp.MustCompile(`; archive observed by worker \S+ at [0-9-]+ [0-9:]+ UTC`)
	if n := len(note.FindAllString(two, -1)); n != 2 || !strings.Contains(two, "observed by worker "+host+" at ") {
		t.Errorf("machine 2's plan names the recorded observation %d times (want 2, by %s):\n%s", n, host, two)
	}
	if strings.Contains(two, "no completed import") || strings.Contains(one, "no completed import") {
		t.Errorf("an account is planned as not imported:\n%s\n%s", one, two)
	}
	t.Logf("machine 1:\n%s\nmachine 2:\n%s", one, two)
	if !strings.Contains(one, "3 new") {
		t.Errorf("machine 1 did not see the new mail:\n%s", one)
	}
	if got := note.ReplaceAllString(two, ""); got != one {
		t.Errorf("machine 2's plan differs from machine 1's:\n--- machine 1\n%s\n--- machine 2\n%s", one, two)
	}
	// Without refresh as well: the archives' figures are the recorded ones.
	one = x.cli(exitOK, "plan", "-refresh=false")
	if two := note.ReplaceAllString(plan2("-refresh=false"), ""); two != one {
		t.Errorf("machine 2's plan -refresh=false differs:\n--- machine 1\n%s\n--- machine 2\n%s", one, two)
	}

	// state show on machine 2 shows the recorded archive too.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-f", planB, "state", "show", x.accts[0].Email}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != exitOK ||
		!regexp.MustCompile(`archive: +\d+ messages, \d+ bytes in \d+ mailboxes \(not on this machine: observed by worker `).MatchString(out.String()) {
		t.Errorf("state show on machine 2: exit %d\n%s%s", code, out.String(), errb.String())
	}

	// The shared budget: slots of both backends were created, none held.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var slots, held int
	if err := c.QueryRow(ctx, `SELECT count(*), count(holder) FROM mailmig_budget_slots`).Scan(&slots, &held); err != nil {
		t.Fatal(err)
	}
	if slots == 0 || held != 0 {
		t.Errorf("budget slots after apply: %d rows, %d held", slots, held)
	}
}
