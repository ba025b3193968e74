package smtp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"

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

// login routes the user, holds a frozen account for a while (Router.Await),
// connects to the backend and authenticates there. The client's answer is
// the backend's: the proxy reveals nothing before the backend accepted the
// credentials.
func (s *submissionSession) login(creds *wire.Credentials) error {
	key := creds.Identity()
	log := s.log.With("user", routes.Normalize(key), "mech", creds.Mechanism)
	if s.pc != nil && !s.pc.AuthAllowed() {
		log.Info("login refused: too many failures from this address")
		return errTempAuth
	}
	ctx := context.Background()
	dec, err := s.srv.opts.Router.Await(ctx, key)
	if err != nil {
		if errors.Is(err, proxy.ErrUnknown) {
			s.lookupResult("unknown")
			log.Debug("login for unknown account")
			s.authFailed()
			return gosmtp.ErrAuthFailed
		}
		s.lookupResult("frozen")
		log.Info("login refused temporarily", "err", err)
		return errTempAuth
	}
	s.lookupResult("ok")
	r := dec.Route
	log = log.With("backend", r.Backend)
	ep, ok := dec.Backend.Endpoint(proxy.Submission)
	if !ok || ep.Address == "" {
		log.Error("backend has no submission address")
		return errTempAuth
	}
	if ep.TLS != proxy.TLSImplicit && ep.TLS != proxy.TLSStartTLS && !ep.AllowPlaintext {
		log.Error("refusing to send credentials to a backend without TLS")
		return errNeedTLS
	}
	bc, err := s.dial(ctx, s.dialConfig(r.Backend, ep, false))
	if err != nil {
		return errTempAuth
	}
	var cl sasl.Client
	switch {
	case creds.Token():
		// Passthrough in every login mode: a master login cannot stand
		// in for a token, and only the backend can check the token (the
		// IMAP, POP3 and ManageSieve fronts do the same).
		cl = &tokenClient{mech: creds.Mechanism, msg: creds.Raw}
	case dec.Backend.Login == proxy.LoginMaster:
		cl = sasl.NewPlainClient(dec.Backend.MasterLogin(key))
	default:
		cl = sasl.NewPlainClient(creds.Authzid, creds.Authcid, creds.Password)
	}
	if err := bc.client.Auth(cl); err != nil {
		bc.broken = smtpErr(err) == nil
		bc.close()
		if se := smtpErr(err); se != nil && se.Code/100 == 5 {
			log.Debug("backend refused credentials", "code", se.Code)
			s.authFailed()
			return gosmtp.ErrAuthFailed
		}
		log.Warn("backend login failed", "err", err)
		return errTempAuth
	}
	s.bc = bc
	s.dec = dec
	s.mu.Lock()
	s.acct = r.Account
	s.mu.Unlock()
	s.untrack = s.srv.opts.Router.Track(dec, proxy.Submission, func(reason string) {
		s.end("4.4.2", reason)
	})
	log.Info("login")
	return nil
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
