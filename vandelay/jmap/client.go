package jmap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Auth adds credentials to a request. Implementations must redact the
// secret in String.
type Auth interface {
	apply(r *http.Request)
	String() string
}

// BasicAuth is HTTP Basic authentication (RFC 7617).
type BasicAuth struct {
	User     string
	Password string
}

func (a BasicAuth) apply(r *http.Request) {
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.User+":"+a.Password)))
}

// String returns the user name and a redacted password.
func (a BasicAuth) String() string { return "basic " + a.User + ":<redacted>" }

// BearerAuth is an OAuth 2.0 bearer token (RFC 6750).
type BearerAuth struct {
	Token string
}

func (a BearerAuth) apply(r *http.Request) { r.Header.Set("Authorization", "Bearer "+a.Token) }

// String returns a redacted form.
func (a BearerAuth) String() string { return "bearer <redacted>" }

// Options configure a [Client]. A nil *Options means defaults.
type Options struct {
	// HTTPClient sends the requests. Default: a client with a 30 s
	// response-header timeout and no overall timeout (uploads of large
	// blobs take as long as they take).
	HTTPClient *http.Client
	// Auth adds credentials. Default: none.
	Auth Auth
	// Logger receives debug records (method names, URLs, retries), never
	// credentials or bodies. Default: discard.
	Logger *slog.Logger
	// MaxRetries bounds the retries of one request after 429/503,
	// connection errors or serverUnavailable. Default: 6.
	MaxRetries int
	// MaxBackoff caps one wait between retries (a longer Retry-After is
	// still honoured up to 5 minutes). Default: 30s.
	MaxBackoff time.Duration
	// UserAgent is sent with every request. Default: "mailmig".
	UserAgent string
}

// Client talks to one JMAP server with one credential.
type Client struct {
	hc         *http.Client
	auth       Auth
	log        *slog.Logger
	maxRetries int
	maxBackoff time.Duration
	ua         string

	session    *Session
	sessionURL *url.URL
	apiURL     *url.URL

	reqSem    chan struct{}
	dlSem     chan struct{}
	uploadSem chan struct{}

	stats Stats
}

// Stats counts the client's traffic; tests use it to prove that a re-run
// uploads nothing.
type Stats struct {
	Requests      atomic.Int64
	Calls         atomic.Int64
	Uploads       atomic.Int64
	UploadBytes   atomic.Int64
	Downloads     atomic.Int64
	DownloadBytes atomic.Int64
	Retries       atomic.Int64
}

// Stats returns the client's live counters.
func (c *Client) Stats() *Stats { return &c.stats }

// SessionURL returns the URL the session resource was finally served from
// (after redirects).
func (c *Client) SessionURL() string { return c.sessionURL.String() }

// Session returns the session resource the client was built from.
func (c *Client) Session() *Session { return c.session }

// MaxObjectsInGet is the session's maxObjectsInGet.
func (c *Client) MaxObjectsInGet() int { return c.session.Core.MaxObjectsInGet }

// MaxObjectsInSet is the session's maxObjectsInSet.
func (c *Client) MaxObjectsInSet() int { return c.session.Core.MaxObjectsInSet }

// MaxSizeUpload is the session's maxSizeUpload (0: not advertised).
func (c *Client) MaxSizeUpload() int64 { return c.session.Core.MaxSizeUpload }

// Discover fetches the session resource and returns a ready client.
//
// rawURL may be a session URL, a /.well-known/jmap URL, or a server's base
// URL (then /.well-known/jmap on its origin is tried when the URL itself
// does not serve a session). Redirects are followed (RFC 8620 2.2); the
// Authorization header is kept only while the host stays the same.
func Discover(ctx context.Context, rawURL string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	c := &Client{
		hc:         opts.HTTPClient,
		auth:       opts.Auth,
		log:        opts.Logger,
		maxRetries: opts.MaxRetries,
		maxBackoff: opts.MaxBackoff,
		ua:         opts.UserAgent,
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 120 * time.Second
		tr.MaxIdleConnsPerHost = 32
		c.hc = &http.Client{Transport: tr}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxRetries == 0 {
		c.maxRetries = 6
	}
	if c.maxBackoff == 0 {
		c.maxBackoff = 30 * time.Second
	}
	if c.ua == "" {
		c.ua = "mailmig"
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("jmap url %q: want an absolute http(s) URL", rawURL)
	}
	candidates := []*url.URL{u}
	if !strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/.well-known/jmap") {
		wk := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/.well-known/jmap"}
		candidates = append(candidates, wk)
	}
	var firstErr error
	for _, cand := range candidates {
		s, final, err := c.fetchSession(ctx, cand)
		if err == nil {
			c.session = s
			c.sessionURL = final
			break
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		var pe *ProblemError
		if errors.As(err, &pe) && (pe.Status == 401 || pe.Status == 403) {
			return nil, fmt.Errorf("jmap session at %s: %w (HTTP %d); check the user name and secret", cand.Redacted(), ErrAuthRefused, pe.Status)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if c.session == nil {
		return nil, fmt.Errorf("no jmap session found at %s: %w", u.Redacted(), firstErr)
	}
	if c.apiURL, err = resolve(c.sessionURL, c.session.APIURL); err != nil {
		return nil, err
	}
	c.reqSem = make(chan struct{}, c.session.Core.MaxConcurrentRequests)
	c.dlSem = make(chan struct{}, c.session.Core.MaxConcurrentRequests)
	c.uploadSem = make(chan struct{}, c.session.Core.MaxConcurrentUpload)
	c.log.Debug("jmap session", "addr", c.sessionURL.Redacted(), "api", c.apiURL.Redacted(),
		"maxCallsInRequest", c.session.Core.MaxCallsInRequest, "maxObjectsInSet", c.session.Core.MaxObjectsInSet,
		"maxConcurrentRequests", c.session.Core.MaxConcurrentRequests, "maxConcurrentUpload", c.session.Core.MaxConcurrentUpload,
		"maxSizeUpload", c.session.Core.MaxSizeUpload)
	return c, nil
}

func (c *Client) fetchSession(ctx context.Context, u *url.URL) (*Session, *url.URL, error) {
	var final *url.URL
	body, err := c.roundTrip(ctx, "session", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		return req, nil
	}, func(resp *http.Response) { final = resp.Request.URL })
	if err != nil {
		return nil, nil, err
	}
	s, err := parseSession(body)
	if err != nil {
		return nil, nil, err
	}
	return s, final, nil
}

// roundTrip sends the request built by mk, retrying transient failures,
// and returns the body of a 2xx response. seen, if set, sees the final
// response before its body is read.
func (c *Client) roundTrip(ctx context.Context, what string, mk func() (*http.Request, error), seen func(*http.Response)) ([]byte, error) {
	var lastErr error
	timeouts := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.stats.Retries.Add(1)
		}
		req, err := mk()
		if err != nil {
			return nil, err
		}
		c.decorate(req)
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = fmt.Errorf("jmap %s: %w", what, err)
			// A server that let a request time out is hung more often
			// than not, and each try costs a whole timeout: one retry,
			// then the caller (the engine's circuit breaker) decides.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				timeouts++
			}
			if attempt >= c.maxRetries || timeouts >= 2 {
				return nil, lastErr
			}
			if err := c.wait(ctx, attempt, 0, what, lastErr); err != nil {
				return nil, err
			}
			continue
		}
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 && rerr == nil {
			if seen != nil {
				seen(resp)
			}
			return body, nil
		}
		if rerr != nil {
			lastErr = fmt.Errorf("jmap %s: read response: %w", what, rerr)
			if attempt >= c.maxRetries {
				return nil, lastErr
			}
			if err := c.wait(ctx, attempt, 0, what, lastErr); err != nil {
				return nil, err
			}
			continue
		}
		p := decodeProblem(resp.StatusCode, body)
		p.RetryAfter = durationValue(parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		if !p.Temporary() || attempt >= c.maxRetries {
			return nil, p
		}
		if err := c.wait(ctx, attempt, time.Duration(p.RetryAfter), what, p); err != nil {
			return nil, err
		}
	}
}

func (c *Client) decorate(req *http.Request) {
	req.Header.Set("User-Agent", c.ua)
	if c.auth != nil {
		c.auth.apply(req)
	}
}

// wait sleeps before retry number attempt+1: the server's Retry-After when
// given (capped at 5 minutes), else exponential backoff with jitter.
func (c *Client) wait(ctx context.Context, attempt int, retryAfter time.Duration, what string, cause error) error {
	d := retryAfter
	if d <= 0 {
		d = backoff(attempt, c.maxBackoff)
	}
	if d > 5*time.Minute {
		d = 5 * time.Minute
	}
	c.log.Debug("jmap retry", "action", what, "attempt", attempt+1, "duration", d, "err", cause)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff is 100ms·2^attempt with ±50% jitter, capped at max.
func backoff(attempt int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 16)
	if d > max || d <= 0 {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP date
// (RFC 9110 10.2.3). Zero means absent or unparsable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// post sends one API request body and returns the response body.
func (c *Client) post(ctx context.Context, body []byte) ([]byte, error) {
	select {
	case c.reqSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.reqSem }()
	c.stats.Requests.Add(1)
	return c.roundTrip(ctx, "api", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.apiURL.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}, nil)
}
