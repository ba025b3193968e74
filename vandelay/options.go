package vandelay

import (
	"log/slog"
	"regexp"
)

// The option groups below are shared by the typed options of the source
// kinds (imap.Options, pop3.Options, maildir.Options, takeout.Options):
// each kind embeds the groups it reads, so that a kind's options hold
// exactly its settings. Options are passed by value and copied by the
// constructors; changing them afterwards does not change a source.

// Server is where a network source connects and how it protects the
// connection.
type Server struct {
	// Address is host:port.
	Address string
	// TLS is the transport mode. Default: implicit.
	TLS TLSMode
	// ServerName overrides the TLS server name. Default: Address's host.
	ServerName string
	// InsecureSkipVerify disables certificate checks (test servers only).
	InsecureSkipVerify bool
	// AllowCleartext permits TLSNone; without it a cleartext source is
	// refused.
	AllowCleartext bool
	// Timeouts bound connecting, the TLS handshake, the greeting and idle
	// reads. Default: the Default*Timeout constants.
	Timeouts Timeouts
}

// Login is the account a network source reads and the credentials it
// logs in with.
type Login struct {
	// User is the account whose mail is imported.
	User string
	// Password is User's password, or the master's with MasterUser.
	Password string
	// MasterUser logs in as this master/admin user on User's behalf.
	MasterUser string
	// MasterForm is MasterStar or MasterAuthzID. Default: MasterStar.
	MasterForm string
	// Auth is one of the Auth* mechanisms. Default: AuthAuto.
	Auth string
	// Token is the OAuth 2.0 access token for XOAUTH2/OAUTHBEARER.
	Token string
}

// Scope selects the mailboxes and messages an import reads.
type Scope struct {
	// Include and Exclude select mailboxes by full path (UTF-8, source
	// separator); a mailbox is in scope when it matches some Include (or
	// Include is empty) and no Exclude.
	Include, Exclude []*regexp.Regexp
	// SubscribedOnly limits the import to subscribed mailboxes (and INBOX).
	SubscribedOnly bool
	// IncludeDeleted imports \Deleted messages too. Default: skip them.
	IncludeDeleted bool
}

// InScope reports whether a mailbox path passes Include and Exclude.
func (c *Scope) InScope(path string) bool {
	if len(c.Include) > 0 {
		ok := false
		for _, re := range c.Include {
			if re.MatchString(path) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, re := range c.Exclude {
		if re.MatchString(path) {
			return false
		}
	}
	return true
}

// LoggerOr returns l, or a discarding logger when l is nil.
func LoggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
