// Package sources is the registry of mail source kinds: one entry per kind
// ("imap", "pop3", "jmap", "maildir", "takeout", "exchange-graph", "exchange-ews") holding its constructor, its
// cheap change probe and the description of the settings it reads. It
// lives apart from package vandelay because each adapter imports vandelay.
//
// Callers describe a source once, as a [Spec] (from a plan's backend or
// from command-line flags); the kind's entry turns it into the adapter's
// own typed options (imap.Options, pop3.Options …), so that no adapter
// sees another's settings and nothing is shared after construction.
package sources

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/dav"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/ews"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/graph"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/oauth"
	"github.com/mailmig/mailmig/vandelay/sources/imap"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/sources/maildir"
	"github.com/mailmig/mailmig/vandelay/sources/managesieve"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
	"github.com/mailmig/mailmig/vandelay/sources/takeout"
	"github.com/mailmig/mailmig/vandelay/sources/webdav"
	davtarget "github.com/mailmig/mailmig/vandelay/targets/dav"
	managesievetarget "github.com/mailmig/mailmig/vandelay/targets/managesieve"
	webdavtarget "github.com/mailmig/mailmig/vandelay/targets/webdav"
)

// Spec describes a source as a plan backend or the command line gives it.
// Each kind reads the fields its [Kind.Settings] names and ignores the
// others. A Spec is copied into the adapter's options at construction.
type Spec struct {
	vandelay.Server
	vandelay.Login
	vandelay.Scope
	// URL is the endpoint of an HTTP source: a JMAP server's base URL,
	// its /.well-known/jmap or the session URL (jmap); exchange-graph's
	// Graph URL (default https://graph.microsoft.com/v1.0); exchange-ews's
	// EWS URL (https://host/EWS/Exchange.asmx). An http URL needs
	// AllowCleartext (exchange).
	URL string
	// AccountID and AccountName pick the JMAP account by id or by name
	// (an account an admin credential may act for). Default: the account
	// named like Login.User when a master user logs in, else the primary
	// mail account (jmap).
	AccountID, AccountName string
	// Path is a Maildir root or a Takeout .zip/.tgz/.mbox/directory; for
	// carddav and caldav the server's context path (default "/").
	Path string
	// NoCompress disables IMAP COMPRESS=DEFLATE.
	NoCompress bool
	// Connections is the number of parallel connections (imap). Default: 4.
	Connections int
	// Batch is the number of messages per UID FETCH (imap). Default: 100.
	Batch int
	// Throttle limits rate and connections; nil means unlimited.
	Throttle *vandelay.Throttle
	// OAuth is exchange-graph's app registration and grant (tenant,
	// client id, secret or device code).
	OAuth oauth.Config
	// AppRate is the requests per second all exchange-graph mailboxes of
	// one app registration share in this process. Default:
	// graph.DefaultAppRate.
	AppRate float64
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Setting names a group of settings a kind reads; the command line maps
// each to its flags.
type Setting string

// The settings of the source kinds.
const (
	SetServer      Setting = "server"      // Server: address and TLS
	SetLogin       Setting = "login"       // Login: user, password or token, master user
	SetUser        Setting = "user"        // Login.User only: the account's name
	SetPath        Setting = "path"        // Path
	SetScope       Setting = "scope"       // Scope.Include and Exclude
	SetSelection   Setting = "selection"   // Scope.SubscribedOnly and IncludeDeleted
	SetCompress    Setting = "compress"    // NoCompress
	SetConnections Setting = "connections" // Connections and Batch
	SetThrottle    Setting = "throttle"    // Throttle
	SetURL         Setting = "url"         // URL (and Server's TLS options)
	SetApp         Setting = "app"         // OAuth: tenant, client id, secret, device code
	SetAccount     Setting = "account"     // AccountID and AccountName (jmap)
)

// Kind is one registered source kind.
type Kind struct {
	// Summary describes the kind in one line.
	Summary string
	// Settings are the groups of Spec fields the kind reads.
	Settings []Setting
	// New creates a source.
	New func(*Spec) (vandelay.MailSource, error)
	// Probe asks the source cheaply what changed since the archive's
	// cursors (known), selecting and fetching nothing. Nil when the kind
	// has nothing to ask (a Takeout is a one-time export).
	Probe func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error)
	// Check is the pre-flight check: log in and report the size and
	// quota the source can tell without fetching. Nil when the kind has
	// no login (files: the probe shows that they can be read).
	Check func(ctx context.Context, s *Spec) (*vandelay.SourceCheck, error)
}

// Reads reports whether the kind reads the settings group.
func (k Kind) Reads(s Setting) bool {
	for _, x := range k.Settings {
		if x == s {
			return true
		}
	}
	return false
}

// Mail maps a source kind to its entry. Register adapters here,
// explicitly, never from init functions.
var Mail = map[string]Kind{
	"imap": {
		Summary:  "an IMAP account (RFC 9051/3501), incremental with CONDSTORE",
		Settings: []Setting{SetServer, SetLogin, SetScope, SetSelection, SetCompress, SetConnections, SetThrottle},
		New:      func(s *Spec) (vandelay.MailSource, error) { return imap.New(imapOptions(s)) },
		Probe: func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
			return imap.Probe(ctx, imapOptions(s), known)
		},
		Check: func(ctx context.Context, s *Spec) (*vandelay.SourceCheck, error) {
			return imap.Check(ctx, imapOptions(s))
		},
	},
	"pop3": {
		Summary:  "a POP3 maildrop (RFC 1939), incremental by UIDL",
		Settings: []Setting{SetServer, SetLogin, SetThrottle},
		New:      func(s *Spec) (vandelay.MailSource, error) { return pop3.New(pop3Options(s)) },
		Probe: func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
			return pop3.Probe(ctx, pop3Options(s), known)
		},
		Check: func(ctx context.Context, s *Spec) (*vandelay.SourceCheck, error) {
			return pop3.Check(ctx, pop3Options(s))
		},
	},
	"maildir": {
		Summary:  "a Maildir++ tree on disk",
		Settings: []Setting{SetPath, SetUser, SetScope, SetSelection},
		New:      func(s *Spec) (vandelay.MailSource, error) { return maildir.New(maildirOptions(s)) },
		Probe: func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
			return maildir.Probe(ctx, maildirOptions(s), known)
		},
	},
	"exchange-graph": {
		Summary:  "a Microsoft 365 mailbox through Microsoft Graph (OAuth2 app or device code), incremental with delta links",
		Settings: []Setting{SetURL, SetApp, SetUser, SetScope},
		New: func(s *Spec) (vandelay.MailSource, error) {
			o, err := graphOptions(s)
			if err != nil {
				return nil, err
			}
			return graph.New(o)
		},
		Probe: func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
			o, err := graphOptions(s)
			if err != nil {
				return nil, err
			}
			return graph.Probe(ctx, o, known)
		},
		Check: func(ctx context.Context, s *Spec) (*vandelay.SourceCheck, error) {
			o, err := graphOptions(s)
			if err != nil {
				return nil, err
			}
			return graph.Check(ctx, o)
		},
	},
	"exchange-ews": {
		Summary:  "an on-premises Exchange mailbox over EWS (NTLM or Basic, impersonation by a master user), incremental with SyncState",
		Settings: []Setting{SetURL, SetLogin, SetScope},
		New: func(s *Spec) (vandelay.MailSource, error) {
			o, err := ewsOptions(s)
			if err != nil {
				return nil, err
			}
			return ews.New(o)
		},
		Probe: func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
			o, err := ewsOptions(s)
			if err != nil {
				return nil, err
			}
			return ews.Probe(ctx, o, known)
		},
		Check: func(ctx context.Context, s *Spec) (*vandelay.SourceCheck, error) {
			o, err := ewsOptions(s)
			if err != nil {
				return nil, err
			}
			return ews.Check(ctx, o)
		},
	},
	"jmap": {
		Summary:  "a JMAP account (RFC 8620/8621), incremental with Mailbox/changes and Email/changes",
		Settings: []Setting{SetURL, SetLogin, SetAccount, SetScope, SetSelection, SetConnections, SetThrottle},
		New:      func(s *Spec) (vandelay.MailSource, error) { return jmapsrc.New(jmapOptions(s)) },
		Probe: func(ctx context.Context, s *Spec, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
			return jmapsrc.Probe(ctx, jmapOptions(s), known)
		},
		Check: func(ctx context.Context, s *Spec) (*vandelay.SourceCheck, error) {
			return jmapsrc.Check(ctx, jmapOptions(s))
		},
	},
	"takeout": {
		Summary:  "a Google Takeout (.zip, .tgz, .mbox or directory)",
		Settings: []Setting{SetPath, SetUser, SetScope},
		New: func(s *Spec) (vandelay.MailSource, error) {
			return takeout.New(&takeout.Options{Path: s.Path, User: s.User, Scope: s.Scope, Logger: s.Logger})
		},
	},
}

func imapOptions(s *Spec) *imap.Options {
	return &imap.Options{Server: s.Server, Login: s.Login, Scope: s.Scope, NoCompress: s.NoCompress,
		Connections: s.Connections, Batch: s.Batch, Throttle: s.Throttle, Logger: s.Logger}
}

// apiClient checks an API source's URL against the cleartext rule and
// returns the HTTP client with the Server's TLS options and timeouts.
func apiClient(s *Spec, kind string) (*http.Client, error) {
	u, err := url.Parse(s.URL)
	if s.URL != "" && (err != nil || u.Host == "") {
		return nil, fmt.Errorf("%w: %s: %q is not an absolute URL", vandelay.ErrUsage, kind, s.URL)
	}
	if s.URL != "" && u.Scheme == "http" && !s.AllowCleartext {
		return nil, fmt.Errorf("%w: %s: refusing credentials over plain http (%s) without --allow-cleartext", vandelay.ErrUsage, kind, s.URL)
	}
	tr := s.Timeouts.HTTPTransport()
	tr.TLSClientConfig = dav.TLSConfig(s.Server)
	return &http.Client{Transport: tr}, nil
}

func graphOptions(s *Spec) (*graph.Options, error) {
	hc, err := apiClient(s, "exchange-graph")
	if err != nil {
		return nil, err
	}
	return &graph.Options{URL: s.URL, User: s.User, OAuth: s.OAuth, AppRate: s.AppRate, Scope: s.Scope, HTTP: hc, Logger: s.Logger}, nil
}

func ewsOptions(s *Spec) (*ews.Options, error) {
	hc, err := apiClient(s, "exchange-ews")
	if err != nil {
		return nil, err
	}
	return &ews.Options{URL: s.URL, Login: s.Login, Scope: s.Scope, HTTP: hc, Logger: s.Logger}, nil
}

func jmapOptions(s *Spec) *jmapsrc.Options {
	return &jmapsrc.Options{URL: s.URL, Login: s.Login, AccountID: s.AccountID, AccountName: s.AccountName, Scope: s.Scope,
		Timeouts: s.Timeouts, InsecureSkipVerify: s.InsecureSkipVerify, Connections: s.Connections, Throttle: s.Throttle, Logger: s.Logger}
}

func pop3Options(s *Spec) *pop3.Options {
	return &pop3.Options{Server: s.Server, Login: s.Login, Throttle: s.Throttle, Logger: s.Logger}
}

func maildirOptions(s *Spec) *maildir.Options {
	return &maildir.Options{Path: s.Path, User: s.User, Scope: s.Scope, Logger: s.Logger}
}

// DataKind is one registered source kind of a non-mail data kind (issue
// 12: Sieve, CardDAV, CalDAV, WebDAV files and a Takeout's calendars,
// contacts and Drive). Each entry constructs the small items-oriented
// source interface of its data kind (vandelay.SieveSource …) from the same
// Spec as the mail kinds, so that flags and plan backends describe every
// kind one way.
type DataKind struct {
	// Summary describes the kind in one line.
	Summary string
	// Data is the data kind the source holds: "sieve", "contacts",
	// "calendars" or "files".
	Data string
	// Settings are the groups of Spec fields the kind reads.
	Settings []Setting
	// NewSieve creates a Sieve source (Data "sieve").
	NewSieve func(*Spec) (vandelay.SieveSource, error)
	// NewDAV creates an address-book or calendar source (Data "contacts"
	// or "calendars").
	NewDAV func(*Spec) (vandelay.DAVSource, error)
	// NewFiles creates a file-tree source (Data "files").
	NewFiles func(*Spec) (vandelay.FileSource, error)
	// Import runs one whole import of a kind read account-wide rather
	// than per collection (jmap-calendars: one /changes state for every
	// calendar, so that a no-change run is one request).
	Import func(ctx context.Context, s *Spec, a *archive.Archive, opts *vandelay.ImportOptions) (*vandelay.DAVImportResult, error)
}

// Data maps a non-mail source kind to its entry.
var Data = map[string]DataKind{
	vandelay.KindJMAPCalendars: {
		Summary:  "a JMAP account's calendars (urn:ietf:params:jmap:calendars), stored as iCalendar converted from JSCalendar, incremental with CalendarEvent/changes",
		Data:     "calendars",
		Settings: []Setting{SetURL, SetLogin, SetAccount},
		Import:   importJMAPCalendars,
	},
	"exchange-graph-rules": {
		Summary:  "a Microsoft 365 mailbox's inbox rules through Microsoft Graph, as one Sieve script (what Sieve cannot express is listed in its comments)",
		Data:     "sieve",
		Settings: []Setting{SetURL, SetApp, SetUser},
		NewSieve: func(s *Spec) (vandelay.SieveSource, error) {
			o, err := graphOptions(s)
			if err != nil {
				return nil, err
			}
			return graph.NewRules(o)
		},
	},
	"jmap-contacts": {
		Summary:  "a JMAP account's address books and contact cards (RFC 9610), each card archived as the vCard 4.0 of its JSContact (RFC 9555), incremental with ContactCard/changes",
		Data:     "contacts",
		Settings: []Setting{SetURL, SetLogin, SetAccount},
		NewDAV:   func(s *Spec) (vandelay.DAVSource, error) { return jmapsrc.NewContacts(jmapOptions(s)) },
	},
	"exchange-ews-rules": {
		Summary:  "an on-premises Exchange mailbox's inbox rules over EWS (GetInboxRules), as one Sieve script (what Sieve cannot express is listed in its comments)",
		Data:     "sieve",
		Settings: []Setting{SetURL, SetLogin},
		NewSieve: func(s *Spec) (vandelay.SieveSource, error) {
			o, err := ewsOptions(s)
			if err != nil {
				return nil, err
			}
			return ews.NewRules(o)
		},
	},
	"exchange-ews-contacts": {
		Summary:  "an on-premises Exchange mailbox's contact folders over EWS, as the vCards Exchange serves, incremental with SyncState",
		Data:     "contacts",
		Settings: []Setting{SetURL, SetLogin},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			o, err := ewsOptions(s)
			if err != nil {
				return nil, err
			}
			return ews.NewContacts(o)
		},
	},
	"exchange-ews-calendars": {
		Summary:  "an on-premises Exchange mailbox's calendar folders over EWS, as the iCalendar Exchange serves, incremental with SyncState",
		Data:     "calendars",
		Settings: []Setting{SetURL, SetLogin},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			o, err := ewsOptions(s)
			if err != nil {
				return nil, err
			}
			return ews.NewCalendars(o)
		},
	},
	"exchange-graph-contacts": {
		Summary:  "a Microsoft 365 mailbox's contacts through Microsoft Graph, as vCard 3.0, incremental with delta links",
		Data:     "contacts",
		Settings: []Setting{SetURL, SetApp, SetUser},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			o, err := graphOptions(s)
			if err != nil {
				return nil, err
			}
			return graph.NewContacts(o)
		},
	},
	"exchange-graph-calendars": {
		Summary:  "a Microsoft 365 mailbox's calendars through Microsoft Graph, as iCalendar (series with RRULE), read in full each run",
		Data:     "calendars",
		Settings: []Setting{SetURL, SetApp, SetUser},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			o, err := graphOptions(s)
			if err != nil {
				return nil, err
			}
			return graph.NewCalendars(o)
		},
	},
	"managesieve": {
		Summary:  "an account's Sieve scripts over ManageSieve (RFC 5804), the active one marked",
		Data:     "sieve",
		Settings: []Setting{SetServer, SetLogin},
		NewSieve: func(s *Spec) (vandelay.SieveSource, error) {
			return managesieve.New(&managesieve.Options{Server: s.Server, Login: s.Login, Logger: s.Logger})
		},
	},
	"carddav": {
		Summary:  "an account's address books over CardDAV (RFC 6352), incremental by sync-collection (RFC 6578)",
		Data:     "contacts",
		Settings: []Setting{SetServer, SetLogin},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			return dav.New(&dav.Options{Server: s.Server, Login: s.Login, Path: s.Path, Logger: s.Logger})
		},
	},
	"webdav": {
		Summary:  "an account's file tree over WebDAV (RFC 4918), walked by PROPFIND Depth 1, incremental by ETag",
		Data:     "files",
		Settings: []Setting{SetServer, SetLogin, SetPath},
		NewFiles: func(s *Spec) (vandelay.FileSource, error) {
			return webdav.New(&webdav.Options{Server: s.Server, Login: s.Login, Path: s.Path, Logger: s.Logger})
		},
	},
	"takeout-calendars": {
		Summary:  "the calendars of a Google Takeout (.zip, .tgz or directory): one per .ics, split into one object per UID",
		Data:     "calendars",
		Settings: []Setting{SetPath, SetUser},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			return takeout.NewCalendars(&takeout.DataOptions{Path: s.Path, User: s.User, Logger: s.Logger})
		},
	},
	"takeout-contacts": {
		Summary:  "the contacts of a Google Takeout (.zip, .tgz or directory): one address book per .vcf (label)",
		Data:     "contacts",
		Settings: []Setting{SetPath, SetUser},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			return takeout.NewContacts(&takeout.DataOptions{Path: s.Path, User: s.User, Logger: s.Logger})
		},
	},
	"takeout-drive": {
		Summary:  "the Drive files of a Google Takeout (.zip, .tgz or directory) with their folder tree",
		Data:     "files",
		Settings: []Setting{SetPath, SetUser},
		NewFiles: func(s *Spec) (vandelay.FileSource, error) {
			return takeout.NewDrive(&takeout.DataOptions{Path: s.Path, User: s.User, Logger: s.Logger})
		},
	},
	"caldav": {
		Summary:  "an account's calendars over CalDAV (RFC 4791), incremental by sync-collection (RFC 6578)",
		Data:     "calendars",
		Settings: []Setting{SetServer, SetLogin},
		NewDAV: func(s *Spec) (vandelay.DAVSource, error) {
			return dav.New(&dav.Options{Server: s.Server, Login: s.Login, Path: s.Path, CalDAV: true, Logger: s.Logger})
		},
	},
}

// DAVTargets maps a DAV target kind ("carddav") to its constructor
// (Server and Login of the Spec are read: the user's own password). The
// JMAP ContactCard/CalendarEvent targets join here when written.
var DAVTargets = map[string]func(ctx context.Context, s *Spec) (vandelay.DAVTarget, error){
	"carddav": func(ctx context.Context, s *Spec) (vandelay.DAVTarget, error) {
		return davtarget.Open(ctx, &davtarget.Options{Server: s.Server, Login: s.Login, Path: s.Path, Logger: s.Logger})
	},
	"caldav": func(ctx context.Context, s *Spec) (vandelay.DAVTarget, error) {
		return davtarget.Open(ctx, &davtarget.Options{Server: s.Server, Login: s.Login, Path: s.Path, CalDAV: true, Logger: s.Logger})
	},
}

// FileTargets maps a file target kind to its constructor (Server, Login
// and Path, the tree's root, of the Spec are read). The JMAP FileNode
// target, which needs an open session instead, is [JMAPFileTarget].
var FileTargets = map[string]func(ctx context.Context, s *Spec) (vandelay.FileTarget, error){
	"webdav": func(ctx context.Context, s *Spec) (vandelay.FileTarget, error) {
		return webdavtarget.Open(ctx, &webdavtarget.Options{Server: s.Server, Login: s.Login, Path: s.Path, Logger: s.Logger})
	},
}

// SieveTargets maps a Sieve target kind to its constructor (Server and
// Login of the Spec are read; a master user logs in with MasterForm, which
// for Cyrus is vandelay.MasterAuthzID). The JMAP SieveScript target (RFC
// 9661), which needs an open session instead, is [JMAPSieveTarget].
var SieveTargets = map[string]func(ctx context.Context, s *Spec) (vandelay.SieveTarget, error){
	"managesieve": func(ctx context.Context, s *Spec) (vandelay.SieveTarget, error) {
		return managesievetarget.Open(ctx, &managesievetarget.Options{Server: s.Server, Login: s.Login, Logger: s.Logger})
	},
}

// AllKinds returns the mail and data source kinds, sorted.
func AllKinds() []string {
	ks := Kinds()
	for k := range Data {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Kinds returns the registered mail kinds, sorted.
func Kinds() []string {
	var ks []string
	for k := range Mail {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
