package vandelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
)

// The export's types, named here so that callers of the library need not
// import the adapter packages.
type (
	// ExportOptions are the settings of [Export]; see targets/jmap.Options.
	ExportOptions = tj.Options
	// ExportResult is what [Export] did; see targets/jmap.Result.
	ExportResult = tj.Result
	// ExportProgress is a snapshot of a running export.
	ExportProgress = tj.Progress
	// BasicAuth logs in to a target with HTTP Basic.
	BasicAuth = jmap.BasicAuth
	// BearerAuth logs in to a target with an OAuth bearer token.
	BearerAuth = jmap.BearerAuth
)

// RateLimiter throttles the requests to a target; the engine's per-backend
// limiter implements it.
type RateLimiter interface {
	// WaitBytes waits until n bytes may be sent.
	WaitBytes(ctx context.Context, n int64) error
	// WaitMessages waits until n messages may be sent.
	WaitMessages(ctx context.Context, n int) error
}

// TargetOptions say how to reach an account on a JMAP target.
type TargetOptions struct {
	// URL is the server's base URL, its /.well-known/jmap or the session
	// URL.
	URL string
	// Auth is BasicAuth or BearerAuth.
	Auth jmap.Auth
	// AccountID picks the account by id, AccountName by name (an account
	// an admin credential may act for). Default: the primary mail account.
	AccountID, AccountName string
	// MaxRetries bounds the retries of a request after 429/503 or a
	// dropped connection. Default: 6.
	MaxRetries int
	// InsecureSkipVerify disables certificate checks (test servers only).
	InsecureSkipVerify bool
	// Limiter, when set, makes every request wait on it: the body's bytes
	// on WaitBytes, a blob upload (a POST that is not a JSON API call) on
	// WaitMessages. Default: unlimited.
	Limiter RateLimiter
	// Timeouts bound connecting, the TLS handshake, each response's
	// header and idle reads. Default: the Default*Timeout constants.
	Timeouts Timeouts
	// Logger receives diagnostics, never credentials. Default: discard.
	Logger *slog.Logger
}

// Target is an open JMAP account: the client and the account's id.
type Target struct {
	Client    *jmap.Client
	AccountID string
}

// OpenTarget logs in, discovers the session and picks the account.
func OpenTarget(ctx context.Context, opts *TargetOptions) (*Target, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("%w: the target needs a URL", ErrUsage)
	}
	jo := &jmap.Options{Auth: opts.Auth, Logger: opts.Logger, MaxRetries: opts.MaxRetries}
	jo.HTTPClient = targetClient(&opts.Timeouts, opts.Limiter, opts.InsecureSkipVerify)
	c, err := jmap.Discover(ctx, opts.URL, jo)
	if err != nil {
		return nil, err
	}
	key := opts.AccountID
	if key == "" {
		key = opts.AccountName
	}
	id, err := c.Session().FindAccount(key)
	if err != nil {
		return nil, err
	}
	if opts.AccountID != "" && id != opts.AccountID {
		return nil, fmt.Errorf("jmap account id %q not in the session", opts.AccountID)
	}
	return &Target{Client: c, AccountID: id}, nil
}

// throttledTransport makes every request to a target wait on a limiter;
// the JMAP exporter has no throttle of its own.
type throttledTransport struct {
	base http.RoundTripper
	lim  RateLimiter
}

func (t throttledTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.ContentLength > 0 {
		if err := t.lim.WaitBytes(req.Context(), req.ContentLength); err != nil {
			return nil, err
		}
	}
	if req.Method == http.MethodPost && !strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		if err := t.lim.WaitMessages(req.Context(), 1); err != nil {
			return nil, err
		}
	}
	return t.base.RoundTrip(req)
}

// targetClient is the HTTP client of a target: the timeouts on its
// transport, behind the limiter when there is one. It has no overall
// timeout: uploads of large blobs take as long as they take, and the
// response-header and idle timeouts catch a hung server.
func targetClient(to *Timeouts, lim RateLimiter, insecure bool) *http.Client {
	tr := to.HTTPTransport()
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	var rt http.RoundTripper = tr
	if lim != nil {
		rt = throttledTransport{base: rt, lim: lim}
	}
	return &http.Client{Transport: rt}
}

// WarmUpIMAP logs in once over cleartext IMAP at addr: Cyrus creates a
// user's mailboxes at the first IMAP login, and its JMAP works only after
// it. A failure is only logged; the export that follows reports real ones.
// The whole warm-up is bounded by the connect and response-header
// timeouts of to (nil: the defaults), so that a hung target costs the
// export no more than that.
func WarmUpIMAP(ctx context.Context, addr, login, password string, to *Timeouts, log *slog.Logger) {
	log = LoggerOr(log)
	o := to.OrDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Connect+o.ResponseHeader)
	defer cancel()
	conn, err := o.DialSession(ctx, "tcp", addr)
	if err != nil {
		log.Debug("target imap warm-up", "err", err)
		return
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Login(login, password).Wait(); err != nil {
		log.Debug("target imap warm-up", "err", err)
		return
	}
	_ = c.Logout().Wait()
}

// Export reconciles the archive onto the target (see targets/jmap.Export):
// convergent, so a re-run after an interruption duplicates nothing.
func Export(ctx context.Context, a *archive.Archive, t *Target, opts *ExportOptions) (*ExportResult, error) {
	return tj.Export(ctx, a, t.Client, t.AccountID, opts)
}

// IsTargetRefusal reports whether err is the target's refusal (a JMAP
// problem) rather than a local failure.
func IsTargetRefusal(err error) bool {
	var pe *jmap.ProblemError
	return errors.As(err, &pe)
}

// The read-back's types (see targets/jmap.ReadBack).
type (
	// ReadBackOptions are the settings of [ReadBack].
	ReadBackOptions = tj.ReadBackOptions
	// ReadBackResult is what [ReadBack] found.
	ReadBackResult = tj.ReadBackResult
)

// ReadBack reads what arrived on the target after the cut-over into the
// archive (see targets/jmap.ReadBack), for a rollback to copy it back to
// the source.
func ReadBack(ctx context.Context, a *archive.Archive, t *Target, opts *ReadBackOptions) (*ReadBackResult, error) {
	return tj.ReadBack(ctx, a, t.Client, t.AccountID, opts)
}
