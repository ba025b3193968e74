package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine/state"
)

// TestProxyAdminAPI: the mapping API on a real proxy's admin listener,
// with the route table and state in files and in PostgreSQL. Without the
// plan's bearer token every call is refused (an unknown one as well); with
// it a mapping is set, looked up, counted and deleted, each edit is
// journaled in the state's chain, an edit while an apply holds the state
// lock is refused with 409, and with PostgreSQL the answer comes once
// every live proxy (this one) applied the change.
func TestProxyAdminAPI(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			s := needPeers(t)
			dir := t.TempDir()
			t.Setenv("MAILMIG_TEST_ADMIN_TOKEN", "s3cret-admin-token")
			head := ""
			if store == "postgres" {
				u, err := url.Parse(s.Postgres.NewDatabase(t))
				if err != nil {
					t.Fatal(err)
				}
				pw, _ := u.User.Password()
				u.User = url.User(u.User.Username())
				t.Setenv("MAILMIG_TEST_PGPASS", pw)
				head = fmt.Sprintf("state {\n  postgres     = %q\n  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n}\nroutes {\n  postgres     = %q\n  password_ref = \"env:MAILMIG_TEST_PGPASS\"\n}\n", u.String(), u.String())
			}
			planFile := filepath.Join(dir, "migration.hcl")
			body := head + fmt.Sprintf(`backend "legacy" {
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
  admin_token_ref = "env:MAILMIG_TEST_ADMIN_TOKEN"
}
`, s.Dovecot.IMAP, s.Dovecot2.IMAP)
			if err := os.WriteFile(planFile, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			m, diags := loadMigration(&globals{PlanPath: planFile}, "", nil)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p, err := startProxy(context.Background(), m, &proxyRun{Admin: "127.0.0.1:0", ID: "admin-test"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				p.Stop(c)
			})
			base := ""
			for _, a := range p.Addrs {
				if f := strings.Fields(a); len(f) == 2 && f[0] == "admin" {
					base = "http://" + f[1]
				}
			}
			call := func(method, path, token, body string) (int, map[string]any) {
				t.Helper()
				req, err := http.NewRequest(method, base+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				var v map[string]any
				if err := json.Unmarshal(b, &v); err != nil {
					t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, b)
				}
				if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: 401 without WWW-Authenticate", method, path)
				}
				return resp.StatusCode, v
			}
			const tok = "s3cret-admin-token"
			for _, c := range []struct{ method, path, token string }{
				{"GET", "/api/stats", ""},
				{"GET", "/api/stats", "wrong"},
				{"PUT", "/api/mapping/alice@example.test", ""},
				{"DELETE", "/api/mapping/alice@example.test", "s3cret-admin-token-longer"},
				{"GET", "/api/unknown", ""},
			} {
				if code, _ := call(c.method, c.path, c.token, `{"backend":"legacy2"}`); code != http.StatusUnauthorized {
					t.Fatalf("%s %s with token %q: %d, want 401", c.method, c.path, c.token, code)
				}
			}
			if code, v := call("PUT", "/api/mapping/alice@example.test", tok, `{"backend":"nowhere"}`); code != http.StatusBadRequest {
				t.Fatalf("unknown backend: %d %v", code, v)
			}
			code, v := call("PUT", "/api/mapping/Alice@Example.TEST", tok, `{"backend":"legacy2"}`)
			if code != http.StatusOK || v["account"] != "alice@example.test" || v["backend"] != "legacy2" {
				t.Fatalf("set: %d %v", code, v)
			}
			if ack, ok := v["acknowledged"]; (store == "postgres") != ok || (ok && ack != true) {
				t.Fatalf("set acknowledged: %v", v)
			}
			if code, v := call("GET", "/api/mapping/alice@example.test", tok, ""); code != http.StatusOK || v["backend"] != "legacy2" || v["state"] != "active" {
				t.Fatalf("lookup: %d %v", code, v)
			}
			if code, v := call("GET", "/api/stats", tok, ""); code != http.StatusOK || v["routes"] != 1.0 || v["by_backend"].(map[string]any)["legacy2"] != 1.0 {
				t.Fatalf("stats: %d %v", code, v)
			}
			// While an apply (another process: another plan value here)
			// holds the lock, edits are refused.
			m2, diags := loadMigration(&globals{PlanPath: planFile}, "", nil)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			b, err := openState(context.Background(), m2, true)
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := b.Lock(context.Background(), "apply@example.test", "apply")
			if err != nil {
				t.Fatal(err)
			}
			if code, v := call("DELETE", "/api/mapping/alice@example.test", tok, ""); code != http.StatusConflict {
				t.Fatalf("delete under an apply's lock: %d %v", code, v)
			}
			if err := l.Unlock(); err != nil {
				t.Fatal(err)
			}
			b.Close()
			if code, v := call("DELETE", "/api/mapping/alice@example.test", tok, ""); code != http.StatusOK {
				t.Fatalf("delete: %d %v", code, v)
			}
			if code, _ := call("GET", "/api/mapping/alice@example.test", tok, ""); code != http.StatusNotFound {
				t.Fatalf("lookup after delete: %d", code)
			}
			if code, _ := call("DELETE", "/api/mapping/alice@example.test", tok, ""); code != http.StatusNotFound {
				t.Fatalf("second delete: %d", code)
			}
			// Both edits are in the journal's chain, which verifies.
			sb, err := openState(context.Background(), m, false)
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			var edits []string
			if err := sb.ReadRecords(context.Background(), func(r *state.Record) bool {
				if r.Type == state.TypeRouteEdit && strings.HasPrefix(r.Note, "admin API from ") {
					edits = append(edits, r.Action+" "+r.Account+" "+r.Backend)
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if strings.Join(edits, ",") != "set alice@example.test legacy2,delete alice@example.test " {
				t.Fatalf("journaled edits %q", edits)
			}
			if res, err := sb.Verify(context.Background()); err != nil || !res.OK {
				t.Fatalf("journal verify %+v %v", res, err)
			}
		})
	}
}
