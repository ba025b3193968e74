// Package oauth gets and refreshes Microsoft identity platform access
// tokens for the Graph source: the client credentials grant (an
// administrator's app registration reading many mailboxes, RFC 6749 4.4)
// and the device authorization grant (one user signing in on another
// device, RFC 8628), with refresh tokens (RFC 6749 6) for long runs.
//
// It is a small own client rather than golang.org/x/oauth2 because the
// Graph source needs to drop a token the server refused (401) before its
// expiry and because the device flow's prompt must go to the CLI's view,
// not to a log. Tokens and secrets are never logged or put in errors.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/httpx"
)

// DefaultAuthority is the Microsoft identity platform (Entra ID) login
// endpoint; tokens are at {authority}/{tenant}/oauth2/v2.0/token.
const DefaultAuthority = "https://login.microsoftonline.com"

// GraphScope is the app-only scope for Microsoft Graph (client
// credentials take the permissions granted to the app, ".default").
const GraphScope = "https://graph.microsoft.com/.default"

// DeviceScopes are the delegated scopes a device-code sign-in asks for;
// offline_access brings a refresh token.
const DeviceScopes = "offline_access https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/Calendars.Read https://graph.microsoft.com/Contacts.Read https://graph.microsoft.com/MailboxSettings.Read"

// expirySkew renews a token this long before it expires, so that a
// request sent just before expiry does not carry a dead token.
const expirySkew = 2 * time.Minute

// Config describes the app registration and the grant.
type Config struct {
	// Authority is the login endpoint. Default: DefaultAuthority.
	Authority string
	// Tenant is the directory (tenant) id or domain.
	Tenant string
	// ClientID is the application (client) id.
	ClientID string
	// ClientSecret is the app's secret (client credentials); empty with
	// DeviceCode.
	ClientSecret string
	// DeviceCode signs a user in with the device authorization grant
	// instead of the client credentials grant.
	DeviceCode bool
	// Prompt shows the device-code message ("To sign in, use a web
	// browser to open … and enter the code …") to the user. Required
	// with DeviceCode.
	Prompt func(message string)
	// RefreshToken, when set with DeviceCode, skips the sign-in.
	RefreshToken string
	// CacheFile, with DeviceCode, keeps the sign-in between runs: the
	// refresh token is read from it at the start (when it was written for
	// the same authority, tenant and client) and written to it, mode 0600
	// and replaced whole, whenever the token endpoint hands out a new one.
	// A cached token the endpoint refuses (invalid_grant) means a new
	// sign-in. The file holds a credential: keep it with the archive.
	CacheFile string
}

// Token is an access token and when it expires.
type Token struct {
	Access  string
	Refresh string
	Expiry  time.Time
}

// Source hands out access tokens, fetching and renewing them as needed.
// It is safe for concurrent use: concurrent requests share one fetch.
type Source struct {
	cfg    Config
	client *httpx.Client
	now    func() time.Time

	mu  sync.Mutex
	tok *Token
}

// Error is an error answer of the token endpoint (RFC 6749 5.2).
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *Error) Error() string {
	d, _, _ := strings.Cut(e.Description, "\r\n") // Entra appends trace ids on later lines
	return "token endpoint: " + e.Code + ": " + d
}

// ErrNoTenant is returned when the configuration lacks tenant or client id.
var ErrNoTenant = errors.New("tenant and client id are required")

// New returns a token source. client sends the token requests (its
// throttling and concurrency apply); its Auth must be nil.
func New(cfg Config, client *httpx.Client) (*Source, error) {
	if cfg.Tenant == "" || cfg.ClientID == "" {
		return nil, ErrNoTenant
	}
	if !cfg.DeviceCode && cfg.ClientSecret == "" {
		return nil, errors.New("a client secret is required for the client credentials grant (or use the device code sign-in)")
	}
	if cfg.Authority == "" {
		cfg.Authority = DefaultAuthority
	}
	if cfg.RefreshToken == "" && cfg.DeviceCode && cfg.CacheFile != "" {
		cfg.RefreshToken = readCache(&cfg)
	}
	if cfg.DeviceCode && cfg.Prompt == nil && cfg.RefreshToken == "" {
		return nil, errors.New("the device code sign-in needs a prompt")
	}
	s := &Source{cfg: cfg, client: client, now: time.Now}
	if cfg.RefreshToken != "" {
		s.tok = &Token{Refresh: cfg.RefreshToken}
	}
	return s, nil
}

func (s *Source) endpoint(what string) string {
	return strings.TrimRight(s.cfg.Authority, "/") + "/" + url.PathEscape(s.cfg.Tenant) + "/oauth2/v2.0/" + what
}

// Authorize implements httpx.Authorizer: it sets a bearer token.
func (s *Source) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := s.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Invalidate implements httpx.Authorizer: it drops the access token (a
// refresh token is kept).
func (s *Source) Invalidate() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil {
		s.tok.Access = ""
	}
	return true
}

// Token returns a valid access token, fetching one when there is none or
// it is about to expire.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.Access != "" && s.now().Add(expirySkew).Before(s.tok.Expiry) {
		return s.tok.Access, nil
	}
	var tok *Token
	var err error
	switch {
	case s.tok != nil && s.tok.Refresh != "":
		tok, err = s.post(ctx, "token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.tok.Refresh},
			"client_id": {s.cfg.ClientID}, "scope": {DeviceScopes}})
		if tok != nil && tok.Refresh == "" {
			tok.Refresh = s.tok.Refresh // the old one stays valid when none is returned
		}
		var oe *Error
		if errors.As(err, &oe) && oe.Code == "invalid_grant" && s.cfg.DeviceCode && s.cfg.Prompt != nil {
			// Expired or revoked (a kept sign-in from an earlier run): sign
			// in again.
			tok, err = s.device(ctx)
		}
	case s.cfg.DeviceCode:
		tok, err = s.device(ctx)
	default:
		tok, err = s.post(ctx, "token", url.Values{"grant_type": {"client_credentials"}, "client_id": {s.cfg.ClientID},
			"client_secret": {s.cfg.ClientSecret}, "scope": {GraphScope}})
	}
	if err != nil {
		return "", err
	}
	if s.cfg.DeviceCode && s.cfg.CacheFile != "" && tok.Refresh != "" && (s.tok == nil || s.tok.Refresh != tok.Refresh) {
		if err := s.writeCache(tok.Refresh); err != nil {
			return "", err
		}
	}
	s.tok = tok
	return tok.Access, nil
}

// cache is the CacheFile's content.
type cache struct {
	Authority    string `json:"authority"`
	Tenant       string `json:"tenant"`
	ClientID     string `json:"client_id"`
	RefreshToken string `json:"refresh_token"`
}

// readCache returns the cached refresh token for this app, "" when there
// is none (a missing or unreadable file only means a new sign-in).
func readCache(cfg *Config) string {
	b, err := os.ReadFile(cfg.CacheFile)
	if err != nil {
		return ""
	}
	var c cache
	if json.Unmarshal(b, &c) != nil || c.Authority != cfg.Authority || c.Tenant != cfg.Tenant || c.ClientID != cfg.ClientID {
		return ""
	}
	return c.RefreshToken
}

// writeCache replaces the CacheFile (created 0600, renamed into place).
func (s *Source) writeCache(refresh string) error {
	b, err := json.Marshal(cache{Authority: s.cfg.Authority, Tenant: s.cfg.Tenant, ClientID: s.cfg.ClientID, RefreshToken: refresh})
	if err != nil {
		return err
	}
	dir, base := filepath.Split(s.cfg.CacheFile)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".*")
	if err != nil {
		return fmt.Errorf("keep the sign-in: %w", err)
	}
	defer os.Remove(f.Name())
	// CreateTemp makes the file 0600; Chmod says so for any umask.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keep the sign-in: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keep the sign-in: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keep the sign-in: %w", err)
	}
	if err := os.Rename(f.Name(), s.cfg.CacheFile); err != nil {
		return fmt.Errorf("keep the sign-in: %w", err)
	}
	return nil
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

// post sends a form to the token endpoint and decodes the token.
func (s *Source) post(ctx context.Context, what string, form url.Values) (*Token, error) {
	body, status, err := s.form(ctx, what, form)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, tokenError(body, status)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint: unreadable answer (HTTP %d)", status)
	}
	if !strings.EqualFold(tr.TokenType, "bearer") {
		return nil, fmt.Errorf("token endpoint: token type %q, want Bearer", tr.TokenType)
	}
	return &Token{Access: tr.AccessToken, Refresh: tr.RefreshToken, Expiry: s.now().Add(time.Duration(tr.ExpiresIn) * time.Second)}, nil
}

func tokenError(body []byte, status int) error {
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		return &e
	}
	return fmt.Errorf("token endpoint: HTTP %d", status)
}

// form posts form and returns the body and status of any answer; only
// transport errors and throttling that did not end are errors.
func (s *Source) form(ctx context.Context, what string, form url.Values) ([]byte, int, error) {
	u := s.endpoint(what)
	resp, body, err := s.client.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return req, nil
	})
	var se *httpx.StatusError
	if errors.As(err, &se) {
		return se.Body, se.Status, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("token endpoint: %w", err)
	}
	return body, resp.StatusCode, nil
}

type deviceResponse struct {
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int64  `json:"expires_in"`
	Interval        int64  `json:"interval"`
	Message         string `json:"message"`
}

// device runs the device authorization grant (RFC 8628 3.1–3.5).
func (s *Source) device(ctx context.Context) (*Token, error) {
	body, status, err := s.form(ctx, "devicecode", url.Values{"client_id": {s.cfg.ClientID}, "scope": {DeviceScopes}})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, tokenError(body, status)
	}
	var dr deviceResponse
	if err := json.Unmarshal(body, &dr); err != nil || dr.DeviceCode == "" {
		return nil, errors.New("device code endpoint: unreadable answer")
	}
	msg := dr.Message
	if msg == "" {
		msg = fmt.Sprintf("To sign in, open %s and enter the code %s.", dr.VerificationURI, dr.UserCode)
	}
	s.cfg.Prompt(msg)
	interval := time.Duration(max(dr.Interval, 1)) * time.Second
	deadline := s.now().Add(time.Duration(max(dr.ExpiresIn, 60)) * time.Second)
	sleep := s.client.Sleep
	if sleep == nil {
		sleep = httpx.Sleep
	}
	for s.now().Before(deadline) {
		if err := sleep(ctx, interval); err != nil {
			return nil, err
		}
		body, status, err := s.form(ctx, "token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"client_id": {s.cfg.ClientID}, "device_code": {dr.DeviceCode}})
		if err != nil {
			return nil, err
		}
		if status == http.StatusOK {
			var tr tokenResponse
			if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
				return nil, errors.New("token endpoint: unreadable answer")
			}
			return &Token{Access: tr.AccessToken, Refresh: tr.RefreshToken, Expiry: s.now().Add(time.Duration(tr.ExpiresIn) * time.Second)}, nil
		}
		var e Error
		if json.Unmarshal(body, &e) != nil {
			return nil, tokenError(body, status)
		}
		switch e.Code {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second // RFC 8628 3.5
		default:
			return nil, &e
		}
	}
	return nil, errors.New("device code sign-in: the code expired before the user signed in")
}
