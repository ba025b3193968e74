package ews

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/Azure/go-ntlmssp"

	"github.com/mailmig/mailmig/vandelay"
)

// Authentication schemes of an EWS source (Options.Auth, the CLI's --auth).
const (
	// AuthAuto asks the server first (one anonymous GET of the EWS URL)
	// and uses what its WWW-Authenticate offers, NTLM before Basic: an
	// on-premises EWS virtual directory has Windows (NTLM/Negotiate)
	// authentication on by default and Basic often off.
	AuthAuto = ""
	// AuthBasic sends HTTP Basic on every request without asking.
	AuthBasic = "basic"
	// AuthNTLM authenticates each connection with an NTLMv2 handshake
	// (negotiate, challenge, authenticate) and never sends Basic.
	AuthNTLM = "ntlm"
)

// Offered reports which of the schemes this source speaks appear in a
// 401's WWW-Authenticate values. "Negotiate" counts as NTLM: IIS accepts
// a raw NTLM token under it (SPNEGO falls back to NTLM), and Kerberos
// needs a domain-joined client this tool is not.
func Offered(values []string) (ntlm, basic bool) {
	for _, v := range values {
		// One header may list several challenges separated by commas;
		// the scheme is the first token of each.
		for c := range strings.SplitSeq(v, ",") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(c), " ")
			switch strings.ToLower(scheme) {
			case "ntlm", "negotiate":
				ntlm = true
			case "basic":
				basic = true
			}
		}
	}
	return ntlm, basic
}

// authTransport sends each request with the scheme chosen for the
// server: Basic as the Authorizer set it, or NTLM through go-ntlmssp's
// Negotiator, which takes the credentials from the request's Basic
// header, removes it, and runs the handshake when the connection is not
// authenticated yet (NTLM authenticates a kept-alive connection, so the
// following requests on it go through at once).
type authTransport struct {
	base http.RoundTripper
	url  string
	log  *slog.Logger

	mu     sync.Mutex
	scheme string // AuthBasic or AuthNTLM once chosen
}

func newAuthTransport(base http.RoundTripper, rawURL, mode string, log *slog.Logger) *authTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &authTransport{base: base, url: rawURL, log: log, scheme: mode}
}

// RoundTrip implements http.RoundTripper.
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	scheme, err := t.choose(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if scheme == AuthNTLM {
		return ntlmssp.Negotiator{RoundTripper: t.base}.RoundTrip(req)
	}
	return t.base.RoundTrip(req)
}

// choose returns the scheme, asking the server once in AuthAuto.
func (t *authTransport) choose(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.scheme != AuthAuto {
		return t.scheme, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return "", err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return "", err
	}
	// Drained so that the connection is kept for the first request (and
	// NTLM's handshake then runs on it).
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		// The server does not ask for credentials on a GET: send Basic
		// and let the answers tell.
		t.scheme = AuthBasic
		t.log.Debug("EWS asked for no authentication on GET; using Basic", "status", resp.StatusCode)
		return t.scheme, nil
	}
	values := resp.Header.Values("WWW-Authenticate")
	ntlm, basic := Offered(values)
	switch {
	case ntlm:
		t.scheme = AuthNTLM
	case basic:
		t.scheme = AuthBasic
	default:
		return "", fmt.Errorf("%w: EWS offers neither NTLM nor Basic authentication (WWW-Authenticate: %s)",
			vandelay.ErrAuth, strings.Join(values, ", "))
	}
	t.log.Info("EWS authentication chosen from the server's offer", "scheme", t.scheme, "offered", strings.Join(values, ", "))
	return t.scheme, nil
}

// chosen returns the scheme in use ("" before the first request).
func (t *authTransport) chosen() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.scheme
}

// authMode checks an Options.Auth value.
func authMode(a string) (string, error) {
	switch m := strings.ToLower(a); m {
	case AuthAuto, AuthBasic, AuthNTLM:
		return m, nil
	}
	return "", fmt.Errorf("%w: exchange-ews authenticates with basic or ntlm (default: what the server offers, NTLM first), not %q", vandelay.ErrUsage, a)
}

// withAuth returns a copy of hc whose transport authenticates by mode.
func withAuth(hc *http.Client, rawURL, mode string, log *slog.Logger) (*http.Client, *authTransport) {
	c := *hc
	t := newAuthTransport(hc.Transport, rawURL, mode, log)
	c.Transport = t
	return &c, t
}
