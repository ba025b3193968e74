package routes

import (
	"errors"
	"slices"
	"strings"
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
type Table struct {
	// Version is the store's change counter when the snapshot was taken.
	Version int64
	// Default is the default backend for unknown identifiers; "" means
	// none.
	Default string

	routes  map[string]Route
	aliases map[string]string // identifier → account
	domains map[string]bool
}

// NewTable builds a snapshot from routes, aliases (identifier → account
// key), explicit domains and a default backend. Keys are normalised. It is
// what Store.Snapshot uses and what tests may use without a store.
func NewTable(version int64, def string, rs []Route, aliases map[string]string, domains []string) *Table {
	t := &Table{
		Version: version,
		Default: def,
		routes:  make(map[string]Route, len(rs)),
		aliases: make(map[string]string, len(aliases)),
		domains: make(map[string]bool, len(domains)),
	}
	for _, r := range rs {
		r.Account = Normalize(r.Account)
		t.routes[r.Account] = r
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

// Resolve finds the route of an identifier: an alias first, then an account
// key, then the default backend (an Implicit route whose Account is the
// normalised identifier). ok is false when none applies.
func (t *Table) Resolve(identifier string) (r Route, ok bool) {
	id := Normalize(identifier)
	if id == "" {
		return Route{}, false
	}
	if acct, found := t.aliases[id]; found {
		if r, found := t.routes[acct]; found {
			return r, true
		}
		id = acct
	}
	if r, found := t.routes[id]; found {
		return r, true
	}
	if t.Default != "" {
		return Route{Account: id, Backend: t.Default, State: Active, Implicit: true}, true
	}
	return Route{}, false
}

// Account returns the stored route of an account key.
func (t *Table) Account(account string) (Route, bool) {
	r, ok := t.routes[Normalize(account)]
	return r, ok
}

// Routes returns every stored route, sorted by account.
func (t *Table) Routes() []Route {
	out := make([]Route, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, r)
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
	return out
}

// Domains returns every known domain, sorted.
func (t *Table) Domains() []string {
	out := make([]string, 0, len(t.domains))
	for d := range t.domains {
		out = append(out, d)
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
	return t.domains[Normalize(domain)]
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
	var out []Change
	for k, n := range cur.routes {
		o, ok := old.routes[k]
		if !ok || o.Backend != n.Backend || o.State != n.State || o.Generation != n.Generation {
			out = append(out, Change{Account: k, Old: o, New: n})
		}
	}
	for k, o := range old.routes {
		if _, ok := cur.routes[k]; !ok {
			out = append(out, Change{Account: k, Old: o})
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
