package oauth_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/httpx"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/oauth"
)

// TestDeviceCode signs in with the device authorization grant against
// the recorded exchanges: the user sees Microsoft's message, the client
// polls at the interval (plus 5 s after slow_down), and a dropped access
// token is renewed with the refresh token.
func TestDeviceCode(t *testing.T) {
	srv := recorded.New(t, "testdata/device-code.txtar")
	var waits []time.Duration
	c := httpx.New(1)
	c.HTTP = srv.Client()
	c.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	var prompts []string
	s, err := oauth.New(oauth.Config{Authority: srv.URL, Tenant: "organizations", ClientID: "app-2", DeviceCode: true,
		Prompt: func(m string) { prompts = append(prompts, m) }}, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := s.Token(ctx)
	if err != nil || tok != "user-tok-1" {
		t.Fatalf("token %q, %v", tok, err)
	}
	if len(prompts) != 1 || prompts[0] != "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FBXQ7KQ2L to authenticate." {
		t.Errorf("prompts %q", prompts)
	}
	if want := []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second}; !slices.Equal(waits, want) {
		t.Errorf("polled after %v, want %v", waits, want)
	}
	if tok, _ := s.Token(ctx); tok != "user-tok-1" {
		t.Errorf("a valid token was not reused: %q", tok)
	}
	s.Invalidate()
	if tok, err := s.Token(ctx); err != nil || tok != "user-tok-2" {
		t.Errorf("after a refusal: %q, %v; want the refreshed token", tok, err)
	}
}

func TestConfigRefused(t *testing.T) {
	for name, cfg := range map[string]oauth.Config{
		"no tenant":       {ClientID: "a", ClientSecret: "s"},
		"no secret":       {Tenant: "t", ClientID: "a"},
		"device, no show": {Tenant: "t", ClientID: "a", DeviceCode: true},
	} {
		if _, err := oauth.New(cfg, httpx.New(1)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDeviceCodeKept: a device-code sign-in is kept in the cache file
// (mode 0600) and the next run refreshes it without asking the user; the
// rotated refresh token replaces the cached one. A cache written for
// another app is not used.
func TestDeviceCodeKept(t *testing.T) {
	cacheFile := filepath.Join(t.TempDir(), "alice.db.graph-token")
	srv := recorded.New(t, "testdata/device-code.txtar")
	c := httpx.New(1)
	c.HTTP = srv.Client()
	c.Sleep = func(ctx context.Context, d time.Duration) error { return nil }
	cfg := oauth.Config{Authority: srv.URL, Tenant: "organizations", ClientID: "app-2", DeviceCode: true, CacheFile: cacheFile,
		Prompt: func(string) {}}
	s, err := oauth.New(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	s.Invalidate()
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	cached := func(want string) {
		t.Helper()
		fi, err := os.Stat(cacheFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("cache file mode %v, want 0600", fi.Mode().Perm())
		}
		b, _ := os.ReadFile(cacheFile)
		if !strings.Contains(string(b), `"refresh_token":"`+want+`"`) || strings.Contains(string(b), "user-tok") {
			t.Errorf("cache %s, want refresh token %s and no access token", b, want)
		}
	}
	cached("refresh-2")

	srv.Load("testdata/device-cache.txtar")
	cfg.Prompt = func(string) { t.Error("asked the user again") }
	s, err = oauth.New(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Token(ctx); err != nil || tok != "user-tok-3" {
		t.Fatalf("kept sign-in: %q, %v", tok, err)
	}
	cached("refresh-3")

	// Without a prompt, only a kept sign-in can start: this app's can,
	// another app's cannot.
	cfg.Prompt = nil
	if _, err := oauth.New(cfg, c); err != nil {
		t.Errorf("kept sign-in not found: %v", err)
	}
	cfg.ClientID = "app-3"
	if _, err := oauth.New(cfg, c); err == nil {
		t.Error("another app's kept sign-in was used")
	}
}
