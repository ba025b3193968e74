package smtp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/internal/wire"
	"github.com/mailmig/mailmig/proxy/routes"
)

// submissionSession relays an authenticated submission session to the
// user's backend: AUTH is answered by the backend (the proxy only routes),
// then MAIL, RCPT and DATA are relayed command by command, each answered
// with the backend's reply.
type submissionSession struct {
	*session

	bc      *backendConn
	dec     proxy.Decision
	untrack func()
}

var (
	_ gosmtp.Session     = (*submissionSession)(nil)
	_ gosmtp.AuthSession = (*submissionSession)(nil)
)

// AuthMechanisms lists the SASL mechanisms offered to clients (RFC 4954):
// PLAIN and LOGIN with a password, XOAUTH2 and OAUTHBEARER (RFC 7628) with
// a bearer token, which only the backend can check.
func (s *submissionSession) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login, wire.MechXOAuth2, wire.MechOAuthBearer}
}

// Auth returns the SASL server of one mechanism.
func (s *submissionSession) Auth(mech string) (sasl.Server, error) {
	if s.bc != nil {
		return nil, &gosmtp.SMTPError{Code: 503, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1}, Message: "Already authenticated"}
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			return s.login(&wire.Credentials{Mechanism: wire.MechPlain, Authzid: identity, Authcid: username, Password: password})
		}), nil
	case sasl.Login:
		return &loginServer{auth: func(username, password string) error {
			return s.login(&wire.Credentials{Mechanism: wire.MechLogin, Authcid: username, Password: password})
		}}, nil
	case wire.MechXOAuth2, wire.MechOAuthBearer:
		return &tokenServer{mech: mech, auth: s.login}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// authReplies is the submission reply table of failed logins
// (proxy.FailClass): one answer per class, whatever the cause.
var authReplies = map[proxy.FailClass]*gosmtp.SMTPError{
	proxy.FailUser:      gosmtp.ErrAuthFailed, // 535 5.7.8 (RFC 4954 6)
	proxy.FailTemporary: errTempAuth,          // 454 4.7.0
	proxy.FailInternal:  errInternalAuth,      // 454 4.3.0
}

// login routes the user, holds a frozen account for a while (Router.Await),
// connects to the backend and authenticates there. A master backend first
// checks the client's own credentials with a login of their own, then logs
// in as the user with the master credentials. The client is told it is
// logged in only after that; every failure before the credentials were
// verified is the same 535, after the failure delay.
func (s *submissionSession) login(creds *wire.Credentials) error {
	ctx := context.Background()
	start := time.Now()
	key := creds.Identity()
	log := s.log.With("user", proxy.LogUser(routes.Normalize(key)), "mech", creds.Mechanism)
	if s.pc != nil && !s.pc.AuthAllowed() {
		log.Info("login refused: too many failures from this address")
		return s.fail(ctx, start, proxy.FailTemporary)
	}
	logUser := log
	// route finds the backend's submission endpoint; fail is 0 when the
	// login may go on there.
	route := func(dec proxy.Decision, err error) (proxy.Endpoint, *slog.Logger, proxy.FailClass) {
		log := logUser
		switch {
		case errors.Is(err, proxy.ErrUnknown):
			s.lookupResult("unknown")
			log.Debug("login for unknown account")
			return proxy.Endpoint{}, log, proxy.FailUser
		case errors.Is(err, proxy.ErrFrozen):
			s.lookupResult("frozen")
			log.Info("login refused temporarily", "err", err)
			return proxy.Endpoint{}, log, proxy.FailTemporary
		case err != nil:
			s.lookupResult("error")
			log.Warn("route lookup", "err", err)
			return proxy.Endpoint{}, log, proxy.FailUser
		}
		log = log.With("backend", dec.Route.Backend)
		ep, ok := dec.Backend.Endpoint(proxy.Submission)
		switch {
		case !ok || ep.Address == "":
			log.Warn("backend has no submission endpoint")
			return ep, log, proxy.FailUser
		case ep.TLS != proxy.TLSImplicit && ep.TLS != proxy.TLSStartTLS && !ep.AllowPlaintext:
			log.Error("refusing to send credentials to a backend without TLS")
			return ep, log, proxy.FailUser
		case dec.Backend.ClientMaster(key):
			log.Info("login refused: a master user named by the client on a master-login backend")
			return ep, log, proxy.FailUser
		}
		if !dec.Frozen() {
			s.lookupResult("ok")
		}
		return ep, log, 0
	}
	own := func() sasl.Client {
		if creds.Token() {
			// Passthrough in every login mode: a master login cannot
			// stand in for a token, and only the backend can check the
			// token (the IMAP, POP3 and ManageSieve fronts do the same).
			return &tokenClient{mech: creds.Mechanism, msg: creds.Raw}
		}
		return sasl.NewPlainClient(creds.Authzid, creds.Authcid, creds.Password)
	}
	dec, err := s.srv.opts.Router.Lookup(ctx, key)
	ep, log, fail := route(dec, err)
	if fail != 0 {
		return s.fail(ctx, start, fail)
	}
	if dec.Frozen() {
		// A frozen account is held only once the backend that holds it
		// accepted the client's own credentials: the hold and its 454
		// would otherwise tell anyone that the account exists.
		bc, fail := s.backendAuth(ctx, log, dec, ep, start, own(), false)
		if fail != 0 {
			return s.fail(ctx, start, fail)
		}
		bc.close()
		dec, err = s.srv.opts.Router.Await(ctx, key)
		if ep, log, fail = route(dec, err); fail != 0 {
			return s.fail(ctx, start, fail)
		}
	}
	r := dec.Route
	master := dec.Backend.Login == proxy.LoginMaster && !creds.Token()
	if master {
		// The client's own credentials are checked by the backend first,
		// as on the other fronts; the master credentials prove nothing
		// about the client.
		bc, fail := s.backendAuth(ctx, log, dec, ep, start, own(), false)
		if fail != 0 {
			return s.fail(ctx, start, fail)
		}
		bc.close()
	}
	cl := own()
	if master {
		cl = sasl.NewPlainClient(dec.Backend.MasterLogin(key))
	}
	bc, fail := s.backendAuth(ctx, log, dec, ep, start, cl, master)
	if fail != 0 {
		return s.fail(ctx, start, fail)
	}
	s.bc = bc
	s.dec = dec
	if s.ec != nil {
		s.ec.passedPreAuth()
	}
	s.mu.Lock()
	s.acct = r.Account
	s.mu.Unlock()
	s.untrack = s.srv.opts.Router.Track(dec, proxy.Submission, func(reason string) {
		s.end("4.4.2", reason)
	})
	log.Info("login", "duration", time.Since(start))
	return nil
}

// backendAuth connects to the backend and authenticates with cl. fail is
// 0 on success, else the failure's class: verified says that the backend
// already accepted the client's own credentials (the master login of a
// master backend), the only case in which the client may learn of a
// backend problem. The backend's reply goes to the log only.
func (s *submissionSession) backendAuth(ctx context.Context, log *slog.Logger, dec proxy.Decision, ep proxy.Endpoint, start time.Time, cl sasl.Client, verified bool) (*backendConn, proxy.FailClass) {
	bc, err := s.dial(ctx, s.dialConfig(dec.Route.Backend, ep, false))
	if err != nil {
		if verified {
			return nil, proxy.FailTemporary
		}
		return nil, proxy.FailUser
	}
	err = bc.client.Auth(cl)
	if err == nil {
		return bc, 0
	}
	se := smtpErr(err)
	bc.broken = se == nil
	bc.close()
	switch {
	case se == nil:
		log.Warn("backend login failed", "err", err, "verified", verified)
		if verified {
			return nil, proxy.FailTemporary
		}
		return nil, proxy.FailUser
	case verified:
		log.Error("backend refused the master login after the user's own", "code", se.Code, "reply", se.Message)
		if se.Code/100 == 4 {
			return nil, proxy.FailTemporary
		}
		return nil, proxy.FailInternal
	case se.Code/100 == 5:
		s.failureDelay().Observe(time.Since(start))
		log.Debug("backend refused credentials", "code", se.Code, "reply", se.Message)
	default:
		log.Warn("backend could not check credentials", "code", se.Code, "reply", se.Message)
	}
	return nil, proxy.FailUser
}

// fail answers a failed login from the reply table: a FailUser failure
// counts toward the failed-login limit, and every failure waits for the
// failure delay from start.
func (s *submissionSession) fail(ctx context.Context, start time.Time, class proxy.FailClass) error {
	if class == proxy.FailUser {
		s.authFailed()
	}
	s.failureDelay().Wait(ctx, start)
	return authReplies[class]
}

// failureDelay is the proxy.Server's failure delay for connections served
// through it, else Options.FailureDelay.
func (s *submissionSession) failureDelay() *proxy.FailureDelay {
	if s.pc != nil {
		return s.pc.Server().FailureDelay()
	}
	return s.srv.opts.FailureDelay
}

// authFailed records a failed login (per-IP limit and metrics).
func (s *submissionSession) authFailed() {
	if s.pc != nil {
		s.pc.AuthFailed()
		return
	}
	s.metrics().Inc(proxy.MetricAuthFailures, "proto", string(ModeSubmission))
}

// Mail relays MAIL FROM after checking that the route still holds.
func (s *submissionSession) Mail(from string, opts *gosmtp.MailOptions) error {
	if s.bc == nil {
		return gosmtp.ErrAuthRequired
	}
	if s.ending() {
		s.stopReading()
		return errMoved
	}
	s.bc.reset()
	if err := s.bc.client.Mail(from, opts); err != nil {
		return s.relayErr(err)
	}
	s.bc.inTx = true
	s.setTx(true)
	return nil
}

// Rcpt relays RCPT TO.
func (s *submissionSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	if s.bc == nil {
		return gosmtp.ErrAuthRequired
	}
	if err := s.bc.client.Rcpt(to, opts); err != nil {
		return s.relayErr(err)
	}
	return nil
}

// Data relays the message and answers with the backend's reply.
func (s *submissionSession) Data(r io.Reader) error {
	defer s.setTx(false)
	if s.bc == nil {
		return gosmtp.ErrAuthRequired
	}
	w, err := s.bc.client.Data()
	if err != nil {
		s.bc.inTx = false
		return s.relayErr(err)
	}
	n, err := io.Copy(w, r)
	s.metrics().Add(proxy.MetricBytes, n, "proto", string(ModeSubmission), "backend", s.dec.Route.Backend, "direction", "up")
	if err != nil {
		s.lost()
		if se := smtpErr(err); se != nil {
			return se
		}
		return errLost
	}
	s.bc.inTx = false
	resp, err := w.CloseWithResponse()
	if err != nil {
		return s.relayErr(err)
	}
	return splitStatus(250, resp.StatusText)
}

// relayErr passes a backend reply through; a transport failure ends the
// session, since the backend session is gone.
func (s *submissionSession) relayErr(err error) error {
	if se := smtpErr(err); se != nil {
		return se
	}
	s.log.Warn("backend lost", "backend", s.dec.Route.Backend, "err", err)
	s.lost()
	s.stopReading()
	return errLost
}

func (s *submissionSession) lost() {
	if s.bc != nil {
		s.bc.broken = true
		s.bc.close()
		s.bc = nil
	}
}

// Reset ends the transaction on the backend.
func (s *submissionSession) Reset() {
	if s.bc != nil {
		s.bc.reset()
		if s.bc.broken {
			s.lost()
		}
	}
	s.setTx(false)
}

// Logout closes the backend session.
func (s *submissionSession) Logout() error {
	if s.bc != nil {
		s.bc.close()
		s.bc = nil
	}
	if s.untrack != nil {
		s.untrack()
	}
	s.logout()
	return nil
}

// loginServer is the server side of the obsolete but common SASL LOGIN
// mechanism (draft-murchison-sasl-login), which go-sasl lacks.
type loginServer struct {
	auth     func(username, password string) error
	step     int
	username string
}

var _ sasl.Server = (*loginServer)(nil)

// Next implements sasl.Server.
func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		if bytes.ContainsRune(response, 0) {
			return nil, false, errors.New("malformed username")
		}
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.username, string(response))
	}
	return nil, false, errors.New("unexpected response")
}

// errMalformedAuth answers a token mechanism message that is not one.
var errMalformedAuth = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication message"}

// tokenServer is the server side of XOAUTH2 and OAUTHBEARER (RFC 7628):
// one client message carrying the user and a bearer token. Without an
// initial response the client gets an empty challenge first. The message
// is only parsed for routing; auth relays it unchanged to the backend,
// whose answer becomes the client's.
type tokenServer struct {
	mech string
	auth func(*wire.Credentials) error
	step int
}

var _ sasl.Server = (*tokenServer)(nil)

// Next implements sasl.Server.
func (t *tokenServer) Next(response []byte) (challenge []byte, done bool, err error) {
	if t.step == 0 && response == nil {
		t.step = 1
		return []byte{}, false, nil
	}
	if t.step > 1 {
		return nil, false, errors.New("unexpected response")
	}
	t.step = 2
	var creds *wire.Credentials
	if t.mech == wire.MechXOAuth2 {
		creds, err = wire.DecodeXOAuth2(response)
	} else {
		creds, err = wire.DecodeOAuthBearer(response)
	}
	if err != nil {
		return nil, false, errMalformedAuth
	}
	return nil, true, t.auth(creds)
}

// tokenClient logs in at the backend with the client's own XOAUTH2 or
// OAUTHBEARER message: as the initial response when the AUTH command stays
// within SMTP's 512-octet command line, else (real tokens are often 1-3
// KB) in answer to the first, empty challenge, as RFC 4954 section 4
// requires. A backend that refuses the token sends an error challenge (a
// JSON status); it is answered as the mechanism wants — an empty response
// for XOAUTH2, a single ^A for OAUTHBEARER (RFC 7628 3.2.3) — so that the
// backend sends its final 535.
type tokenClient struct {
	mech   string
	msg    []byte
	sent   bool // msg went out
	failed bool // the error challenge was answered
}

var _ sasl.Client = (*tokenClient)(nil)

// maxIRLine is the longest AUTH command sent with an initial response,
// CRLF included (RFC 5321 4.5.3.1.4).
const maxIRLine = 512

// Start implements sasl.Client.
func (c *tokenClient) Start() (mech string, ir []byte, err error) {
	if len("AUTH "+c.mech+" \r\n")+base64.StdEncoding.EncodedLen(len(c.msg)) > maxIRLine {
		return c.mech, nil, nil
	}
	c.sent = true
	return c.mech, c.msg, nil
}

// Next implements sasl.Client.
func (c *tokenClient) Next(challenge []byte) ([]byte, error) {
	switch {
	case !c.sent:
		c.sent = true
		return c.msg, nil
	case c.failed:
		return nil, errors.New("backend sent a second challenge after a token")
	}
	c.failed = true
	reply, _ := wire.TokenErrorReply(c.mech)
	return reply, nil
}
