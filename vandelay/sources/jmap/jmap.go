package jmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// Options are the settings of a JMAP source. A zero field means its
// default.
type Options struct {
	// URL is the server's base URL, its /.well-known/jmap or the session
	// URL.
	URL string
	// Login holds the credentials: User and Password (HTTP Basic), or
	// Auth "bearer" with Token (RFC 6750); with MasterUser, Basic as the
	// master, acting for the account named User.
	vandelay.Login
	// AccountID and AccountName pick the account by id or by name.
	// Default: the account named User when MasterUser is set, else the
	// session's primary mail account.
	AccountID, AccountName string
	vandelay.Scope
	// Timeouts bound connecting, the TLS handshake, each response's
	// header and idle reads. Default: the vandelay.Default*Timeout
	// constants.
	Timeouts vandelay.Timeouts
	// InsecureSkipVerify disables certificate checks (test servers only).
	InsecureSkipVerify bool
	// Connections is the number of blob downloads in flight. Default: 4,
	// capped by Throttle's connections and the session's
	// maxConcurrentRequests.
	Connections int
	// NoBlobGet downloads every blob from the download URL. Default:
	// blobs up to 1 MiB are fetched in batches with Blob/get when the
	// account offers blob data in API responses (RFC 9404, or Cyrus's
	// draft), one request for many messages instead of one each.
	NoBlobGet bool
	// Throttle limits the downloads' rate; nil means unlimited.
	Throttle *vandelay.Throttle
	// MaxRetries bounds the retries of a request after 429/503 or a
	// dropped connection. Default: 6.
	MaxRetries int
	// Logger receives diagnostics, never credentials. Default: discard.
	Logger *slog.Logger
}

// Source imports one JMAP account. See the package documentation.
type Source struct {
	cfg Options
	log *slog.Logger

	mu     sync.Mutex
	target *vandelay.Target // opened on first use
	stats  Stats
}

var _ vandelay.MailSource = (*Source)(nil)

// Stats counts the protocol work of the last Sync (or Probe).
type Stats struct {
	// Requests and Calls are the API requests and method calls sent.
	Requests, Calls int64
	// Downloads counts blobs downloaded.
	Downloads int64
	// Full reports that the sync compared every Email (no usable state,
	// or the server could not calculate the changes since it).
	Full bool
}

// New returns a JMAP source for opts (a copy is kept). A nil opts is
// refused: a source needs at least a URL and a credential.
func New(opts *Options) (vandelay.MailSource, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: jmap source needs a URL (--url)", vandelay.ErrUsage)
	}
	if _, err := cfg.auth(); err != nil {
		return nil, err
	}
	if cfg.AccountID != "" && cfg.AccountName != "" {
		return nil, fmt.Errorf("%w: use either an account id or an account name, not both", vandelay.ErrUsage)
	}
	return &Source{cfg: cfg, log: vandelay.LoggerOr(cfg.Logger).With("proto", "jmap")}, nil
}

// bearer reports whether the login is a bearer token.
func (o *Options) bearer() bool {
	switch strings.ToLower(o.Auth) {
	case vandelay.AuthBearer, vandelay.AuthOAuthBearer, vandelay.AuthXOAUTH2:
		return true
	}
	return false
}

// auth is the credential the client sends.
func (o *Options) auth() (jc.Auth, error) {
	switch {
	case o.bearer():
		if o.Token == "" {
			return nil, fmt.Errorf("%w: bearer authentication needs an access token", vandelay.ErrUsage)
		}
		return jc.BearerAuth{Token: o.Token}, nil
	case o.Auth != "" && !strings.EqualFold(o.Auth, "basic") && !strings.EqualFold(o.Auth, vandelay.AuthPlain):
		return nil, fmt.Errorf("%w: jmap source auth %q: want basic or bearer", vandelay.ErrUsage, o.Auth)
	case o.MasterUser != "":
		if o.User == "" && o.AccountID == "" && o.AccountName == "" {
			return nil, fmt.Errorf("%w: a master login needs the account to act for (--user, --account-name or --account-id)", vandelay.ErrUsage)
		}
		return jc.BasicAuth{User: o.MasterUser, Password: o.Password}, nil
	case o.User == "":
		return nil, fmt.Errorf("%w: jmap source needs a user (HTTP Basic) or --auth bearer with a token", vandelay.ErrUsage)
	}
	return jc.BasicAuth{User: o.User, Password: o.Password}, nil
}

// accountKey is what picks the account in the session.
func (o *Options) accountKey() (id, name string) {
	switch {
	case o.AccountID != "":
		return o.AccountID, ""
	case o.AccountName != "":
		return "", o.AccountName
	case o.MasterUser != "":
		return "", o.User
	}
	return "", ""
}

// Describe implements vandelay.MailSource. The account is the one the
// options name (id, name or user): the session is not asked, so that
// Describe never needs the network.
func (s *Source) Describe() archive.Source {
	acct := s.cfg.AccountID
	if acct == "" {
		acct = s.cfg.AccountName
	}
	if acct == "" {
		acct = s.cfg.User
	}
	login := s.cfg.User
	if s.cfg.MasterUser != "" {
		login = s.cfg.MasterUser
	}
	if s.cfg.bearer() {
		login = "bearer"
	}
	return archive.Source{Kind: "jmap", Endpoint: s.cfg.URL, Account: acct, Login: login}
}

// Stats returns the protocol counters of the last Sync.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.target != nil {
		cs := s.target.Client.Stats()
		st.Requests, st.Calls, st.Downloads = cs.Requests.Load(), cs.Calls.Load(), cs.Downloads.Load()
	}
	return st
}

// Close implements vandelay.MailSource. The client holds no connection
// that needs closing beyond idle HTTP keep-alives.
func (s *Source) Close() error { return nil }

// open discovers the session and picks the account once per source: the
// export's own client (vandelay.OpenTarget), so that discovery, limits,
// retries and timeouts behave the same in both directions.
func (s *Source) open(ctx context.Context) (*vandelay.Target, error) {
	s.mu.Lock()
	t := s.target
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	auth, err := s.cfg.auth()
	if err != nil {
		return nil, err
	}
	id, name := s.cfg.accountKey()
	t, err = vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: s.cfg.URL, Auth: auth, AccountID: id, AccountName: name,
		MaxRetries: s.cfg.MaxRetries, Timeouts: s.cfg.Timeouts, InsecureSkipVerify: s.cfg.InsecureSkipVerify, Logger: s.log})
	if err != nil {
		switch {
		case errors.Is(err, jc.ErrAuthRefused):
			return nil, fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
		case ctx.Err() != nil:
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
	}
	if _, ok := t.Client.Session().MailCapability(t.AccountID); !ok {
		return nil, fmt.Errorf("%w: jmap account %s offers no mail (%s): nothing to import", vandelay.ErrUsage, t.AccountID, jc.CapMail)
	}
	s.mu.Lock()
	s.target = t
	s.mu.Unlock()
	return t, nil
}

// sourceErr classifies a failed request or method as the source's failure
// (vandelay.ErrConnect), keeping cancellation as it is.
func sourceErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %s: %w", vandelay.ErrConnect, what, err)
}
