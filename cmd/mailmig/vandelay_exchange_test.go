package main

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
)

// TestVandelayExchange runs "mailmig vandelay import exchange-ews" and
// "… exchange-graph" against the recorded exchanges of the adapters'
// testdata: the EWS import by impersonation fills the archive (waiting
// out the recorded 1.5 s ErrorServerBusy back-off, recorded rather than spent), a refused Graph client
// secret exits as a login failure, and neither secret is printed.
func TestVandelayExchange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var waits []time.Duration
	ctx = vandelay.WithWaits(ctx, func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d) // one request at a time: the recorded busy answer
		return ctx.Err()
	})
	dir := t.TempDir()
	t.Setenv("EWS_PW", "fixture-password")
	t.Setenv("APP_SECRET", "fixture-secret")
	ews := recorded.New(t, "../../vandelay/sources/exchange/ews/testdata/ews-run1.txtar")
	graph := recorded.New(t, "../../vandelay/sources/exchange/graph/testdata/graph-denied.txtar")
	runs := []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{args: []string{"vandelay", "import", "exchange-ews", "--url", ews.URL + "/EWS/Exchange.asmx", "--allow-cleartext",
			"--user", "alice@contoso.example", "--master-user", "svc-migration", "--password-env", "EWS_PW", "--progress", "none", filepath.Join(dir, "ews.db")},
			out: "messages: 4 added, 0 deleted, 0 moved, 0 reflagged; mailboxes: 6 created"},
		{args: []string{"vandelay", "import", "exchange-graph", "--url", graph.URL + "/v1.0", "--authority", graph.URL, "--allow-cleartext",
			"--tenant", "tenant-1", "--client-id", "app-1", "--client-secret-env", "APP_SECRET", "--user", "alice@contoso.example",
			"--progress", "none", filepath.Join(dir, "graph.db")},
			code: exitVandelayConnect, err: "invalid_client"},
		{args: []string{"vandelay", "import", "exchange-graph", "--url", "http://graph.example.test/v1.0",
			"--tenant", "tenant-1", "--client-id", "app-1", "--client-secret-env", "APP_SECRET", "--user", "alice@contoso.example", filepath.Join(dir, "x.db")},
			code: exitVandelayUsage, err: "without --allow-cleartext"},
		{args: []string{"vandelay", "import", "exchange-graph", "--tenant", "tenant-1", "--client-id", "app-1", "--user", "alice@contoso.example", filepath.Join(dir, "y.db")},
			code: exitVandelayUsage, err: "--client-secret-env VAR or --client-secret-file FILE"},
	}
	for i, r := range runs {
		var out, errb bytes.Buffer
		code := run(ctx, r.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != r.code {
			t.Errorf("run %d: exit %d, want %d: %s%s", i, code, r.code, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), r.out) || !strings.Contains(errb.String(), r.err) {
			t.Errorf("run %d: stdout %q (want %q), stderr %q (want %q)", i, out.String(), r.out, errb.String(), r.err)
		}
		if i == 0 && !slices.Equal(waits, []time.Duration{1500 * time.Millisecond}) {
			t.Errorf("waits %v, want the recorded 1.5 s back-off", waits)
		}
		if all := out.String() + errb.String(); strings.Contains(all, "fixture-password") || strings.Contains(all, "fixture-secret") {
			t.Errorf("run %d printed a secret", i)
		}
	}
}
