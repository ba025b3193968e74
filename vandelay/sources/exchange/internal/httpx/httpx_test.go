package httpx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":      DefaultRetryAfter,
		"3":     3 * time.Second,
		"0":     0,
		"-4":    0,
		"86400": MaxRetryAfter,
		"soon":  DefaultRetryAfter,
		now.Add(7 * time.Second).Format(http.TimeFormat): 7 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):      0,
	} {
		if got := RetryAfter(v, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestAppBudget: the clients of two mailboxes of one app draw on one
// budget, another app has its own, and a request that would wait past
// its context's deadline for a token fails at once (no time is spent).
func TestAppBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	key := "https://login.example/tenant-a/app-" + t.Name()
	// Burst 3 and a token per 10,000 s: the fourth request cannot be
	// served within the test's deadline.
	b := AppBudget(key, 0.0001, 3)
	if AppBudget(key, 0.0001, 3) != b {
		t.Fatal("one app, two limiters")
	}
	if other := AppBudget(key+"-other", 0, 0); other == b || other.Limit() != DefaultAppRate {
		t.Fatalf("another app shares the budget or lacks the default rate")
	}
	mailbox := func() *Client {
		c := New(4)
		c.Budget = b
		return c
	}
	alice, bob := mailbox(), mailbox()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	get := func(c *Client) error {
		_, _, err := c.Do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodGet, srv.URL, nil) })
		return err
	}
	for i, c := range []*Client{alice, bob, alice} {
		if err := get(c); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := get(bob); err == nil || !strings.Contains(err.Error(), "budget") {
		t.Errorf("fourth request of the app: %v, want a budget refusal", err)
	}
}
