package engine

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine/diag"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/plan/canon"
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
	// Mailboxes counts mailboxes whose counters changed (a probe sees
	// flag changes only per mailbox), including added and removed ones.
	Mailboxes int64 `json:"mailboxes,omitempty"`
	// FoldersAdded, FoldersRemoved and FoldersRenamed count folders
	// created, deleted and renamed at the source.
	FoldersAdded   int `json:"folders_added,omitempty"`
	FoldersRemoved int `json:"folders_removed,omitempty"`
	FoldersRenamed int `json:"folders_renamed,omitempty"`
	// Approx marks estimates from the source's counters (a probe), not
	// an exact comparison.
	Approx bool `json:"approx,omitempty"`
	// NotImported says the account's archive has nothing to compare with
	// (missing, or never synced): the next pass imports everything.
	NotImported bool `json:"not_imported,omitempty"`
	// Since is the time of the pass the delta is relative to.
	Since time.Time `json:"since,omitzero"`
	// Items counts what changed per non-mail data kind (scripts,
	// contacts, events, files added, changed or deleted at the source),
	// for the kinds the executor moves; absent when nothing changed.
	Items []DataDelta `json:"items,omitempty"`
	// Source is the account's size at the source, counted by the probe
	// of an account never imported (the plan shows how big its first
	// import is); nil otherwise.
	Source *SourceSize `json:"source_size,omitempty"`
}

// SourceSize is an account's in-scope mail at its source as a cheap probe
// counts it (IMAP LIST-STATUS MESSAGES and SIZE, POP3 STAT, JMAP
// Mailbox/get totalEmails, Maildir file sizes).
type SourceSize struct {
	Messages int64 `json:"messages"`
	// Bytes is the total size, or -1 when the source cannot tell it
	// cheaply (IMAP without STATUS=SIZE, JMAP, Exchange).
	Bytes int64 `json:"bytes"`
	// BytesFrom says where Bytes comes from: "status-size" (IMAP STATUS
	// SIZE, RFC 8438), "stat" (POP3 STAT), "files" (Maildir file sizes);
	// "" when unknown.
	BytesFrom string `json:"bytes_from,omitempty"`
	// Approx marks counts from the source's counters: the import may find
	// a few more or fewer (new mail, sizes counted with other line ends).
	Approx bool `json:"approx,omitempty"`
}

// DataDelta is what changed at the source in one data kind.
type DataDelta struct {
	Kind    plan.DataKind `json:"kind"`
	Changed int64         `json:"changed"`
}

// Messages returns the number of messages the delta touches.
func (d Delta) Messages() int64 { return d.New + d.Changed + d.Deleted }

// Any reports whether the delta found anything to copy.
func (d Delta) Any() bool {
	return d.Known && (d.NotImported || d.Messages() > 0 || d.Mailboxes > 0 || d.FoldersAdded+d.FoldersRemoved+d.FoldersRenamed > 0 || len(d.Items) > 0)
}

// ArchiveInfo is what an account's local archive says, read without
// disturbing a running import (a shared, non-blocking open).
type ArchiveInfo struct {
	// InUse is set when another process (a running import or export)
	// holds the archive; the counts are then unknown.
	InUse bool `json:"in_use,omitempty"`
	// Mailboxes, Messages and Bytes are the archive's live totals.
	Mailboxes int64 `json:"mailboxes"`
	Messages  int64 `json:"messages"`
	Bytes     int64 `json:"bytes"`
	// Cursors counts mailboxes with a saved sync cursor.
	Cursors int64 `json:"cursors"`
	// LastImport is the last complete import, LastRun the last import
	// run of any outcome, LastExport the last export mapping written.
	LastImport time.Time `json:"last_import,omitzero"`
	LastRun    time.Time `json:"last_run,omitzero"`
	LastExport time.Time `json:"last_export,omitzero"`
	// Exported counts archive messages on the target. Unexported counts
	// live messages never exported there, ExportChanged mapped messages
	// changed since their export, ExportDeleted tombstones still on the
	// target: what the next export would do.
	Exported      int64 `json:"exported"`
	Unexported    int64 `json:"unexported,omitempty"`
	ExportChanged int64 `json:"export_changed,omitempty"`
	ExportDeleted int64 `json:"export_deleted,omitempty"`
	// Recorded is set when the archive is not on this machine and these
	// figures are what the apply that holds it recorded (RecordedArchives).
	Recorded *RecordedBy `json:"recorded,omitempty"`
}

// ExportPending is the number of messages the next export would touch.
func (a ArchiveInfo) ExportPending() int64 { return a.Unexported + a.ExportChanged + a.ExportDeleted }

// Observed is everything Diff knows about the world.
type Observed struct {
	// State is the fold of the journal. Nil means an empty journal.
	State *state.State
	// Routes maps normalised account addresses to their routes. An account
	// without an entry is routed by the table's default (its source).
	Routes map[string]Route
	// Deltas maps normalised addresses to refresh results.
	Deltas map[string]Delta
	// Archives maps normalised addresses to their archives; an account
	// without an entry has none (or is done: archives of done accounts are
	// not read).
	Archives map[string]ArchiveInfo
	// Refreshed says whether the sources were asked (-refresh).
	Refreshed bool
}

// Key normalises an account address for the journal and the route table:
// [canon.Address], the one normaliser the plan and the route table use too.
func Key(addr string) string { return canon.Address(addr) }

// RouteReader reads the whole route table at once. Implementations must be
// safe for one call at a time.
type RouteReader interface {
	Routes(ctx context.Context) (map[string]Route, error)
}

// ChangeDetector asks an account's source cheaply what changed since the
// archive's last pass (IMAP STATUS with HIGHESTMODSEQ/UIDNEXT/MESSAGES per
// folder, JMAP state strings, DAV sync tokens); for an account never
// imported, how big it is at the source (Delta.Source). It must be safe
// for concurrent use.
type ChangeDetector interface {
	Detect(ctx context.Context, acct *plan.Account) (Delta, error)
}

// ArchiveReader reads accounts' archives for Observe. It must be safe for
// concurrent use.
type ArchiveReader interface {
	// Has reports whether the account has an archive. It is called for
	// every account of the plan and must be cheap (a lookup in a directory
	// listing read once, or a stat at most).
	Has(acct *plan.Account) bool
	// Archive reads the account's archive summary without blocking or
	// disturbing a running import.
	Archive(ctx context.Context, acct *plan.Account) (ArchiveInfo, error)
}

// ObserveOptions configure Observe. A nil *ObserveOptions means defaults.
type ObserveOptions struct {
	// Routes reads the route table; nil means no route table yet.
	Routes RouteReader
	// Archives reads the accounts' archives; nil means none are read.
	Archives ArchiveReader
	// Detector, when set, refreshes the source deltas.
	Detector ChangeDetector
	// Parallelism bounds concurrent archive reads and Detect calls.
	// Default: 8. Detect calls are further bounded per source backend by
	// its limits.connections.
	Parallelism int
	// Accounts restricts archive reads and refresh to these normalised
	// addresses (-target); nil means all.
	Accounts map[string]bool
}

// Observe gathers the observed state for m from the journal fold st and
// the options' readers: the route table, the archives of accounts that
// are not done and, with a Detector, the sources' deltas of accounts that
// are not done (for accounts never imported: their size at the source;
// bounded parallelism overall and per source backend).
// Archive and refresh problems are warnings: the account is then planned
// from the journal alone.
func Observe(ctx context.Context, m *plan.Migration, st *state.State, opts *ObserveOptions) (*Observed, diag.Diagnostics) {
	var diags diag.Diagnostics
	if opts == nil {
		opts = &ObserveOptions{}
	}
	obs := &Observed{State: st, Routes: map[string]Route{}, Deltas: map[string]Delta{}, Archives: map[string]ArchiveInfo{}}
	diags = diags.Append(breakerWarnings(st))
	if opts.Routes != nil {
		rs, err := opts.Routes.Routes(ctx)
		if err != nil {
			return obs, diags.Append(diag.Errorf("Cannot read the route table", "%v. The route table tells which backend serves each account; check the plan's routes block.", err))
		}
		obs.Routes = rs
	}
	obs.Refreshed = opts.Detector != nil
	if opts.Detector == nil && opts.Archives == nil {
		return obs, diags
	}
	// Pick the accounts to look at first (cheap, sequential), so that a
	// plan of 100,000 accounts without archives starts no goroutine.
	type item struct {
		a       *plan.Account
		k       string
		archive bool
		detect  bool
		since   time.Time
	}
	var items []item
	for _, a := range m.Accounts {
		k := Key(a.Address)
		if opts.Accounts != nil && !opts.Accounts[k] {
			continue
		}
		sa := st.Account(k)
		if sa != nil && sa.Phase == state.PhaseDone {
			continue // nothing left to do
		}
		it := item{a: a, k: k}
		it.archive = opts.Archives != nil && opts.Archives.Has(a)
		// Before the first import there is nothing to compare with, but
		// the probe counts the account's size at the source.
		// (An account the plan keeps where it is copies nothing.)
		it.detect = opts.Detector != nil && ((sa != nil && sa.Imported) || a.From != a.To)
		if sa != nil {
			it.since = sa.LastPass
		}
		if it.archive || it.detect {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return obs, diags
	}
	par := opts.Parallelism
	if par <= 0 {
		par = 8
	}
	par = min(par, 4*runtime.GOMAXPROCS(0)+8, len(items))
	backendSem := map[string]chan struct{}{}
	for _, b := range m.Backends {
		n := b.Limits.Connections
		if n <= 0 {
			n = DefaultConnections
		}
		backendSem[b.Name] = make(chan struct{}, n)
	}
	var mu sync.Mutex
	var warns diag.Diagnostics // collected in any order, reported sorted
	work := make(chan item)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if it.archive {
					info, err := opts.Archives.Archive(ctx, it.a)
					mu.Lock()
					if err != nil {
						warns = warns.Append(diag.Diagnostic{Severity: diag.Warning, Account: it.a.Address, Summary: "Cannot read the archive",
							Detail: fmt.Sprintf("%v. The account is planned from the journal alone.", err)})
					} else {
						obs.Archives[it.k] = info
					}
					mu.Unlock()
				}
				if !it.detect || ctx.Err() != nil {
					continue
				}
				sem := backendSem[it.a.From]
				if sem != nil {
					sem <- struct{}{}
				}
				d, err := opts.Detector.Detect(ctx, it.a)
				if sem != nil {
					<-sem
				}
				mu.Lock()
				if err != nil {
					consequence := "The account is planned as if nothing changed since its last pass."
					if sa := st.Account(it.k); sa == nil || !sa.Imported {
						consequence = "Its size at the source is unknown until its first import."
					}
					warns = warns.Append(diag.Diagnostic{Severity: diag.Warning, Account: it.a.Address, Summary: "Cannot refresh account",
						Detail: fmt.Sprintf("%v. %s", err, consequence)})
				} else {
					d.Known = true
					if d.Since.IsZero() {
						d.Since = it.since
					}
					obs.Deltas[it.k] = d
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return obs, diags.Append(summariseWarnings(warns, maxWarningsPerKind))
}

// maxWarningsPerKind bounds the per-account warnings of one kind that
// Observe reports; the rest are counted in one more warning (a source that
// is down must not print 100,000 lines).
const maxWarningsPerKind = 5

// summariseWarnings sorts warnings by summary and account and keeps at
// most limit of each summary, adding one warning that counts the rest.
func summariseWarnings(ws diag.Diagnostics, limit int) diag.Diagnostics {
	sort.SliceStable(ws, func(i, j int) bool {
		if ws[i].Summary != ws[j].Summary {
			return ws[i].Summary < ws[j].Summary
		}
		return ws[i].Account < ws[j].Account
	})
	var out diag.Diagnostics
	for i := 0; i < len(ws); {
		j := i
		for j < len(ws) && ws[j].Summary == ws[i].Summary {
			j++
		}
		n := j - i
		if n <= limit {
			out = append(out, ws[i:j]...)
		} else {
			out = append(out, ws[i:i+limit]...)
			out = append(out, diag.Diagnostic{Severity: diag.Warning, Summary: ws[i].Summary,
				Detail: fmt.Sprintf("The same problem for %d more accounts (e.g. %s). They are planned from the journal alone.", n-limit, ws[i+limit].Account)})
		}
		i = j
	}
	return out
}

// breakerWarnings tell the operator which backends a previous apply found
// unreachable: apply will probe them before dispatching to them.
func breakerWarnings(st *state.State) diag.Diagnostics {
	if st == nil || len(st.Breakers) == 0 {
		return nil
	}
	var out diag.Diagnostics
	for _, name := range slices.Sorted(maps.Keys(st.Breakers)) {
		b := st.Breakers[name]
		out = out.Append(diag.Warnf("Backend unreachable",
			"The circuit breaker of backend %s opened at %s (last error: %s). The next apply probes the backend once and dispatches work to it only if it answers; check the backend, its address and its timeouts block first.",
			name, b.Opened.UTC().Format(time.RFC3339), b.Error))
	}
	return out
}
