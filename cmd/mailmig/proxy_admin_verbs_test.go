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

// TestProxyAdminAPIVerbs: the admin API's alias, domain and
// freeze/unfreeze verbs and Stalwart's /mappings paths, with the route
// table in SQLite and in PostgreSQL: 401 without the bearer token (plain
// text on Stalwart's paths), each edit made, 404 for what is not there,
// 409 while an apply holds the lock, every edit journaled in a chain that
// verifies and, with PostgreSQL, acknowledged by the fleet.
func TestProxyAdminAPIVerbs(t *testing.T) {
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
			p, err := startProxy(context.Background(), m, &proxyRun{Admin: "127.0.0.1:0", ID: "admin-verbs"})
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
			const tok = "s3cret-admin-token"
			// call returns the status, the JSON answer (nil when it is
			// text) and the text.
			call := func(method, path, token, body string) (int, map[string]any, string) {
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
				if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					if err := json.Unmarshal(b, &v); err != nil {
						t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, b)
					}
				}
				return resp.StatusCode, v, strings.TrimSpace(string(b))
			}
			// want checks one call; an edit of the fleet must have been
			// acknowledged.
			want := func(method, path, body string, code int) (map[string]any, string) {
				t.Helper()
				got, v, text := call(method, path, tok, body)
				if got != code {
					t.Fatalf("%s %s: %d %s, want %d", method, path, got, text, code)
				}
				if code == http.StatusOK && v != nil && method != http.MethodGet {
					if ack, ok := v["acknowledged"]; (store == "postgres") != ok || (ok && ack != true) {
						t.Fatalf("%s %s: acknowledged %v", method, path, v)
					}
				}
				return v, text
			}

			for _, c := range []struct{ method, path string }{
				{"GET", "/api/alias/al@example.test"},
				{"PUT", "/api/alias/al@example.test"},
				{"DELETE", "/api/domain/example.test"},
				{"POST", "/api/mapping/alice@example.test/freeze"},
				{"POST", "/api/mapping/alice@example.test/unfreeze"},
				{"GET", "/mappings?identifier=alice@example.test"},
				{"PUT", "/mappings?identifier=alice@example.test&destination=legacy"},
				{"DELETE", "/mappings?identifier=alice@example.test"},
			} {
				for _, token := range []string{"", "wrong"} {
					code, _, text := call(c.method, c.path, token, `{"account":"alice@example.test"}`)
					if code != http.StatusUnauthorized {
						t.Fatalf("%s %s with token %q: %d, want 401", c.method, c.path, token, code)
					}
					if strings.HasPrefix(c.path, "/mappings") && text != "unauthorized" {
						t.Errorf("%s %s: 401 answers %q, want Stalwart's text", c.method, c.path, text)
					}
				}
			}

			want("PUT", "/api/mapping/alice@example.test", `{"backend":"legacy2"}`, http.StatusOK)
			// Aliases.
			want("PUT", "/api/alias/al@example.test", `{}`, http.StatusBadRequest)
			want("PUT", "/api/alias/alice@example.test", `{"account":"bob@example.test"}`, http.StatusBadRequest) // an account
			if v, _ := want("PUT", "/api/alias/AL@Example.test", `{"account":"Alice@example.test"}`, http.StatusOK); v["alias"] != "al@example.test" || v["account"] != "alice@example.test" {
				t.Fatalf("alias set: %v", v)
			}
			if v, _ := want("GET", "/api/alias/al@example.test", "", http.StatusOK); v["account"] != "alice@example.test" {
				t.Fatalf("alias lookup: %v", v)
			}
			// Stalwart's lookup follows the alias.
			if v, _ := want("GET", "/mappings?identifier=AL@example.test", "", http.StatusOK); v["normalized"] != "al@example.test" || v["destination"] != "legacy2" || v["routed_to_default"] != false {
				t.Fatalf("Stalwart lookup of an alias: %v", v)
			}
			// Freeze and unfreeze.
			want("POST", "/api/mapping/nobody@example.test/freeze", "", http.StatusNotFound)
			if v, _ := want("POST", "/api/mapping/alice@example.test/freeze", "", http.StatusOK); v["state"] != "frozen" || v["backend"] != "legacy2" {
				t.Fatalf("freeze: %v", v)
			}
			if v, _ := want("GET", "/api/mapping/alice@example.test", "", http.StatusOK); v["state"] != "frozen" {
				t.Fatalf("lookup after freeze: %v", v)
			}
			if v, _ := want("POST", "/api/mapping/alice@example.test/unfreeze", "", http.StatusOK); v["state"] != "active" {
				t.Fatalf("unfreeze: %v", v)
			}
			// Domains.
			want("GET", "/api/domain/example.test", "", http.StatusNotFound)
			want("PUT", "/api/domain/bad@example.test", "", http.StatusBadRequest)
			if v, _ := want("PUT", "/api/domain/Example.TEST", "", http.StatusOK); v["domain"] != "example.test" || v["listed"] != true {
				t.Fatalf("domain add: %v", v)
			}
			want("GET", "/api/domain/example.test", "", http.StatusOK)
			want("DELETE", "/api/domain/example.test", "", http.StatusOK)
			want("DELETE", "/api/domain/example.test", "", http.StatusNotFound)
			want("GET", "/api/domain/example.test", "", http.StatusNotFound)
			want("DELETE", "/api/alias/al@example.test", "", http.StatusOK)
			want("DELETE", "/api/alias/al@example.test", "", http.StatusNotFound)
			want("GET", "/api/alias/al@example.test", "", http.StatusNotFound)
			// Stalwart's mapping verbs.
			want("GET", "/mappings", "", http.StatusBadRequest)
			want("PUT", "/mappings?identifier=bob@example.test", "", http.StatusBadRequest)
			if _, text := want("PUT", "/mappings?identifier=bob@example.test&destination=nowhere", "", http.StatusBadRequest); text != "unknown destination" {
				t.Fatalf("unknown destination: %q", text)
			}
			if _, text := want("PUT", "/mappings?identifier=Bob@example.test&destination=legacy", "", http.StatusOK); text != "ok" {
				t.Fatalf("Stalwart set: %q", text)
			}
			if v, _ := want("GET", "/mappings?identifier=bob@example.test", "", http.StatusOK); v["destination"] != "legacy" || v["state"] != "active" || v["cached"] != false {
				t.Fatalf("Stalwart lookup: %v", v)
			}
			if v, _ := want("GET", "/mappings?identifier=nobody@example.test", "", http.StatusOK); v["destination"] != nil || v["routed_to_default"] != false {
				t.Fatalf("Stalwart lookup of nobody: %v", v)
			}
			if _, text := want("DELETE", "/mappings?identifier=bob@example.test", "", http.StatusOK); text != "removed" {
				t.Fatalf("Stalwart delete: %q", text)
			}
			if _, text := want("DELETE", "/mappings?identifier=bob@example.test", "", http.StatusOK); text != "absent" {
				t.Fatalf("Stalwart delete of nothing: %q", text)
			}
			want("POST", "/mappings?identifier=bob@example.test", "", http.StatusMethodNotAllowed)

			// While an apply holds the lock, edits are refused.
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
			want("PUT", "/api/domain/example.test", "", http.StatusConflict)
			want("POST", "/api/mapping/alice@example.test/freeze", "", http.StatusConflict)
			want("PUT", "/mappings?identifier=bob@example.test&destination=legacy", "", http.StatusConflict)
			if err := l.Unlock(); err != nil {
				t.Fatal(err)
			}
			b.Close()

			// Every edit is in the journal's chain, which verifies.
			sb, err := openState(context.Background(), m, false)
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			var edits []string
			if err := sb.ReadRecords(context.Background(), func(r *state.Record) bool {
				if r.Type == state.TypeRouteEdit && strings.HasPrefix(r.Note, "admin API from ") {
					_, detail, _ := strings.Cut(r.Note, ": ")
					edits = append(edits, strings.Join([]string{r.Action, r.Account, r.Backend, detail}, "|"))
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			wantEdits := []string{
				"set|alice@example.test|legacy2|",
				"alias add|alice@example.test||alias al@example.test",
				"freeze|alice@example.test|legacy2|",
				"unfreeze|alice@example.test|legacy2|",
				"domain add|||example.test",
				"domain rm|||example.test",
				"alias rm|||alias al@example.test",
				"set|bob@example.test|legacy|",
				"delete|bob@example.test||",
			}
			if strings.Join(edits, "\n") != strings.Join(wantEdits, "\n") {
				t.Fatalf("journaled edits:\n%s\nwant:\n%s", strings.Join(edits, "\n"), strings.Join(wantEdits, "\n"))
			}
			if res, err := sb.Verify(context.Background()); err != nil || !res.OK {
				t.Fatalf("journal verify %+v %v", res, err)
			}
		})
	}
}
