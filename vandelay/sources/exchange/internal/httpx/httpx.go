// Package httpx is the HTTP layer the Exchange sources share: at most N
// requests in flight per mailbox, the server's throttling answers obeyed
// (429 and 503 with Retry-After), and one token refresh when a request
// comes back 401.
//
// Microsoft documents the limits it enforces per mailbox (four concurrent
// requests for Outlook resources in Graph) and asks clients to wait as
// long as Retry-After says; waiting less only earns more 429s, so the
// client never retries before the time given.
package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailmig/mailmig/vandelay"
)

// Limits of the retry loop.
const (
	// MaxAttempts bounds the attempts of one request (throttling and one
	// 401 refresh included).
	MaxAttempts = 8
	// DefaultRetryAfter is the wait when a 429/503 carries no Retry-After.
	DefaultRetryAfter = 5 * time.Second
	// MaxRetryAfter caps one wait, so that a broken header cannot stall
	// a run for hours.
	MaxRetryAfter = 5 * time.Minute
)

// Authorizer sets a request's credentials. Invalidate is called after a
// 401 so that the next Authorize fetches a fresh token; it reports false
// when there is nothing to refresh (Basic credentials).
type Authorizer interface {
	Authorize(ctx context.Context, req *http.Request) error
	Invalidate() bool
}

// Client sends requests for one mailbox.
type Client struct {
	// HTTP is the underlying client. Default: http.DefaultClient.
	HTTP *http.Client
	// Auth sets credentials; nil sends none.
	Auth Authorizer
	// Sleep waits d or until ctx ends; tests replace it to record the
	// waits instead of spending them. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Log receives throttling notes. Default: discard.
	Log *slog.Logger
	// Budget is shared by the clients of all mailboxes of one app
	// registration (AppBudget); each request waits for a token. nil:
	// none.
	Budget *rate.Limiter

	sem chan struct{}
}

// New returns a client with at most concurrency requests in flight
// (Default 4 when < 1).
func New(concurrency int) *Client {
	if concurrency < 1 {
		concurrency = 4
	}
	return &Client{sem: make(chan struct{}, concurrency)}
}

// StatusError is a final non-2xx answer.
type StatusError struct {
	Status int
	Body   []byte
	URL    string
}

func (e *StatusError) Error() string {
	b := e.Body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.URL, e.Status, bytes.TrimSpace(b))
}

// Sleep waits d unless ctx ends first, through the waiter a test put in
// ctx with vandelay.WithWaits.
func Sleep(ctx context.Context, d time.Duration) error {
	return vandelay.Wait(ctx, d)
}

// Do sends the request made by mk (called again for each attempt, so the
// body can be re-sent) and returns the response body of a 2xx answer.
// 429 and 503 are retried after Retry-After; a 401 is retried once after
// the Authorizer's Invalidate. Other statuses are a *StatusError.
func (c *Client) Do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, []byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, nil, err
		}
		req = req.WithContext(ctx)
		if c.Auth != nil {
			if err := c.Auth.Authorize(ctx, req); err != nil {
				return nil, nil, err
			}
		}
		resp, body, err := c.once(ctx, hc, req)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, body, nil
		case resp.StatusCode == http.StatusUnauthorized && !refreshed && c.Auth != nil && c.Auth.Invalidate():
			// An access token can expire or be revoked before its
			// expires_in; one fresh token, then the 401 is final.
			refreshed = true
			log.Debug("token refused, refreshing", "url", req.URL.Path)
			continue
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < MaxAttempts:
			d := RetryAfter(resp.Header.Get("Retry-After"), time.Now())
			log.Info("throttled by the server, waiting", "status", resp.StatusCode, "duration", d, "url", req.URL.Path)
			if err := sleep(ctx, d); err != nil {
				return nil, nil, err
			}
			continue
		}
		return resp, body, &StatusError{Status: resp.StatusCode, Body: body, URL: req.URL.Redacted()}
	}
}

// once sends one request holding a concurrency slot, after a token of
// the app's budget (taken before the slot, so that a mailbox waiting
// for its app does not hold its slots).
func (c *Client) once(ctx context.Context, hc *http.Client, req *http.Request) (*http.Response, []byte, error) {
	if c.Budget != nil {
		if err := c.Budget.Wait(ctx); err != nil {
			return nil, nil, fmt.Errorf("the app's request budget: %w", err)
		}
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", req.URL.Redacted(), err)
	}
	return resp, body, nil
}

// RetryAfter parses a Retry-After value (delay-seconds or an HTTP date,
// RFC 9110 10.2.3), defaulting and capping it.
func RetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return DefaultRetryAfter
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return DefaultRetryAfter
	}
	return min(max(d, 0), MaxRetryAfter)
}

// IsStatus reports whether err is a *StatusError with that status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}
