package plan

import (
	"fmt"
	"net/netip"
	"time"
)

// Migration is a fully decoded and validated plan: the desired state of a
// migration. It is built by [Load], [LoadFile], [LoadDir] or [Parse] and is
// read-only afterwards; it holds no HCL types, so the rest of mailmig never
// touches HCL. When loading reports errors the Migration is a best-effort
// value: everything that could be decoded is present, the rest is zero.
type Migration struct {
	// Dir is the directory of the plan; relative paths in the plan (state,
	// routes, file(), csv(), TLS files) are resolved against it.
	Dir string
	// Files are the plan's source files in load order.
	Files []string
	// Sources holds the bytes of the plan files and of the accounts files
	// read by csv() (unless their first row is not an accounts header),
	// keyed by the file name used in diagnostic ranges. The diagnostics
	// renderer uses it for snippets. Files read by file() are left out:
	// they hold secrets.
	Sources map[string][]byte `json:"-"`
	// Hash is the hex SHA-256 of the plan files' contents in load order and
	// of the CSV files read by csv(), each preceded by its name relative to
	// Dir (files read by file() hold secrets and are left out). The journal
	// records it.
	Hash string

	// State says where the journal and lock live.
	State State
	// Routes says where the proxy's route table lives.
	Routes Routes
	// Backends are the backend blocks in declaration order.
	Backends []*Backend
	// AccountGroups are the accounts blocks in declaration order.
	AccountGroups []*AccountGroup
	// Accounts is the flattened list of every account of every group, in
	// declaration order, with per-account overrides applied.
	Accounts []*Account
	// Waves are the wave blocks sorted topologically by after (a wave comes
	// after every wave it names); ties keep declaration order.
	Waves []*Wave
	// Proxy is the proxy block, or nil when the plan has none.
	Proxy *Proxy
	// Variables are the variable blocks in declaration order, with their
	// final values.
	Variables []*Variable

	// inputs are the values of env(), file(), -var and MAILMIG_VAR_ that
	// output must hide (see InputValues).
	inputs []string

	// Lookup indexes built by the loader; the lookup methods fall back to
	// a scan when they are nil (a Migration built by hand in a test).
	backendIdx map[string]*Backend
	accountIdx map[string]*Account
	waveIdx    map[string]*Wave
}

// index builds the lookup indexes. The loader calls it once, at the end.
func (m *Migration) index() {
	m.backendIdx = make(map[string]*Backend, len(m.Backends))
	for _, b := range m.Backends {
		m.backendIdx[b.Name] = b
	}
	if m.accountIdx == nil {
		m.accountIdx = make(map[string]*Account, len(m.Accounts))
		for _, a := range m.Accounts {
			m.accountIdx[normAddress(a.Address)] = a
		}
	}
	m.waveIdx = make(map[string]*Wave, len(m.Waves))
	for _, w := range m.Waves {
		m.waveIdx[w.Name] = w
	}
}

// Backend returns the backend with the given name, or nil.
func (m *Migration) Backend(name string) *Backend {
	if m.backendIdx != nil {
		return m.backendIdx[name]
	}
	for _, b := range m.Backends {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// AccountGroup returns the accounts block with the given name, or nil.
func (m *Migration) AccountGroup(name string) *AccountGroup {
	for _, g := range m.AccountGroups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Account returns the account with the given address (compared
// case-insensitively), or nil.
func (m *Migration) Account(address string) *Account {
	key := normAddress(address)
	if m.accountIdx != nil {
		return m.accountIdx[key]
	}
	for _, a := range m.Accounts {
		if normAddress(a.Address) == key {
			return a
		}
	}
	return nil
}

// Wave returns the wave with the given name, or nil.
func (m *Migration) Wave(name string) *Wave {
	if m.waveIdx != nil {
		return m.waveIdx[name]
	}
	for _, w := range m.Waves {
		if w.Name == name {
			return w
		}
	}
	return nil
}

// Variable returns the variable with the given name, or nil.
func (m *Migration) Variable(name string) *Variable {
	for _, v := range m.Variables {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// Range is a position in a source file, kept so that later stages (the
// engine) can point back at the plan. Lines and columns start at 1; columns
// count Unicode characters. A zero Range means "no position".
type Range struct {
	// Filename is the file name as given to the loader.
	Filename string `json:"filename"`
	// Line and Column are the start; EndLine and EndColumn the end
	// (exclusive), zero when unknown.
	Line      int `json:"line"`
	Column    int `json:"column"`
	EndLine   int `json:"end_line,omitempty"`
	EndColumn int `json:"end_column,omitempty"`
}

// String formats the range as file:line:col.
func (r Range) String() string {
	if r.Filename == "" && r.Line == 0 {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Line, r.Column)
}

// IsZero reports whether r is the zero Range.
func (r Range) IsZero() bool { return r == Range{} }

// State is the state block: where the journal, snapshots and the apply lock
// live.
type State struct {
	// Path is the state directory. Default: "state/" next to the plan.
	Path string
	// Postgres, when set, keeps the journal, its snapshot and the apply
	// lock in PostgreSQL instead of Path (which then keeps only the
	// archives and logs). Default: nil (local files).
	Postgres *Postgres
	// OutageWait is how long an apply waits for a PostgreSQL database
	// (the state's or the route table's) that went away before it stops:
	// journal records, route writes and the barrier retry, and the
	// apply lock is taken again on a new session. 0 stops at once.
	// Default: DefaultOutageWait.
	OutageWait time.Duration
	// DeclRange is the block's position, or zero when the block is absent.
	DeclRange Range
}

// DefaultOutageWait is the default of State.OutageWait.
const DefaultOutageWait = 60 * time.Second

// Routes is the routes block: the proxy's route table.
type Routes struct {
	// SQLite is the route table's SQLite file. Default: "state/routes.db"
	// next to the plan.
	SQLite string
	// Postgres, when set, keeps the route table in PostgreSQL, shared by
	// a fleet of proxies, instead of SQLite. Default: nil.
	Postgres *Postgres
	// Lease is how long a proxy registered in PostgreSQL counts as alive
	// after its last heartbeat, and how long it may lose the database
	// before it refuses frozen accounts. Default: 10s.
	Lease time.Duration
	// BarrierTimeout is how long a cut-over waits for every live proxy to
	// acknowledge a freeze before it rolls the account back. Default: 30s.
	BarrierTimeout time.Duration
	// DeclRange is the block's position, or zero when the block is absent.
	DeclRange Range
}

// Default route leases and barrier timeouts.
const (
	DefaultRouteLease     = 10 * time.Second
	DefaultBarrierTimeout = 30 * time.Second
)

// Postgres names a PostgreSQL database.
type Postgres struct {
	// DSN is the connection string: a postgres:// URL or key=value
	// pairs, normally without the password.
	DSN string
	// PasswordRef is the password_ref ("env:NAME" or "file:PATH") the
	// password came from; "" when the DSN carries it (or none is needed).
	PasswordRef string
	// Password is the resolved password_ref.
	Password Secret
	// Range is the position of the postgres attribute.
	Range Range
}

// Protocol names an endpoint kind of a backend.
type Protocol string

// The endpoint protocols a backend may declare.
const (
	ProtoIMAP        Protocol = "imap"
	ProtoPOP3        Protocol = "pop3"
	ProtoManageSieve Protocol = "managesieve"
	ProtoSMTP        Protocol = "smtp"
	ProtoSubmission  Protocol = "submission"
	ProtoLMTP        Protocol = "lmtp"
	ProtoJMAP        Protocol = "jmap"
	ProtoCalDAV      Protocol = "caldav"
	ProtoCardDAV     Protocol = "carddav"
	ProtoWebDAV      Protocol = "webdav"
	ProtoMaildir     Protocol = "maildir"
	ProtoTakeout     Protocol = "takeout"
	ProtoExchange    Protocol = "exchange"
)

// Protocols lists every endpoint protocol in canonical order.
var Protocols = []Protocol{
	ProtoIMAP, ProtoPOP3, ProtoManageSieve, ProtoSMTP, ProtoSubmission, ProtoLMTP,
	ProtoJMAP, ProtoCalDAV, ProtoCardDAV, ProtoWebDAV,
	ProtoMaildir, ProtoTakeout, ProtoExchange,
}

// String returns the protocol's block name.
func (p Protocol) String() string { return string(p) }

// TLSMode says how an endpoint speaks TLS.
type TLSMode string

// The TLS modes.
const (
	// TLSImplicit: TLS from the first byte (993, 995, 465, https).
	TLSImplicit TLSMode = "implicit"
	// TLSStartTLS: plain text upgraded with STARTTLS/STLS.
	TLSStartTLS TLSMode = "starttls"
	// TLSNone: plain text only. Use on loopback or trusted networks.
	TLSNone TLSMode = "none"
)

// String returns the mode as written in the plan.
func (m TLSMode) String() string { return string(m) }

// LoginMode says how mailmig and the proxy log in to a backend for a user.
type LoginMode string

// The login modes.
const (
	// LoginPassthrough replays the user's own credentials.
	LoginPassthrough LoginMode = "passthrough"
	// LoginMaster logs in with the backend's master credentials on the
	// user's behalf (Dovecot "user*master", SASL authorization identity).
	LoginMaster LoginMode = "master"
)

// String returns the mode as written in the plan.
func (m LoginMode) String() string { return string(m) }

// ProxyProtocol says whether connections to a backend endpoint start with a
// HAProxy PROXY protocol header carrying the real client address.
type ProxyProtocol string

// The PROXY protocol settings.
const (
	ProxyProtocolNone ProxyProtocol = ""
	ProxyProtocolV1   ProxyProtocol = "v1"
	ProxyProtocolV2   ProxyProtocol = "v2"
)

// String returns the setting as written in the plan ("none" for off).
func (p ProxyProtocol) String() string {
	if p == ProxyProtocolNone {
		return "none"
	}
	return string(p)
}

// DataKind is a kind of data migrated per account.
type DataKind string

// The data kinds.
const (
	DataMail      DataKind = "mail"
	DataSieve     DataKind = "sieve"
	DataCalendars DataKind = "calendars"
	DataContacts  DataKind = "contacts"
	DataFiles     DataKind = "files"
)

// DataKinds lists every data kind in canonical order.
var DataKinds = []DataKind{DataMail, DataSieve, DataCalendars, DataContacts, DataFiles}

// String returns the kind as written in the plan.
func (k DataKind) String() string { return string(k) }

// Backend is a backend block: one mail system, with an endpoint per
// protocol it speaks.
type Backend struct {
	// Name is the block label; references are written backend.<Name>.
	Name string
	// Endpoints are the declared endpoints in canonical protocol order
	// (see [Protocols]).
	Endpoints []*Endpoint
	// Maildir, Takeout and Exchange are the file and API sources, nil when
	// not declared. They also appear in Endpoints.
	Maildir  *Maildir
	Takeout  *Takeout
	Exchange *Exchange
	// Login is how to log in for a user. Default: passthrough.
	Login LoginMode
	// Master holds the master credentials; set when Login is master.
	Master *Master
	// Limits are the shared rate and connection limits for this backend.
	Limits Limits
	// Timeouts bound each network step of talking to the backend.
	Timeouts Timeouts
	// DeclRange is the position of the block header.
	DeclRange Range
}

// Endpoint returns the backend's endpoint for p, or nil.
func (b *Backend) Endpoint(p Protocol) *Endpoint {
	for _, e := range b.Endpoints {
		if e.Protocol == p {
			return e
		}
	}
	return nil
}

// Provides reports whether the backend has an endpoint that can hold data of
// kind k (mail: imap, pop3, jmap, maildir, takeout, exchange; sieve:
// managesieve, jmap; calendars: caldav, jmap, takeout, exchange; contacts:
// carddav, jmap, takeout, exchange; files: webdav, jmap, takeout).
func (b *Backend) Provides(k DataKind) bool {
	for _, e := range b.Endpoints {
		for _, p := range dataProtocols[k] {
			if e.Protocol == p {
				return true
			}
		}
	}
	return false
}

var dataProtocols = map[DataKind][]Protocol{
	DataMail:      {ProtoIMAP, ProtoPOP3, ProtoJMAP, ProtoMaildir, ProtoTakeout, ProtoExchange},
	DataSieve:     {ProtoManageSieve, ProtoJMAP},
	DataCalendars: {ProtoCalDAV, ProtoJMAP, ProtoTakeout, ProtoExchange},
	DataContacts:  {ProtoCardDAV, ProtoJMAP, ProtoTakeout, ProtoExchange},
	DataFiles:     {ProtoWebDAV, ProtoJMAP, ProtoTakeout},
}

// Endpoint is one protocol block of a backend. Network protocols (imap,
// pop3, managesieve, smtp, submission, lmtp) have an Address; HTTP
// protocols (jmap, caldav, carddav, webdav) have a URL; maildir and takeout
// have a Path; exchange has a URL or nothing (Microsoft Graph).
type Endpoint struct {
	// Protocol is the block name.
	Protocol Protocol
	// Address is host:port for network protocols.
	Address string
	// URL is the base or session URL for HTTP protocols and exchange.
	URL string
	// Path is the directory (template) for maildir and takeout.
	Path string
	// TLS is the TLS mode. Default: starttls for imap, pop3, managesieve,
	// smtp and submission; none for lmtp; for HTTP endpoints implicit when
	// the URL is https, else none.
	TLS TLSMode
	// CAFile is a PEM file of CAs to trust instead of the system roots.
	// Default: none (system roots).
	CAFile string
	// InsecureSkipVerify disables certificate verification. Default: false.
	InsecureSkipVerify bool
	// ServerName overrides the TLS server name. Default: the host of
	// Address or URL.
	ServerName string
	// ProxyProtocol sends a PROXY protocol header first (network
	// protocols only). Default: the backend's proxy_protocol, else none.
	ProxyProtocol ProxyProtocol
	// DeclRange is the position of the block.
	DeclRange Range
}

// Maildir is a maildir source block.
type Maildir struct {
	// Path is the maildir of an account; %u is replaced by the source
	// login, %d by the domain and %n by the local part of the address.
	Path string
	// DeclRange is the position of the block.
	DeclRange Range
}

// Takeout is a Google Takeout source block.
type Takeout struct {
	// Path is the unpacked Takeout directory (or .zip/.tgz) of an account;
	// %u, %d and %n are replaced as for [Maildir].
	Path string
	// DeclRange is the position of the block.
	DeclRange Range
}

// Exchange is a Microsoft Exchange source block.
type Exchange struct {
	// API is "graph" (Microsoft 365, the default) or "ews" (on-premises).
	API string
	// URL is the EWS URL for api = "ews". Default for graph:
	// https://graph.microsoft.com/v1.0.
	URL string
	// Tenant is the Entra ID tenant for graph.
	Tenant string
	// ClientID is the application (client) id for graph.
	ClientID string
	// ClientSecret is the application secret for graph.
	ClientSecret Secret
	// Authority is the login endpoint that issues graph's tokens.
	// Default: "" (https://login.microsoftonline.com).
	Authority string
	// Auth forces ews's authentication: "ntlm" or "basic"; "" uses what
	// the server offers, NTLM first.
	Auth string
	// AppRate is the requests per second all mailboxes of graph's app
	// registration share in one apply (0: the default, 100).
	AppRate float64
	// DeclRange is the position of the block.
	DeclRange Range
}

// Master holds a backend's master credentials.
type Master struct {
	// User is the master user name.
	User string
	// Password is the master password.
	Password Secret
	// PasswordRef is how the plan names the master password, as written
	// ("env(\"MASTER_PW\")", "var.master_pw"), or "" when it is written
	// literally (the text would then be the secret).
	PasswordRef string
	// DeclRange is the position of the block.
	DeclRange Range
}

// Limits are a backend's limits, shared by every worker talking to it.
// Zero means unlimited.
type Limits struct {
	// Connections is the most simultaneous connections. Default: 8.
	Connections int
	// MessagesPerSecond is the message rate. Default: 0 (unlimited).
	MessagesPerSecond float64
	// BytesPerSecond is the byte rate, written with units ("40MiB").
	// Default: 0 (unlimited).
	BytesPerSecond int64
	// BreakerFailures is how many consecutive connection failures or
	// timeouts open the backend's circuit breaker: apply dispatches no
	// more work to it until a probe at the next apply succeeds. 0 never
	// opens it. Default: 3 (DefaultBreakerFailures).
	BreakerFailures int
	// DeclRange is the position of the limits block, zero when absent.
	DeclRange Range
}

// Timeouts bound the network steps of talking to a backend. Each is the
// longest one step may take; zero is never produced by the loader (the
// defaults fill in).
type Timeouts struct {
	// Connect bounds the TCP connection. Default: 15s.
	Connect time.Duration
	// TLSHandshake bounds the TLS handshake. Default: 10s.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for a server's first reply: an HTTP
	// response's header, an IMAP or POP3 greeting. Default: 60s.
	ResponseHeader time.Duration
	// Idle bounds how long a connection may go without receiving a byte
	// while a reply is awaited. Default: 5m.
	Idle time.Duration
	// DeclRange is the position of the timeouts block, zero when absent.
	DeclRange Range
}

// Default timeouts and breaker threshold of a backend.
const (
	DefaultConnectTimeout        = 15 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultBackendIdleTimeout    = 5 * time.Minute
	DefaultBreakerFailures       = 3
)

// DefaultTimeouts returns the timeouts of a backend without a timeouts
// block.
func DefaultTimeouts() Timeouts {
	return Timeouts{Connect: DefaultConnectTimeout, TLSHandshake: DefaultTLSHandshakeTimeout,
		ResponseHeader: DefaultResponseHeaderTimeout, Idle: DefaultBackendIdleTimeout}
}

// AccountGroup is an accounts block.
type AccountGroup struct {
	// Name is the block label; waves refer to it as accounts.<Name>.
	Name string
	// From is the name of the source backend.
	From string
	// To is the name of the target backend.
	To string
	// Data are the data kinds to migrate. Default: every kind the source
	// backend provides (see [Backend.Provides]).
	Data []DataKind
	// CSVFile is the file read by csv() for this group, or "".
	CSVFile string
	// Accounts are the group's accounts, in order.
	Accounts []*Account
	// DeclRange is the position of the block header.
	DeclRange Range
}

// Account is one mailbox to migrate, after the group's settings and the
// account's own override block are applied.
type Account struct {
	// Address is the account's e-mail address; it identifies the account
	// everywhere (journal, routes, archives).
	Address string
	// Group is the name of the accounts block the account belongs to.
	Group string
	// From and To are the source and target backend names.
	From string
	To   string
	// SourceLogin is the login name on the source. Default: Address.
	SourceLogin string
	// TargetLogin is the login name on the target. Default: Address.
	TargetLogin string
	// PasswordRef is the password reference as written ("env:NAME",
	// "file:PATH"), or "" when the account has no password of its own
	// (master login).
	PasswordRef string
	// Password is the resolved password, unset when PasswordRef is "".
	Password Secret
	// Data are the data kinds to migrate.
	Data []DataKind
	// Wave is the name of the wave the account belongs to, or "".
	Wave string
	// DeclRange is where the account is declared: the list element, the
	// CSV row (file:row:1) or the override block.
	DeclRange Range
}

// Wave is a wave block: a set of accounts cut over together.
type Wave struct {
	// Name is the block label; references are written wave.<Name>.
	Name string
	// Accounts are the wave's account addresses in order.
	Accounts []string
	// AccountGroups are the accounts blocks named in accounts (as
	// accounts.<name>), if any.
	AccountGroups []string
	// After are the names of the waves that must be done first.
	After []string
	// NotBefore is the earliest cut-over time; zero means none.
	NotBefore time.Time
	// CutoverWindow restricts cut-overs to a daily window; nil means any
	// time.
	CutoverWindow *Window
	// MaxParallel is the most accounts worked on at once. Default: 4.
	MaxParallel int
	// Canary is the number of accounts that cut over first; the rest wait
	// until the canaries are done. Default: 0 (no canary).
	Canary int
	// CatchupThreshold is the largest number of messages the last catch-up
	// pass may have copied for a cut-over to start. Default: 100.
	CatchupThreshold int
	// CatchupThresholdBytes is the same limit in bytes. Default: 10MiB.
	CatchupThresholdBytes int64
	// MaxErrors is the number of failed accounts tolerated before the wave
	// halts. Default: 0 (the first failure halts the wave).
	MaxErrors int
	// MaxVerifyMismatches is the number of verify mismatches tolerated
	// before the wave halts. Default: 0.
	MaxVerifyMismatches int
	// DeclRange is the position of the block header.
	DeclRange Range
}

// Window is a daily time window in a time zone, such as
// "22:00-05:00 Europe/Berlin". A window whose end is not after its start
// crosses midnight.
type Window struct {
	// Text is the window as written.
	Text string
	// Start and End are offsets from local midnight (End may be 24h).
	Start, End time.Duration
	// Location is the window's time zone.
	Location *time.Location
}

// Proxy is the proxy block.
type Proxy struct {
	// Listeners are the listen addresses per protocol in canonical order.
	Listeners []*Listener
	// TLS holds the certificates for implicit TLS and STARTTLS, one per
	// tls block in plan order; empty when there is none. The proxy picks
	// one per connection by the name the client asks for (SNI); the first
	// is the default, for clients that send no name or one no certificate
	// covers.
	TLS []*ProxyTLS
	// PublicOrigin is the origin (scheme://host[:port]) clients use for
	// HTTP; JMAP session URLs and DAV redirects are rewritten to it.
	// Default: derived from the http/https listener.
	PublicOrigin string
	// HoldLogins is how long a login for a frozen account is held before
	// it is refused temporarily. Default: 30s.
	HoldLogins time.Duration
	// PreAuthTimeout bounds the time until a client authenticates.
	// Default: 60s.
	PreAuthTimeout time.Duration
	// AuthFailureDelay is the least time a failed login takes on every
	// protocol, whatever the cause; 0 means none beyond the longest
	// recent backend refusal. Default: 2s.
	AuthFailureDelay time.Duration
	// IdleTimeout closes sessions in which nothing moved for this long,
	// on every listener. It is 0 when the plan does not set idle_timeout:
	// then each protocol keeps its own default, [DefaultIdleTimeout] (30m)
	// for IMAP, POP3, ManageSieve and HTTP and [DefaultSMTPIdleTimeout]
	// (5m) for SMTP, submission and LMTP.
	IdleTimeout time.Duration
	// MaxConnections is the most client connections. Default: 10000.
	MaxConnections int
	// AcceptProxyProtocol expects a PROXY protocol header from a load
	// balancer in front of the proxy. Default: false.
	AcceptProxyProtocol bool
	// ProxyProtocolTrustedNetworks are the load balancers' networks, the
	// only sources whose PROXY header is read (and required); required
	// with AcceptProxyProtocol. An address is a network of one.
	ProxyProtocolTrustedNetworks []netip.Prefix
	// ProxyProtocolUntrusted is what the proxy does with connections from
	// outside ProxyProtocolTrustedNetworks when AcceptProxyProtocol is set:
	// [ProxyUntrustedRefuse] closes them unread, [ProxyUntrustedPlain]
	// serves them as direct clients without reading a header. Default:
	// "refuse".
	ProxyProtocolUntrusted string
	// DefaultBackend is the backend of logins and recipients the route
	// table does not know; `mailmig proxy` sets it in the route table at
	// start. Default: "" (the table's own default, if any, stays).
	DefaultBackend string
	// Domains are the domains the proxy accepts inbound mail for (besides
	// those of the accounts in the route table), lower case, in plan
	// order; `mailmig proxy` adds them to the route table at start.
	// Default: none.
	Domains []string
	// AdminTokenRef is the admin_token_ref ("env:NAME" or "file:PATH")
	// and AdminToken its value: the bearer token the route-mapping API on
	// the admin listener asks for. Default: none (the API is off).
	AdminTokenRef string
	AdminToken    Secret
	// DeclRange is the position of the block.
	DeclRange Range
}

// Listener returns the listener for protocol name p (see [Listener.Protocol]),
// or nil.
func (p *Proxy) Listener(proto string) *Listener {
	for _, l := range p.Listeners {
		if l.Protocol == proto {
			return l
		}
	}
	return nil
}

// Listener is one listen address of the proxy.
type Listener struct {
	// Protocol is the attribute name: imap, imaps, pop3, pop3s,
	// managesieve, submission, submissions, smtp, lmtp, http or https.
	Protocol string
	// Address is host:port; an empty host means every address.
	Address string
	// ImplicitTLS is true for imaps, pop3s, submissions and https.
	ImplicitTLS bool
	// DeclRange is the position of the attribute.
	DeclRange Range
}

// ProxyTLS is one of the proxy's certificates (a tls block).
type ProxyTLS struct {
	// Cert and Key are PEM files: the certificate chain, the server's
	// own certificate first, and its private key.
	Cert string
	Key  string
	// DeclRange is the position of the block.
	DeclRange Range
}

// Variable is a variable block with its final value.
type Variable struct {
	// Name is the block label; references are written var.<Name>.
	Name string
	// Description documents the variable.
	Description string
	// Sensitive marks a secret value; Value is then a [Secret].
	Sensitive bool
	// Value is the final value: the override given to the loader, else the
	// default. It is a string, int64, float64, bool, []any or
	// map[string]any (or Secret when Sensitive).
	Value any
	// DeclRange is the position of the block header.
	DeclRange Range
}
