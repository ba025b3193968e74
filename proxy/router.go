package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/proxy/routes"
)

// Protocol names a proxied protocol. It is also the label value in metrics
// and the "proto" log attribute.
type Protocol string

// Protocols the proxy speaks.
const (
	IMAP        Protocol = "imap"
	POP3        Protocol = "pop3"
	ManageSieve Protocol = "managesieve"
	Submission  Protocol = "submission"
	SMTP        Protocol = "smtp"
	LMTP        Protocol = "lmtp"
	HTTP        Protocol = "http"
)

// TLSMode says how TLS is used on a listener or toward a backend.
type TLSMode string

// TLS modes.
const (
	// TLSNone is plain TCP.
	TLSNone TLSMode = "none"
	// TLSImplicit starts TLS right after connecting (IMAPS, POP3S, 465).
	TLSImplicit TLSMode = "implicit"
	// TLSStartTLS upgrades with the protocol's STARTTLS/STLS command.
	TLSStartTLS TLSMode = "starttls"
)

// LoginMode says how the proxy logs in at a backend.
type LoginMode string

// Login modes.
const (
	// LoginPassthrough replays the client's own credentials (an IMAP LOGIN
	// is sent on as AUTHENTICATE PLAIN).
	LoginPassthrough LoginMode = "passthrough"
	// LoginMaster logs in with the backend's master credentials on the
	// user's behalf, after the proxy verified nothing itself: the client's
	// password is still checked by a passthrough login first unless the
	// protocol cannot (see each protocol package).
	LoginMaster LoginMode = "master"
)

// MasterStyle says how master credentials name the user.
type MasterStyle string

// Master login styles.
const (
	// MasterSeparator logs in as "user<sep>master" with the master
	// password (Dovecot's auth_master_user_separator). Default.
	MasterSeparator MasterStyle = "separator"
	// MasterAuthzid uses SASL PLAIN with authzid=user, authcid=master.
	MasterAuthzid MasterStyle = "authzid"
)

// Endpoint is how to reach one protocol of a backend.
type Endpoint struct {
	// Address is host:port for stream protocols.
	Address string
	// URL is the base URL for HTTP protocols (JMAP, DAV).
	URL string
	// TLS is the TLS mode toward the backend. Default: TLSNone.
	TLS TLSMode
	// TLSConfig is the client TLS configuration; nil means the system
	// roots with the host of Address as server name.
	TLSConfig *tls.Config
	// AllowPlaintext permits sending credentials without TLS (loopback
	// tests, trusted networks). Default: false, and a login over a plain
	// connection is refused.
	AllowPlaintext bool
	// ProxyProtocol sends a HAProxy PROXY header with the client's
	// address first (Dovecot's haproxy listeners).
	ProxyProtocol bool
	// ProxyProtocolVersion is 1 or 2. Default: 2.
	ProxyProtocolVersion int
	// ForwardID sends the client's address in IMAP ID (x-originating-ip,
	// x-originating-port) before logging in.
	ForwardID bool
	// XCLIENT sends the client's address with XCLIENT when the backend
	// offers it (SMTP, LMTP, submission, ManageSieve).
	XCLIENT bool
	// Timeouts bound connecting, TLS and the greeting (IMAP, POP3 and
	// ManageSieve logins; Dial for every protocol). Default: see
	// Timeouts.
	Timeouts Timeouts
}

// Backend is one backend of the plan with its endpoints and login mode.
type Backend struct {
	// Name is the backend's name, as route entries name it.
	Name string
	// Endpoints per protocol.
	Endpoints map[Protocol]Endpoint
	// Login is the login mode. Default: LoginPassthrough.
	Login LoginMode
	// MasterUser and MasterPassword are the master credentials for
	// LoginMaster.
	MasterUser, MasterPassword string
	// MasterStyle says how the master login names the user. Default:
	// MasterSeparator.
	MasterStyle MasterStyle
	// MasterSeparator joins user and master user. Default: "*".
	MasterSeparator string
}

// Endpoint returns the backend's endpoint for a protocol.
func (b *Backend) Endpoint(p Protocol) (Endpoint, bool) {
	if b == nil {
		return Endpoint{}, false
	}
	e, ok := b.Endpoints[p]
	return e, ok
}

// MasterLogin returns the authorization identity, authentication identity
// and password to log in as user with the master credentials. For
// MasterSeparator the authzid is empty and authcid is "user*master".
func (b *Backend) MasterLogin(user string) (authzid, authcid, password string) {
	if b.MasterStyle == MasterAuthzid {
		return user, b.MasterUser, b.MasterPassword
	}
	sep := b.MasterSeparator
	if sep == "" {
		sep = "*"
	}
	return "", user + sep + b.MasterUser, b.MasterPassword
}

// ClientMaster reports whether a login identifier names a master user
// itself ("user*admin", with the backend's separator) on a master-login
// backend. Such logins are refused: on these backends the proxy logs in
// with its own master credentials, and a client must never choose the
// master user nor have "user*admin" sent on as "user*admin*admin". On
// passthrough backends the identifier goes on untouched, and the backend
// checks the master user's password itself.
func (b *Backend) ClientMaster(identifier string) bool {
	if b == nil || b.Login != LoginMaster || b.MasterStyle == MasterAuthzid {
		return false
	}
	sep := b.MasterSeparator
	if sep == "" {
		sep = "*"
	}
	return strings.Contains(identifier, sep)
}

// Decision is the router's answer for one identifier.
type Decision struct {
	// Identifier is the login or address as presented by the client.
	Identifier string
	// Route is the route entry found (Implicit for the default backend).
	Route routes.Route
	// Backend is the backend the route names.
	Backend *Backend
}

// Account returns the account key of the decision.
func (d Decision) Account() string { return d.Route.Account }

// Frozen reports whether the account is frozen.
func (d Decision) Frozen() bool { return d.Route.State == routes.Frozen }

// Router errors. Protocol handlers map them to their replies: ErrUnknown to
// an authentication failure (never revealing that the account is unknown
// before a backend checked the password), ErrFrozen and ErrBackend to a
// temporary failure.
var (
	// ErrUnknown means no route and no default backend.
	ErrUnknown = errors.New("unknown account")
	// ErrFrozen means the account stayed frozen for the whole hold time.
	ErrFrozen = errors.New("account is frozen for migration")
	// ErrBackend means the route names a backend that is not configured.
	ErrBackend = errors.New("route names an unknown backend")
)

// Router finds the backend of an identifier and keeps track of open
// sessions so that they end when their account's route changes. Its methods
// are safe for concurrent use.
type Router interface {
	// Lookup returns the current decision at once. A frozen account is
	// not an error here: check Decision.Frozen (SMTP and LMTP answer 4xx).
	Lookup(ctx context.Context, identifier string) (Decision, error)
	// Await is Lookup for logins: while the account is frozen it waits up
	// to the router's hold time for the freeze to end, and then returns the
	// decision the route names, or ErrFrozen when it is still frozen.
	Await(ctx context.Context, identifier string) (Decision, error)
	// KnownDomain reports whether mail for the domain (or the address's
	// domain) may be accepted at all; SMTP refuses the rest (no open relay).
	KnownDomain(domain string) bool
	// Track registers an open session routed by d. end is called (once,
	// from another goroutine) when the account's route changes or freezes,
	// when the alias the session logged in with (d.Identifier) now names
	// another account, or when a new default backend moves it, or at once
	// when it changed since d was made; end must make the
	// session finish promptly (IMAP "* BYE", POP3 close, ...). The returned
	// function unregisters the session; call it when the session ends.
	Track(d Decision, proto Protocol, end func(reason string)) (untrack func())
}

// RouterOptions configure NewRouter. A nil *RouterOptions means defaults.
type RouterOptions struct {
	// FrozenHold is how long Await waits for a freeze to end. Default: 30s.
	FrozenHold time.Duration
	// MasterSeparators are the separators of master logins
	// ("user*master"): an identifier containing one that has no route of
	// its own is routed by the part before the separator. Default: "*".
	MasterSeparators []string
}

// DefaultFrozenHold is the default of RouterOptions.FrozenHold.
const DefaultFrozenHold = 30 * time.Second

// TableRouter is the Router over a routes.Watcher and the plan's backends.
type TableRouter struct {
	w        *routes.Watcher
	backends map[string]*Backend
	hold     time.Duration
	seps     []string

	mu       sync.Mutex
	changed  chan struct{}                    // closed and replaced on every route change
	sessions map[string]map[*tracked]struct{} // account key → sessions
	byIdent  map[string]map[*tracked]struct{} // identifier (and master user part) → sessions
	inflight map[string]int                   // account key → deliveries in flight
	quieter  chan struct{}                    // closed and replaced when a session or delivery ends
	cancel   func()
}

type tracked struct {
	proto   Protocol
	ident   string // the identifier the session logged in with
	account string
	backend string
	once    sync.Once
	end     func(string)
}

var _ Router = (*TableRouter)(nil)

// NewRouter returns a Router reading routes from w. Call Close to stop
// following route changes.
func NewRouter(w *routes.Watcher, backends []*Backend, opts *RouterOptions) *TableRouter {
	r := &TableRouter{
		w:        w,
		backends: map[string]*Backend{},
		hold:     DefaultFrozenHold,
		seps:     []string{"*"},
		changed:  make(chan struct{}),
		sessions: map[string]map[*tracked]struct{}{},
		byIdent:  map[string]map[*tracked]struct{}{},
		inflight: map[string]int{},
		quieter:  make(chan struct{}),
	}
	if opts != nil && opts.FrozenHold > 0 {
		r.hold = opts.FrozenHold
	}
	if opts != nil && opts.MasterSeparators != nil {
		r.seps = opts.MasterSeparators
	}
	for _, b := range backends {
		r.backends[b.Name] = b
	}
	r.cancel = w.Subscribe(r.onChange)
	return r
}

// Close stops following route changes.
func (r *TableRouter) Close() { r.cancel() }

// Backend returns a configured backend by name.
func (r *TableRouter) Backend(name string) (*Backend, bool) {
	b, ok := r.backends[name]
	return b, ok
}

func (r *TableRouter) onChange(c routes.Change) {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	// The table already holds the new state. Candidates are the sessions
	// the change may concern: the account's for a route change, those
	// logged in under the identifier for an alias change, all for a new
	// default backend. Each ends when its identifier now resolves to
	// another account or backend, or to a frozen route (a route written
	// for an account that the default backend served, naming that same
	// backend, changes nothing for it).
	var cands map[*tracked]struct{}
	switch {
	case c.Default:
		cands = map[*tracked]struct{}{}
		for _, set := range r.sessions {
			for t := range set {
				cands[t] = struct{}{}
			}
		}
	case c.Alias != "":
		cands = r.byIdent[c.Alias]
	default:
		cands = r.sessions[c.Account]
	}
	type ending struct {
		t      *tracked
		reason string
	}
	var ends []ending
	for t := range cands {
		if reason := r.moved(t.ident, t.account, t.backend); reason != "" {
			ends = append(ends, ending{t, reason})
		}
	}
	r.mu.Unlock()
	for _, e := range ends {
		go e.t.once.Do(func() { e.t.end(e.reason) })
	}
}

// moved returns why a session of identifier routed to account on backend
// must end now, or "" when its route still holds.
func (r *TableRouter) moved(identifier, account, backend string) string {
	cur, ok := r.resolve(identifier)
	switch {
	case ok && cur.State == routes.Frozen:
		return "account frozen for migration"
	case !ok || cur.Account != account || cur.Backend != backend:
		return "account moved"
	}
	return ""
}

// identKeys are the index keys of a session's identifier: the identifier
// and, for a master login ("user*master"), the user part, which resolve
// falls back to.
func (r *TableRouter) identKeys(identifier string) []string {
	id := routes.Normalize(identifier)
	keys := []string{id}
	for _, sep := range r.seps {
		if user, _, found := strings.Cut(id, sep); found && user != "" && user != id {
			keys = append(keys, user)
		}
	}
	return keys
}

// Lookup implements Router.
func (r *TableRouter) Lookup(ctx context.Context, identifier string) (Decision, error) {
	rt, ok := r.resolve(identifier)
	if !ok {
		return Decision{Identifier: identifier}, fmt.Errorf("route %q: %w", routes.Normalize(identifier), ErrUnknown)
	}
	d := Decision{Identifier: identifier, Route: rt}
	b, ok := r.backends[rt.Backend]
	if !ok {
		return d, fmt.Errorf("route %s: backend %q: %w", rt.Account, rt.Backend, ErrBackend)
	}
	d.Backend = b
	return d, nil
}

// resolve finds the route, trying the user part of a master login when the
// whole identifier has no route of its own.
func (r *TableRouter) resolve(identifier string) (routes.Route, bool) {
	t := r.w.Table()
	rt, ok := t.Resolve(identifier)
	if ok && !rt.Implicit {
		return rt, ok
	}
	for _, sep := range r.seps {
		if user, _, found := strings.Cut(identifier, sep); found && user != "" {
			if ur, uok := t.Resolve(user); uok {
				return ur, true
			}
		}
	}
	return rt, ok
}

// Await implements Router.
func (r *TableRouter) Await(ctx context.Context, identifier string) (Decision, error) {
	deadline := time.NewTimer(r.hold)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		d, err := r.Lookup(ctx, identifier)
		if err != nil || !d.Frozen() {
			return d, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return d, fmt.Errorf("route %s: %w", d.Account(), ErrFrozen)
		case <-ctx.Done():
			return d, ctx.Err()
		}
	}
}

// KnownDomain implements Router.
func (r *TableRouter) KnownDomain(domain string) bool {
	return r.w.Table().KnownDomain(domain)
}

// Track implements Router.
func (r *TableRouter) Track(d Decision, proto Protocol, end func(reason string)) func() {
	acct := d.Route.Account
	t := &tracked{proto: proto, ident: d.Identifier, account: acct, backend: d.Route.Backend, end: end}
	keys := r.identKeys(d.Identifier)
	add := func(m map[string]map[*tracked]struct{}, k string) {
		set := m[k]
		if set == nil {
			set = map[*tracked]struct{}{}
			m[k] = set
		}
		set[t] = struct{}{}
	}
	del := func(m map[string]map[*tracked]struct{}, k string) {
		delete(m[k], t)
		if len(m[k]) == 0 {
			delete(m, k)
		}
	}
	r.mu.Lock()
	add(r.sessions, acct)
	for _, k := range keys {
		add(r.byIdent, k)
	}
	r.mu.Unlock()
	// A change between Lookup and Track would otherwise be missed.
	if reason := r.moved(d.Identifier, acct, d.Route.Backend); reason != "" {
		go t.once.Do(func() { t.end(reason) })
	}
	return func() {
		r.mu.Lock()
		del(r.sessions, acct)
		for _, k := range keys {
			del(r.byIdent, k)
		}
		r.wakeQuiet()
		r.mu.Unlock()
		t.once.Do(func() {})
	}
}

// DeliveryTracker is implemented by routers that count the deliveries in
// flight per account (*TableRouter), so that a freeze is acknowledged only
// once none is left (FreezeAcker). The SMTP and LMTP fronts use it when
// their router has it.
type DeliveryTracker interface {
	// BeginDelivery counts one delivery to each account as in flight
	// until done is called. Call it before the last check of the route
	// and call done once the backend has answered the end of the data:
	// a freeze seen by the router after BeginDelivery waits for done, one
	// seen before it is found by that check.
	BeginDelivery(accounts ...string) (done func())
}

var _ DeliveryTracker = (*TableRouter)(nil)

// BeginDelivery implements DeliveryTracker.
func (r *TableRouter) BeginDelivery(accounts ...string) func() {
	keys := make([]string, 0, len(accounts))
	for _, a := range accounts {
		if k := routes.Normalize(a); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	r.mu.Lock()
	for _, k := range keys {
		r.inflight[k]++
	}
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			for _, k := range keys {
				if r.inflight[k]--; r.inflight[k] <= 0 {
					delete(r.inflight, k)
				}
			}
			r.wakeQuiet()
			r.mu.Unlock()
		})
	}
}

// InFlight returns the number of deliveries in flight for an account.
func (r *TableRouter) InFlight(account string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[routes.Normalize(account)]
}

// wakeQuiet tells WaitQuiet to look again. r.mu must be held.
func (r *TableRouter) wakeQuiet() {
	close(r.quieter)
	r.quieter = make(chan struct{})
}

// ErrSuperseded means the route WaitQuiet waited for changed again.
var ErrSuperseded = errors.New("route changed again")

// WaitQuiet waits until the account's route, frozen at generation, has no
// session left open (each was told to end when the freeze arrived) and no
// delivery in flight. It returns ErrSuperseded when the route is no
// longer frozen at that generation, and ctx's error when ctx ends first.
func (r *TableRouter) WaitQuiet(ctx context.Context, account string, generation int64) error {
	account = routes.Normalize(account)
	for {
		rt, ok := r.w.Table().Account(account)
		if !ok || rt.State != routes.Frozen || rt.Generation != generation {
			return fmt.Errorf("wait for %s to be quiet: %w", account, ErrSuperseded)
		}
		r.mu.Lock()
		quiet := r.inflight[account] == 0 && len(r.sessions[account]) == 0
		ch, changed := r.quieter, r.changed
		r.mu.Unlock()
		if quiet {
			return nil
		}
		select {
		case <-ch:
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sessions returns the number of tracked sessions per protocol.
func (r *TableRouter) Sessions() map[Protocol]int {
	out := map[Protocol]int{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, set := range r.sessions {
		for t := range set {
			out[t.proto]++
		}
	}
	return out
}
