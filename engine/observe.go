package engine

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine/diag"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// Route is an account's entry in the proxy's route table, as the engine
// sees it.
type Route struct {
	// Backend is the backend the account is routed to.
	Backend string `json:"backend"`
	// Frozen is true while a cut-over holds the account.
	Frozen bool `json:"frozen,omitempty"`
	// Generation grows with every change of the route.
	Generation int64 `json:"generation"`
}

// Delta is what a refresh found changed on an account's source since the
// last pass. The zero Delta is "not checked".
type Delta struct {
	// Known is true when the source was asked.
	Known   bool  `json:"known"`
	New     int64 `json:"new,omitempty"`
	Changed int64 `json:"changed,omitempty"`
	Deleted int64 `json:"deleted,omitempty"`
	// Since is the time of the pass the delta is relative to.
	Since time.Time `json:"since,omitzero"`
}

// Messages returns the number of messages the delta touches.
func (d Delta) Messages() int64 { return d.New + d.Changed + d.Deleted }

// Observed is everything Diff knows about the world.
type Observed struct {
	// State is the fold of the journal. Nil means an empty journal.
	State *state.State
	// Routes maps normalised account addresses to their routes. An account
	// without an entry is routed by the table's default (its source).
	Routes map[string]Route
	// Deltas maps normalised addresses to refresh results.
	Deltas map[string]Delta
	// Refreshed says whether the sources were asked (-refresh).
	Refreshed bool
}

// Key normalises an account address for the journal and the route table.
func Key(addr string) string { return strings.ToLower(strings.TrimSpace(addr)) }

// RouteReader reads the whole route table at once. Implementations must be
// safe for one call at a time.
type RouteReader interface {
	Routes(ctx context.Context) (map[string]Route, error)
}

// ChangeDetector asks an account's source cheaply what changed since the
// archive's last pass (IMAP STATUS with HIGHESTMODSEQ/UIDNEXT/MESSAGES per
// folder, JMAP state strings, DAV sync tokens). It must be safe for
// concurrent use.
type ChangeDetector interface {
	Detect(ctx context.Context, acct *plan.Account) (Delta, error)
}

// ObserveOptions configure Observe. A nil *ObserveOptions means defaults.
type ObserveOptions struct {
	// Routes reads the route table; nil means no route table yet.
	Routes RouteReader
	// Detector, when set, refreshes the source deltas.
	Detector ChangeDetector
	// Parallelism bounds concurrent Detect calls. Default: 8.
	Parallelism int
	// Accounts restricts refresh to these normalised addresses (-target);
	// nil means all.
	Accounts map[string]bool
}

// Observe gathers the observed state for m from the journal fold st and
// the options' readers. Refresh problems are warnings: the account is then
// planned as if nothing changed.
func Observe(ctx context.Context, m *plan.Migration, st *state.State, opts *ObserveOptions) (*Observed, diag.Diagnostics) {
	var diags diag.Diagnostics
	if opts == nil {
		opts = &ObserveOptions{}
	}
	obs := &Observed{State: st, Routes: map[string]Route{}, Deltas: map[string]Delta{}}
	if opts.Routes != nil {
		rs, err := opts.Routes.Routes(ctx)
		if err != nil {
			return obs, diags.Append(diag.Errorf("Cannot read the route table", "%v. The route table tells which backend serves each account; check the plan's routes block.", err))
		}
		obs.Routes = rs
	}
	if opts.Detector == nil {
		return obs, diags
	}
	obs.Refreshed = true
	par := opts.Parallelism
	if par <= 0 {
		par = 8
	}
	par = min(par, 4*runtime.GOMAXPROCS(0)+8)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for _, a := range m.Accounts {
		k := Key(a.Address)
		if opts.Accounts != nil && !opts.Accounts[k] {
			continue
		}
		sa := st.Account(k)
		if sa == nil || !sa.Imported || sa.Phase == state.PhaseDone {
			continue // nothing to compare with, or nothing left to do
		}
		since := sa.LastPass
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := opts.Detector.Detect(ctx, a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				diags = diags.Append(diag.Diagnostic{Severity: diag.Warning, Account: a.Address, Summary: "Cannot refresh account",
					Detail: fmt.Sprintf("%v. The account is planned as if nothing changed since its last pass.", err)})
				return
			}
			d.Known = true
			if d.Since.IsZero() {
				d.Since = since
			}
			obs.Deltas[k] = d
		}()
	}
	wg.Wait()
	return obs, diags
}
