// Package managesieve imports an account's Sieve scripts over ManageSieve
// (RFC 5804): LISTSCRIPTS names the scripts and the active one, GETSCRIPT
// fetches each script's bytes exactly as the server stores them.
//
// ManageSieve has no change token, so every run lists and fetches the
// whole set (a few kilobytes per account); the archive compares by name
// and SHA-256 ([archive.Archive.SyncSieve]) and writes only what changed.
// Connection security and logins are the IMAP source's: implicit TLS,
// STARTTLS or (with AllowCleartext) none; SASL PLAIN or LOGIN, master
// logins "user*master" (Dovecot) or PLAIN with an authzid, XOAUTH2 and
// OAUTHBEARER with a token. The source is only read, never changed.
package managesieve

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/sieveclient"
)

// Kind is the source kind in the registry and in the archive.
const Kind = "managesieve"

// Options configure [New]. Server and Login are the IMAP source's groups.
type Options struct {
	vandelay.Server
	vandelay.Login
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Source is one account's scripts at a ManageSieve server.
type Source struct {
	o   Options
	log *slog.Logger
}

var _ vandelay.SieveSource = (*Source)(nil)

// New checks the options and returns a source; it connects on Scripts.
func New(o *Options) (*Source, error) {
	if o == nil || o.Address == "" {
		return nil, fmt.Errorf("%w: a ManageSieve source needs a server address (host:port)", vandelay.ErrUsage)
	}
	if o.User == "" {
		return nil, fmt.Errorf("%w: a ManageSieve source needs the account's user name", vandelay.ErrUsage)
	}
	return &Source{o: *o, log: vandelay.LoggerOr(o.Logger)}, nil
}

// Describe returns the source's identity.
func (s *Source) Describe() archive.Source {
	login := s.o.User
	if s.o.MasterUser != "" {
		login = s.o.MasterUser
	}
	return archive.Source{Kind: Kind, Endpoint: s.o.Address, Account: s.o.User, Login: login}
}

// Scripts logs in, lists every script and fetches each one.
func (s *Source) Scripts(ctx context.Context) ([]archive.NewSieveScript, error) {
	c, err := sieveclient.Dial(ctx, &sieveclient.Options{Server: s.o.Server, Login: s.o.Login})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	list, err := c.ListScripts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: list sieve scripts at %s: %w", vandelay.ErrConnect, s.o.Address, err)
	}
	out := make([]archive.NewSieveScript, 0, len(list))
	for _, l := range list {
		body, err := c.GetScript(ctx, l.Name)
		if err != nil {
			return nil, fmt.Errorf("get sieve script %q from %s: %w", l.Name, s.o.Address, err)
		}
		out = append(out, archive.NewSieveScript{Name: l.Name, Body: body, Active: l.Active})
	}
	s.log.Debug("sieve scripts listed", "addr", s.o.Address, "scripts", len(out))
	if err := c.Logout(ctx); err != nil {
		s.log.Debug("sieve logout", "err", err)
	}
	return out, nil
}

// Close releases nothing: each Scripts call uses its own connection.
func (s *Source) Close() error { return nil }
