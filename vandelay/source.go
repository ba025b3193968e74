package vandelay

import (
	"context"
	"errors"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// MailSource is one account's mail at a source (IMAP, POP3, JMAP,
// Maildir, Google Takeout). Sync makes the archive run match the source: it lists
// the source's mailboxes into run.SyncMailboxes, compares each mailbox with
// run.Locations and hands the differences to the run (Add, SetKeywords,
// Remove), and saves each mailbox's cursor when the mailbox is done.
//
// Sync returns nil only when every in-scope mailbox was synced completely;
// the caller then finishes the run as complete (tombstoning what vanished).
// An error that leaves some mailboxes unsynced is a [*PartialError]: the
// archive is consistent and the next run resumes.
//
// A MailSource is used by one goroutine; it may use several connections
// internally. Close releases its connections.
//
// Why not an iterator (Next() (*Message, error)) like mox's MsgSource:
// convergence needs the source's own change tracking (CONDSTORE, UIDL,
// file names), which differs per protocol, so each source drives the diff
// against the archive itself; the archive keeps the shared semantics
// (one message per content, moves as membership changes, tombstones).
type MailSource interface {
	// Describe returns the source's identity for the source-change guard.
	Describe() archive.Source
	// Sync brings run up to date with the source and reports the work
	// found and done to progress, which is never nil (see [ProgressOr]).
	// Progress belongs to the call, not to the source, so that the caller
	// can choose it per run.
	Sync(ctx context.Context, run *archive.Run, progress Progress) error
	// Close releases connections and files.
	Close() error
}

// TLSMode selects how a network source protects its connection.
type TLSMode string

// TLS modes.
const (
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (993, 995)
	TLSStartTLS TLSMode = "starttls" // upgrade with STARTTLS / STLS
	TLSNone     TLSMode = "none"     // cleartext; needs AllowCleartext
)

// Auth mechanisms for network sources.
const (
	AuthAuto        = ""            // SASL PLAIN when offered, else the LOGIN command
	AuthPlain       = "plain"       // SASL PLAIN (RFC 4616)
	AuthLogin       = "login"       // IMAP LOGIN / POP3 USER+PASS
	AuthXOAUTH2     = "xoauth2"     // Google/Microsoft XOAUTH2 with Token
	AuthOAuthBearer = "oauthbearer" // RFC 7628 with Token
	AuthBearer      = "bearer"      // HTTP bearer token (RFC 6750) with Token: JMAP sources
)

// Master-user login forms (Login.MasterForm).
const (
	MasterStar    = "star"    // log in as "user*master" with the master's password (Dovecot)
	MasterAuthzID = "authzid" // SASL PLAIN: authzid user, authcid master
)

// Progress receives an import's progress. Implementations must be safe for
// concurrent use.
type Progress interface {
	// Discovered adds work found at the source (messages to fetch).
	Discovered(messages int, bytes int64)
	// Done adds finished work.
	Done(messages int, bytes int64)
}

// ProgressOr returns p, or a no-op Progress when p is nil.
func ProgressOr(p Progress) Progress {
	if p == nil {
		return nopProgress{}
	}
	return p
}

type nopProgress struct{}

func (nopProgress) Discovered(int, int64) {}
func (nopProgress) Done(int, int64)       {}

// PartialError reports that some collections could not be synced; the
// archive is consistent and the next run resumes them.
type PartialError struct {
	// Failed maps a mailbox path to its error.
	Failed map[string]error
}

// Error names the failed mailboxes (the first with its error).
func (e *PartialError) Error() string {
	n := 0
	var one string
	for p, err := range e.Failed {
		n++
		if one == "" {
			one = p + ": " + err.Error()
		}
	}
	if n == 1 {
		return "1 mailbox not synced: " + one
	}
	return itoa(n) + " mailboxes not synced; first: " + one
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Error classes of an import; the CLI maps them to exit codes. Sources
// wrap their errors with one of these (fmt.Errorf("%w: …", ErrAuth)).
var (
	// ErrUsage: the configuration is invalid (bad flags, cleartext refused).
	ErrUsage = errors.New("invalid configuration")
	// ErrConnect: the source cannot be reached or dropped us for good.
	ErrConnect = errors.New("connection failed")
	// ErrAuth: the source refused the credentials.
	ErrAuth = errors.New("authentication failed")
)
