package routes

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailmig/mailmig/plan/canon"
)

// State is the state of one account's route.
type State string

// Route states.
const (
	// Active means sessions and deliveries go to the route's backend.
	Active State = "active"
	// Frozen means the account is being cut over: deliveries get a
	// temporary failure, new logins are held or refused temporarily and
	// open sessions are ended.
	Frozen State = "frozen"
)

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return s == Active || s == Frozen }

// String returns the state's name.
func (s State) String() string { return string(s) }

// Route is the entry of one account.
type Route struct {
	// Account is the account key, in lower case.
	Account string `json:"account"`
	// Backend names the backend that serves the account (a backend block
	// of the plan).
	Backend string `json:"backend"`
	// State is Active or Frozen.
	State State `json:"state"`
	// Generation grows by one with every change of Backend or State. A
	// session remembers the generation it was routed with; a different
	// generation means the session must end.
	Generation int64 `json:"generation"`
	// Updated is the time of the last change.
	Updated time.Time `json:"updated"`
	// Implicit is set on routes made up from the default backend for an
	// identifier the table does not know. They are never stored.
	Implicit bool `json:"implicit,omitempty"`
}

// Errors returned by the table.
var (
	// ErrNotFound means the identifier is neither an account nor an alias
	// and no default backend is set.
	ErrNotFound = errors.New("no route for this account")
	// ErrInvalid means an argument is empty or malformed.
	ErrInvalid = errors.New("invalid route")
)

// Normalize returns the canonical form of an identifier, account key or
// domain: lower case, surrounding white space removed.
// It is [canon.Address], the one normaliser the plan and the engine's
// journal use too: route keys and journal keys must agree.
func Normalize(s string) string { return canon.Address(s) }

// Domain returns the domain part of an address in canonical form, or "" when
// the identifier has no "@".
func Domain(identifier string) string {
	i := strings.LastIndexByte(identifier, '@')
	if i < 0 {
		return ""
	}
	return Normalize(identifier[i+1:])
}

// Table is an immutable snapshot of the route table. The zero Table is
// empty and valid.
//
// A table may be an overlay: a few changed entries (see Table.Apply) over a
// flat base table that it shares with its predecessor, so that following
// a change in a table of a million routes does not copy a million
// entries. Apply flattens the overlay into a new base once it holds
// MaxOverlay entries.
type Table struct {
	// Version is the store's change counter when the snapshot was taken.
	Version int64
	// Default is the default backend for unknown identifiers; "" means
	// none.
	Default string

	routes  map[string]entry
	aliases map[string]string // identifier → account
	domains map[string]bool

	// over holds the entries that differ from the flat maps above, when
	// the table is an overlay; nil for a flat table.
	over *overlay
}

// entry is a stored route without its key, in 16 bytes: the account is the
// map key, backend names are numbered process-wide (nameID), the
// generation is 32 bits (four billion changes of one account) and the time
// of the last change is kept to the second. A million routes take about
// 60 MB of map plus their keys.
type entry struct {
	backend    uint32
	generation uint32
	updated    uint32 // seconds since epoch2000; 0 means unknown
	frozen     bool
	deleted    bool // in an overlay: the route was removed
}

// epoch2000 is the origin of entry.updated (good until 2136).
const epoch2000 = 946684800

func toEntry(r Route) entry {
	var u uint32
	if !r.Updated.IsZero() && r.Updated.Unix() > epoch2000 {
		u = uint32(r.Updated.Unix() - epoch2000)
	}
	return entry{backend: nameID(r.Backend), generation: uint32(r.Generation), updated: u, frozen: r.State == Frozen}
}

func (e entry) route(account string) Route {
	r := Route{Account: account, Backend: nameOf(e.backend), State: Active, Generation: int64(e.generation)}
	if e.frozen {
		r.State = Frozen
	}
	if e.updated != 0 {
		r.Updated = time.Unix(int64(e.updated)+epoch2000, 0).UTC()
	}
	return r
}

// names numbers backend names for every table of the process: a plan has a
// handful of backends, and a number is 4 bytes where a string is 16.
var names struct {
	mu   sync.Mutex
	ids  map[string]uint32
	list atomic.Pointer[[]string] // immutable; replaced on every new name
}

func init() {
	names.ids = map[string]uint32{"": 0}
	names.list.Store(&[]string{""})
}

// nameID returns the number of a backend name, numbering it when new.
func nameID(s string) uint32 {
	if s == "" {
		return 0
	}
	names.mu.Lock()
	defer names.mu.Unlock()
	if id, ok := names.ids[s]; ok {
		return id
	}
	old := *names.list.Load()
	list := append(old[:len(old):len(old)], s)
	id := uint32(len(old))
	names.ids[s] = id
	names.list.Store(&list)
	return id
}

// nameOf returns the backend name numbered id.
func nameOf(id uint32) string { return (*names.list.Load())[id] }

// overlay is the changed part of an overlay Table. An alias mapped to ""
// was removed.
type overlay struct {
	routes  map[string]entry
	aliases map[string]string
	domains map[string]bool
}

// MaxOverlay is how many changed routes and aliases an overlay table holds
// before Apply flattens it into a new base (a full copy of the maps).
const MaxOverlay = 4096

// maxOverlay is MaxOverlay; tests lower it to cross the threshold often.
var maxOverlay = MaxOverlay

// NewTable builds a snapshot from routes, aliases (identifier → account
// key), explicit domains and a default backend. Keys are normalised. It is
// what Store.Snapshot uses and what tests may use without a store.
func NewTable(version int64, def string, rs []Route, aliases map[string]string, domains []string) *Table {
	t := &Table{
		Version: version,
		Default: def,
		routes:  make(map[string]entry, len(rs)),
		aliases: make(map[string]string, len(aliases)),
		domains: make(map[string]bool, len(domains)),
	}
	for _, r := range rs {
		r.Account = Normalize(r.Account)
		t.routes[r.Account] = toEntry(r)
		if d := Domain(r.Account); d != "" {
			t.domains[d] = true
		}
	}
	for id, acct := range aliases {
		id = Normalize(id)
		t.aliases[id] = Normalize(acct)
		if d := Domain(id); d != "" {
			t.domains[d] = true
		}
	}
	for _, d := range domains {
		t.domains[Normalize(d)] = true
	}
	return t
}

// route returns the stored route of a normalised account key.
func (t *Table) route(account string) (Route, bool) {
	if t.over != nil {
		if e, ok := t.over.routes[account]; ok {
			if e.deleted {
				return Route{}, false
			}
			return e.route(account), true
		}
	}
	e, ok := t.routes[account]
	if !ok {
		return Route{}, false
	}
	return e.route(account), true
}

// alias returns the account of a normalised alias.
func (t *Table) alias(id string) (string, bool) {
	if t.over != nil {
		if a, ok := t.over.aliases[id]; ok {
			return a, a != ""
		}
	}
	a, ok := t.aliases[id]
	return a, ok
}

// Resolve finds the route of an identifier: an alias first, then an account
// key, then the default backend (an Implicit route whose Account is the
// normalised identifier). ok is false when none applies.
func (t *Table) Resolve(identifier string) (r Route, ok bool) {
	id := Normalize(identifier)
	if id == "" {
		return Route{}, false
	}
	if acct, found := t.alias(id); found {
		if r, found := t.route(acct); found {
			return r, true
		}
		id = acct
	}
	if r, found := t.route(id); found {
		return r, true
	}
	if t.Default != "" {
		return Route{Account: id, Backend: t.Default, State: Active, Implicit: true}, true
	}
	return Route{}, false
}

// Account returns the stored route of an account key.
func (t *Table) Account(account string) (Route, bool) {
	return t.route(Normalize(account))
}

// Len returns the number of stored routes.
func (t *Table) Len() int {
	n := len(t.routes)
	if t.over != nil {
		for k, e := range t.over.routes {
			_, base := t.routes[k]
			switch {
			case e.deleted && base:
				n--
			case !e.deleted && !base:
				n++
			}
		}
	}
	return n
}

// Routes returns every stored route, sorted by account.
func (t *Table) Routes() []Route {
	out := make([]Route, 0, len(t.routes))
	for k := range t.routes {
		if t.over != nil {
			if _, ok := t.over.routes[k]; ok {
				continue
			}
		}
		out = append(out, t.routes[k].route(k))
	}
	if t.over != nil {
		for k, e := range t.over.routes {
			if !e.deleted {
				out = append(out, e.route(k))
			}
		}
	}
	sortRoutes(out)
	return out
}

// Aliases returns a copy of the alias map (identifier → account key).
func (t *Table) Aliases() map[string]string {
	out := make(map[string]string, len(t.aliases))
	for k, v := range t.aliases {
		out[k] = v
	}
	if t.over != nil {
		for k, v := range t.over.aliases {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

// Domains returns every known domain, sorted.
func (t *Table) Domains() []string {
	out := make([]string, 0, len(t.domains))
	for d := range t.domains {
		if t.over == nil || !t.over.domains[d] {
			out = append(out, d)
		}
	}
	if t.over != nil {
		for d := range t.over.domains {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// KnownDomain reports whether mail for the domain may be accepted at all:
// it is listed explicitly or an account or alias lives in it. Identifiers
// with "@" are reduced to their domain first.
func (t *Table) KnownDomain(domain string) bool {
	if d := Domain(domain); d != "" {
		domain = d
	}
	domain = Normalize(domain)
	if t.over != nil && t.over.domains[domain] {
		return true
	}
	return t.domains[domain]
}

// Delta is a set of changes to apply to a Table: what a store that logs
// its changes (PostgreSQL) reads after a notification.
type Delta struct {
	// Routes are the changed routes by account key; nil means deleted.
	Routes map[string]*Route
	// Aliases are the changed aliases (identifier → account); "" means
	// deleted.
	Aliases map[string]string
	// Domains are explicitly listed domains that were added.
	Domains []string
	// Default is the new default backend, when it changed.
	Default *string
}

// Apply returns a new table with d applied at version, and the changes it
// makes, sorted like Diff's. t is not modified. Removing routes or domains
// may leave a domain known until the next full snapshot (relay control
// errs on the side of the last known table).
func (t *Table) Apply(version int64, d Delta) (*Table, []Change) {
	n := &Table{Version: version, Default: t.Default, routes: t.routes, aliases: t.aliases, domains: t.domains}
	if n.routes == nil {
		n.routes, n.aliases, n.domains = map[string]entry{}, map[string]string{}, map[string]bool{}
	}
	size := len(d.Routes) + len(d.Aliases) + len(d.Domains)
	if t.over != nil {
		size += len(t.over.routes) + len(t.over.aliases) + len(t.over.domains)
	}
	o := &overlay{routes: make(map[string]entry, size), aliases: map[string]string{}, domains: map[string]bool{}}
	if t.over != nil {
		maps.Copy(o.routes, t.over.routes)
		maps.Copy(o.aliases, t.over.aliases)
		maps.Copy(o.domains, t.over.domains)
	}
	n.over = o
	var out []Change
	for k, r := range d.Routes {
		k = Normalize(k)
		old, _ := t.route(k)
		if r == nil {
			o.routes[k] = entry{deleted: true}
			if old.Account != "" {
				out = append(out, Change{Account: k, Old: old})
			}
			continue
		}
		r.Account = k
		e := toEntry(*r)
		o.routes[k] = e
		*r = e.route(k) // the change reports what the table holds
		if dom := Domain(k); dom != "" && !t.KnownDomain(dom) {
			o.domains[dom] = true
		}
		if old.Account == "" || old.Backend != r.Backend || old.State != r.State || old.Generation != r.Generation {
			out = append(out, Change{Account: k, Old: old, New: *r})
		}
	}
	for id, acct := range d.Aliases {
		id, acct = Normalize(id), Normalize(acct)
		prev, _ := t.alias(id)
		o.aliases[id] = acct
		if dom := Domain(id); dom != "" && acct != "" && !t.KnownDomain(dom) {
			o.domains[dom] = true
		}
		if prev == acct {
			continue
		}
		oldR, _ := t.Resolve(id)
		c := Change{Account: acct, Alias: id, Old: oldR}
		if acct == "" {
			c.Account = prev
		}
		out = append(out, c)
	}
	for _, dom := range d.Domains {
		if dom = Normalize(dom); dom != "" && !t.KnownDomain(dom) {
			o.domains[dom] = true
		}
	}
	if d.Default != nil && *d.Default != t.Default {
		out = append(out, Change{Default: true, Old: Route{Backend: t.Default}, New: Route{Backend: *d.Default}})
		n.Default = *d.Default
	}
	// Alias changes carry what the alias resolves to now, which depends
	// on the whole delta.
	for i := range out {
		if out[i].Alias != "" {
			out[i].New, _ = n.Resolve(out[i].Alias)
		}
	}
	if len(o.routes)+len(o.aliases)+len(o.domains) >= maxOverlay {
		n = n.flatten()
	}
	sortChanges(out)
	return n, out
}

// flatten returns t as a flat table.
func (t *Table) flatten() *Table {
	if t.over == nil {
		return t
	}
	f := &Table{Version: t.Version, Default: t.Default,
		routes:  make(map[string]entry, len(t.routes)+len(t.over.routes)),
		aliases: make(map[string]string, len(t.aliases)+len(t.over.aliases)),
		domains: make(map[string]bool, len(t.domains)+len(t.over.domains)),
	}
	for k, e := range t.routes {
		f.routes[k] = e
	}
	for k, e := range t.over.routes {
		if e.deleted {
			delete(f.routes, k)
		} else {
			f.routes[k] = e
		}
	}
	f.aliases = t.Aliases()
	maps.Copy(f.domains, t.domains)
	maps.Copy(f.domains, t.over.domains)
	return f
}

// Change describes how one account's route, one login alias or the
// default backend changed between two snapshots.
type Change struct {
	// Account is the account key. For an alias change it is the account
	// the alias names now (or named, when it was removed); for a default
	// change it is empty.
	Account string
	// Old is the previous route; its zero value means the account is new.
	// For an alias change it is what the alias resolved to before (an
	// Implicit route when it resolved through the default backend).
	Old Route
	// New is the current route; its zero value means it was deleted.
	New Route
	// Alias is set when the change is of the login alias Alias (added,
	// removed or re-pointed to another account): sessions opened under
	// that identifier may now belong elsewhere.
	Alias string
	// Default is set when the default backend changed; Old.Backend and
	// New.Backend hold the old and new default ("" for none).
	Default bool
}

// Diff returns what differs between two snapshots: the accounts whose
// backend, state or generation differ, the aliases whose account differs,
// and the default backend, sorted by account (aliases after the account
// changes of the same key).
func Diff(old, cur *Table) []Change {
	if old == nil {
		old = &Table{}
	}
	old, cur = old.flatten(), cur.flatten()
	var out []Change
	for k, ne := range cur.routes {
		n := ne.route(k)
		o, ok := old.route(k)
		if !ok || o.Backend != n.Backend || o.State != n.State || o.Generation != n.Generation {
			out = append(out, Change{Account: k, Old: o, New: n})
		}
	}
	for k, oe := range old.routes {
		if _, ok := cur.routes[k]; !ok {
			out = append(out, Change{Account: k, Old: oe.route(k)})
		}
	}
	aliasChange := func(id string) {
		o, _ := old.Resolve(id)
		n, _ := cur.Resolve(id)
		acct := cur.aliases[id]
		if acct == "" {
			acct = old.aliases[id]
		}
		out = append(out, Change{Account: acct, Alias: id, Old: o, New: n})
	}
	for id, acct := range cur.aliases {
		if prev, ok := old.aliases[id]; !ok || prev != acct {
			aliasChange(id)
		}
	}
	for id := range old.aliases {
		if _, ok := cur.aliases[id]; !ok {
			aliasChange(id)
		}
	}
	if old.Default != cur.Default {
		out = append(out, Change{Default: true, Old: Route{Backend: old.Default}, New: Route{Backend: cur.Default}})
	}
	sortChanges(out)
	return out
}

// Builder builds a large Table row by row, without holding every row twice
// (a slice of Routes and then the table). Not safe for concurrent use.
type Builder struct {
	t *Table
}

// NewBuilder starts a table of about hint routes.
func NewBuilder(hint int) *Builder {
	return &Builder{t: &Table{routes: make(map[string]entry, hint), aliases: map[string]string{}, domains: map[string]bool{}}}
}

// Add adds a route. account must already be normalised (stores keep their
// keys normalised), which saves a copy of every key.
func (b *Builder) Add(account, backend string, frozen bool, generation int64, updated time.Time) {
	e := toEntry(Route{Backend: backend, Generation: generation, Updated: updated})
	e.frozen = frozen
	b.t.routes[account] = e
	if i := strings.LastIndexByte(account, '@'); i >= 0 && !b.t.domains[account[i+1:]] {
		b.t.domains[account[i+1:]] = true
	}
}

// Table finishes the table with the aliases, explicit domains, default
// backend and version. The Builder must not be used afterwards.
func (b *Builder) Table(version int64, def string, aliases map[string]string, domains []string) *Table {
	t := b.t
	b.t = nil
	t.Version, t.Default = version, def
	for id, acct := range aliases {
		id = Normalize(id)
		t.aliases[id] = Normalize(acct)
		if d := Domain(id); d != "" {
			t.domains[d] = true
		}
	}
	for _, d := range domains {
		t.domains[Normalize(d)] = true
	}
	return t
}
