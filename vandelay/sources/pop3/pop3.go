package pop3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/migadu/go-pop3/pop3client"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Source imports one POP3 maildrop.
type Source struct {
	cfg Options
	log *slog.Logger
	c   *pop3client.Client
}

var _ vandelay.MailSource = (*Source)(nil)

// Options are the settings of a POP3 source. A zero field means its
// default. A maildrop has one mailbox, INBOX, so there is no scope.
type Options struct {
	vandelay.Server
	vandelay.Login
	// Throttle limits the message and byte rate; nil means unlimited.
	Throttle *vandelay.Throttle
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// New returns a POP3 source for opts (a copy is kept).
func New(opts *Options) (vandelay.MailSource, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	if cfg.Address == "" || cfg.User == "" {
		return nil, fmt.Errorf("%w: pop3 source needs --server and --user", vandelay.ErrUsage)
	}
	return &Source{cfg: cfg, log: vandelay.LoggerOr(cfg.Logger).With("proto", "pop3")}, nil
}

// Describe implements vandelay.MailSource.
func (s *Source) Describe() archive.Source {
	login := s.cfg.User
	if s.cfg.MasterUser != "" {
		login = s.cfg.MasterUser
	}
	return archive.Source{Kind: "pop3", Endpoint: s.cfg.Address, Account: s.cfg.User, Login: login}
}

// Close implements vandelay.MailSource.
func (s *Source) Close() error {
	if s.c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.c.Quit(ctx)
	err := s.c.Close()
	s.c = nil
	return err
}

func (s *Source) dial(ctx context.Context) (*pop3client.Client, error) {
	cfg := s.cfg
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: bad address %q: %w", vandelay.ErrUsage, cfg.Address, err)
	}
	sn := cfg.ServerName
	if sn == "" {
		sn = host
	}
	to := cfg.Timeouts.OrDefaults()
	opts := pop3client.Options{MaxLineLength: 1 << 20, MaxResponseLines: 10_000_000,
		Dialer: &net.Dialer{Timeout: to.Connect, KeepAlive: 30 * time.Second}}
	tc := &tls.Config{ServerName: sn, InsecureSkipVerify: cfg.InsecureSkipVerify}
	switch cfg.TLS {
	case vandelay.TLSImplicit, "":
		opts.TLSConfig = tc
	case vandelay.TLSStartTLS:
		opts.TLSConfig, opts.STARTTLS = tc, true
	case vandelay.TLSNone:
		if !cfg.AllowCleartext {
			return nil, fmt.Errorf("%w: refusing to send credentials without TLS; pass --allow-cleartext for a trusted network", vandelay.ErrUsage)
		}
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q", vandelay.ErrUsage, cfg.TLS)
	}
	// pop3client applies a context's deadline to the handshake and the
	// greeting: bound them by the connect, TLS and greeting timeouts.
	bound := to.Connect + to.TLSHandshake + to.ResponseHeader
	dctx, cancel := context.WithTimeout(ctx, bound)
	c, err := pop3client.Dial(dctx, cfg.Address, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, cfg.Address, err)
	}
	// Not cancelled now: pop3client's guard goroutine for the greeting
	// may not have run yet, and seeing dctx done it would set the
	// connection's deadline in the past, so that the login fails with an
	// i/o timeout (seen under load, in a cut-over's POP3 listing). dctx
	// ends by itself at its deadline, long after the guard has returned.
	time.AfterFunc(bound, cancel)
	// The greeting's read deadline stays on the connection; later
	// commands without a deadline of their own must not inherit it.
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, cfg.Address, err)
	}
	user, authz := cfg.User, ""
	if cfg.MasterUser != "" {
		if strings.EqualFold(cfg.MasterForm, vandelay.MasterAuthzID) {
			user, authz = cfg.MasterUser, cfg.User
		} else {
			user = cfg.User + "*" + cfg.MasterUser
		}
	}
	if authz != "" || strings.EqualFold(cfg.Auth, vandelay.AuthPlain) {
		err = c.AuthPlain(ctx, authz, user, cfg.Password)
	} else {
		err = c.User(ctx, user, cfg.Password)
	}
	if err != nil {
		c.Close()
		var pe *pop3client.ProtocolError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: log in to %s as %s: %w", vandelay.ErrAuth, cfg.Address, cfg.User, err)
		}
		return nil, fmt.Errorf("%w: log in to %s: %w", vandelay.ErrConnect, cfg.Address, err)
	}
	return c, nil
}

// Sync implements vandelay.MailSource.
func (s *Source) Sync(ctx context.Context, run *archive.Run, progress vandelay.Progress) error {
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	s.c = c
	boxes, err := run.SyncMailboxes(ctx, []archive.MailboxInfo{{Path: "INBOX", Selectable: true, Role: archive.RoleInbox}},
		func(p string) bool { return p == "INBOX" })
	if err != nil {
		return err
	}
	inbox := boxes["INBOX"].ID
	uidl, err := c.Uidl(ctx)
	if err != nil {
		return fmt.Errorf("%w: UIDL: %w", vandelay.ErrConnect, err)
	}
	list, err := c.List(ctx)
	if err != nil {
		return fmt.Errorf("%w: LIST: %w", vandelay.ErrConnect, err)
	}
	sizes := map[int]int64{}
	for _, l := range list {
		sizes[l.Num] = l.Size
	}
	locs, err := run.Locations(ctx, inbox)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	var todo []int
	var todoBytes int64
	keyOf := map[int]string{}
	for _, u := range uidl {
		if present[u.UniqueID] {
			continue // a broken server repeating an id: first one wins
		}
		present[u.UniqueID] = true
		keyOf[u.Num] = u.UniqueID
		if _, ok := locs[u.UniqueID]; !ok {
			todo = append(todo, u.Num)
			todoBytes += sizes[u.Num]
		}
	}
	for k := range locs {
		if !present[k] {
			if err := run.Remove(ctx, inbox, k); err != nil {
				return err
			}
		}
	}
	prog := vandelay.ProgressOr(progress)
	prog.Discovered(len(todo), todoBytes)
	th := s.cfg.Throttle
	for _, n := range todo {
		if err := th.WaitMessage(ctx); err != nil {
			return err
		}
		if err := th.WaitBytes(ctx, sizes[n]); err != nil {
			return err
		}
		r, err := c.Retr(ctx, n)
		if err != nil {
			return fmt.Errorf("%w: RETR %d: %w", vandelay.ErrConnect, n, err)
		}
		buf := bytes.NewBuffer(make([]byte, 0, sizes[n]+1024))
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(buf, h), r)
		r.Close()
		if err != nil {
			return fmt.Errorf("%w: RETR %d: %w", vandelay.ErrConnect, n, err)
		}
		body := buf.Bytes()
		if err := run.Add(ctx, inbox, keyOf[n], &archive.NewMessage{Body: body, Hash: hex.EncodeToString(h.Sum(nil)),
			ReceivedAt: ReceivedDate(body)}); err != nil {
			return err
		}
		prog.Done(1, int64(len(body)))
	}
	return run.SetCursor(ctx, inbox, archive.Cursor{Extra: fmt.Sprint(len(uidl))})
}

// ReceivedDate guesses the delivery time of a message: the date of its
// newest (topmost) Received: header, else its Date: header; zero when
// neither parses.
func ReceivedDate(msg []byte) time.Time {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(msg[:end:end], "\r\n\r\n"...)))
	if err != nil {
		return time.Time{}
	}
	// Only the topmost Received header: the one the maildrop's own server
	// added on delivery.
	if rcv := m.Header["Received"]; len(rcv) > 0 {
		if i := strings.LastIndex(rcv[0], ";"); i >= 0 {
			if t, err := mail.ParseDate(strings.TrimSpace(rcv[0][i+1:])); err == nil {
				return t
			}
		}
	}
	if t, err := m.Header.Date(); err == nil {
		return t
	}
	return time.Time{}
}

// Probe asks the maildrop cheaply what changed since the archive's last
// import: one login and STAT, compared with the count of INBOX's cursor
// (known are archive.Overview's Cursors). Nothing is retrieved. A
// maildrop whose count is unchanged but whose messages were replaced
// one for one is not noticed; the next import finds it by UIDL.
func Probe(ctx context.Context, opts *Options, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	src, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	defer s.Close()
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.c = c
	n, size, err := c.Stat(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: STAT: %w", vandelay.ErrConnect, err)
	}
	return vandelay.CompareMailboxes([]vandelay.ProbeMailbox{{Path: "INBOX", Messages: int64(n), Size: int64(size), SizeFrom: "stat"}}, known), nil
}

// Check is the pre-flight check of a POP3 maildrop: login and STAT, whose
// octet count is the maildrop's size (RFC 1939 5). A refused login is
// vandelay.ErrAuth.
func Check(ctx context.Context, opts *Options) (*vandelay.SourceCheck, error) {
	src, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	defer s.Close()
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.c = c
	_, size, err := c.Stat(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: STAT: %v", vandelay.ErrConnect, err)
	}
	return &vandelay.SourceCheck{Size: int64(size), SizeFrom: "stat", Unknown: []string{"quota: POP3 reports none"}}, nil
}
