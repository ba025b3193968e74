package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailmig/mailmig/engine/diag"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// Default thresholds used when a wave sets neither catch-up threshold.
const (
	DefaultCatchupThreshold      = 100
	DefaultCatchupThresholdBytes = 10 << 20
)

// DiffOptions configure Diff. A nil *DiffOptions means defaults.
type DiffOptions struct {
	// Clock judges windows and not_before. Default: SystemClock.
	Clock Clock
	// Targets restricts the changes to these accounts (-target).
	Targets []string
	// PlanPath is recorded in the Changes.
	PlanPath string
	// Waves restricts the changes to these waves (-wave); the other
	// waves are left out of the Changes. engine.NoWave names the accounts
	// in no wave.
	Waves []string
}

// waveInfo is what Diff derives about one wave before planning accounts.
type waveInfo struct {
	w        *plan.Wave
	accounts []*entry // in wave order
	status   WaveStatus
	note     string
}

// entry is one planned account with what is observed about it, looked up
// once (a plan may hold 100,000 accounts).
type entry struct {
	a      *plan.Account
	k      string
	sa     *state.Account // nil: the journal never mentioned it
	phase  state.Phase
	canary bool
}

func (d *differ) newEntry(a *plan.Account, k string) *entry {
	e := &entry{a: a, k: k, sa: d.st.Account(k), phase: state.PhasePending}
	if e.sa != nil && e.sa.Phase != "" {
		e.phase = e.sa.Phase
	}
	return e
}

// Diff computes the changes that bring the observed state toward the plan
// m at the clock's time. It is pure: it reads only its arguments.
func Diff(m *plan.Migration, obs *Observed, opts *DiffOptions) (*Changes, diag.Diagnostics) {
	var diags diag.Diagnostics
	if opts == nil {
		opts = &DiffOptions{}
	}
	clock := opts.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	now := clock.Now()
	if obs == nil {
		obs = &Observed{}
	}
	st := obs.State
	if st == nil {
		st = &state.State{}
	}
	ch := &Changes{
		FormatVersion: FormatVersion,
		Lineage:       st.Lineage,
		Serial:        st.Serial,
		PlanHash:      m.Hash,
		PlanPath:      opts.PlanPath,
		Created:       now.UTC(),
		Refreshed:     obs.Refreshed,
	}
	d := &differ{m: m, obs: obs, st: st, now: now, ch: ch, waves: map[string]*waveInfo{}}

	byKey := make(map[string]*plan.Account, len(m.Accounts))
	for _, a := range m.Accounts {
		byKey[Key(a.Address)] = a
	}
	// Waves in plan order (topological by after), then the pseudo-wave.
	waveDone := map[string]bool{}
	var infos []*waveInfo
	inWave := make(map[string]bool, len(m.Accounts))
	for _, w := range m.Waves {
		wi := &waveInfo{w: w}
		for _, addr := range w.Accounts {
			k := Key(addr)
			if a := byKey[k]; a != nil && !inWave[k] {
				inWave[k] = true
				wi.accounts = append(wi.accounts, d.newEntry(a, k))
			}
		}
		d.judgeWave(wi, waveDone)
		d.waves[w.Name] = wi
		waveDone[w.Name] = wi.status == WaveDone
		infos = append(infos, wi)
	}
	var rest []*entry
	for _, a := range m.Accounts {
		if k := Key(a.Address); !inWave[k] {
			rest = append(rest, d.newEntry(a, k))
		}
	}
	if len(rest) > 0 {
		wi := &waveInfo{accounts: rest, status: WaveWaiting, note: "accounts in no wave are staged and kept caught up but never cut over; add them to a wave"}
		if d.allDone(rest) {
			wi.status, wi.note = WaveDone, ""
		}
		infos = append(infos, wi)
	}
	for _, wi := range infos {
		wc := d.planWave(wi)
		if len(opts.Waves) > 0 && !slices.Contains(opts.Waves, wc.Name) {
			continue
		}
		ch.Waves = append(ch.Waves, wc)
	}
	ch.OnlyWaves = opts.Waves
	// Accounts the journal knows and the plan does not.
	for _, k := range st.Addresses() {
		if byKey[k] != nil {
			continue
		}
		sa := st.Accounts[k]
		r, ok := obs.Routes[k]
		rm := &Removed{Account: k, Phase: sa.Phase}
		if ok {
			rm.Route, rm.Frozen = r.Backend, r.Frozen
		}
		rm.Note = "in the journal but no longer in the plan; mailmig leaves it alone"
		if rm.Frozen {
			rm.Note += "; its route is FROZEN: add it back to the plan to finish or roll back its cut-over"
		}
		ch.Removed = append(ch.Removed, rm)
	}
	if len(opts.Targets) > 0 {
		diags = diags.Append(d.filterTargets(opts.Targets, byKey))
	}
	d.summarise(len(m.Accounts))
	diags = diags.Append(d.diags)
	return ch, diags
}

type differ struct {
	m     *plan.Migration
	obs   *Observed
	st    *state.State
	now   time.Time
	ch    *Changes
	diags diag.Diagnostics
	waves map[string]*waveInfo
	// drifted counts done accounts whose route left the target.
	drifted int
}

func (d *differ) allDone(es []*entry) bool {
	for _, e := range es {
		if e.phase != state.PhaseDone {
			return false
		}
	}
	return true
}

func (d *differ) countDone(es []*entry) int {
	n := 0
	for _, e := range es {
		if e.phase == state.PhaseDone {
			n++
		}
	}
	return n
}

// judgeWave sets the wave's cut-over status and note.
func (d *differ) judgeWave(wi *waveInfo, waveDone map[string]bool) {
	w := wi.w
	for i, e := range wi.accounts {
		e.canary = i < w.Canary
	}
	if d.allDone(wi.accounts) {
		wi.status = WaveDone
		return
	}
	failed, mismatches := 0, int64(0)
	for _, e := range wi.accounts {
		if sa := e.sa; sa != nil && e.phase != state.PhaseDone && sa.FailedCutovers > 0 {
			failed++
			mismatches += sa.Mismatches
		}
	}
	if failed > w.MaxErrors || mismatches > int64(w.MaxVerifyMismatches) {
		wi.status = WaveHalted
		wi.note = fmt.Sprintf("halted: %s with failed cut-overs (max_errors = %d), %s (max_verify_mismatches = %d); fix the cause, then run \"mailmig state release ACCOUNT\" for each",
			plural(failed, "account"), w.MaxErrors, plural(int(mismatches), "verify mismatch"), w.MaxVerifyMismatches)
		return
	}
	for _, after := range w.After {
		if !waveDone[after] {
			var n, done int
			if ai := d.waves[after]; ai != nil {
				n, done = len(ai.accounts), d.countDone(ai.accounts)
			}
			wi.status = WaveWaiting
			wi.note = fmt.Sprintf("cut-overs wait for wave %s (%d of %d done)", after, done, n)
			return
		}
	}
	if !w.NotBefore.IsZero() && d.now.Before(w.NotBefore) {
		loc := time.UTC
		if w.CutoverWindow != nil {
			loc = windowLoc(w.CutoverWindow)
		}
		wi.status = WaveWaiting
		wi.note = fmt.Sprintf("cut-overs not before %s (in %s)", w.NotBefore.In(loc).Format("2006-01-02 15:04 MST"), humanDuration(w.NotBefore.Sub(d.now)))
		return
	}
	if cw := w.CutoverWindow; cw != nil {
		if !InWindow(cw, d.now) {
			next := NextWindowOpen(cw, d.now)
			wi.status = WaveWaiting
			wi.note = fmt.Sprintf("cut-over window %s opens in %s (%s)", cw.Text, humanDuration(next.Sub(d.now)), next.In(windowLoc(cw)).Format("Mon 15:04 MST"))
			return
		}
		wi.status = WaveOpen
		wi.note = fmt.Sprintf("cut-over window %s open until %s", cw.Text, WindowCloses(cw, d.now).In(windowLoc(cw)).Format("15:04 MST"))
		return
	}
	wi.status = WaveOpen
	wi.note = "cut-overs may run now (no cut-over window)"
}

// planWave plans the accounts of one wave.
func (d *differ) planWave(wi *waveInfo) *WaveChanges {
	wc := &WaveChanges{Name: NoWave, Status: wi.status, Note: wi.note, Accounts: len(wi.accounts), Phases: map[state.Phase]int{}, Changes: []*Change{}}
	if wi.w != nil {
		wc.Name, wc.MaxParallel = wi.w.Name, wi.w.MaxParallel
		wc.After, wc.NotBefore = wi.w.After, wi.w.NotBefore
		if wi.w.CutoverWindow != nil {
			wc.Window = wi.w.CutoverWindow.Text
		}
	}
	for _, e := range wi.accounts {
		wc.Phases[e.phase]++
		if e.canary {
			wc.Canaries = append(wc.Canaries, e.a.Address)
		}
	}
	// Canaries are planned first: the others depend on their cut-overs.
	// Changes are then listed in the wave's own account order.
	var canaryCutovers []string
	canariesPending := 0
	planned := make([][]*Change, len(wi.accounts))
	waiting := make([]string, len(wi.accounts))
	for pass := 0; pass < 2; pass++ {
		for i, e := range wi.accounts {
			if e.canary != (pass == 0) {
				continue
			}
			gate := wi.status == WaveOpen && wi.w != nil
			gateNote := wi.note
			if gate && !e.canary && canariesPending > 0 && len(canaryCutovers) < canariesPending {
				gate = false
				gateNote = fmt.Sprintf("waiting for the wave's canary accounts (%d of %d done)", wi.w.Canary-canariesPending, wi.w.Canary)
			}
			cs, why := d.planAccount(e, wi, gate, gateNote)
			for _, c := range cs {
				c.Canary = e.canary && c.Action == Cutover
				if c.Action == Cutover && !e.canary && len(canaryCutovers) > 0 {
					c.DependsOn = append(c.DependsOn, canaryCutovers...)
				}
			}
			if e.canary && e.phase != state.PhaseDone {
				canariesPending++
				for _, c := range cs {
					if c.Action == Cutover {
						canaryCutovers = append(canaryCutovers, c.ID)
					}
				}
			}
			planned[i], waiting[i] = cs, why
		}
	}
	for i, e := range wi.accounts {
		wc.Changes = append(wc.Changes, planned[i]...)
		lv := lastVerify(e.sa)
		if waiting[i] == "" && lv != nil && len(planned[i]) == 0 && e.phase != state.PhaseDone {
			// A halted wave says why in its note; the account still says
			// what its verify found, so that the operator can act on it.
			waiting[i] = "its last cut-over was rolled back by verify"
		}
		if waiting[i] != "" {
			wc.Waiting = append(wc.Waiting, &Waiting{Account: e.a.Address, Phase: e.phase, Reason: waiting[i], LastVerify: lv})
		}
		if len(planned[i]) == 0 && e.phase != state.PhaseDone {
			wc.Idle++
		}
	}
	return wc
}

// planAccount decides what is due for one account. It returns the changes,
// or a reason when the account waits.
func (d *differ) planAccount(e *entry, wi *waveInfo, gate bool, gateNote string) ([]*Change, string) {
	a, k, sa, phase := e.a, e.k, e.sa, e.phase
	route, hasRoute := d.obs.Routes[k]
	delta := d.obs.Deltas[k]
	arch, hasArch := d.obs.Archives[k]
	onTarget := hasRoute && route.Backend == a.To
	// The plan keeps the account where it is (from = to), or moves it back
	// to the source it was migrated from: either way the route must point
	// at a.To, and nothing is copied.
	back := sa != nil && sa.Source != "" && sa.Target != "" && a.To == sa.Source && a.To != sa.Target
	stay := a.From == a.To || back
	wave := NoWave
	if wi.w != nil {
		wave = wi.w.Name
	}
	mk := func(act Action, reason Reason) *Change {
		c := &Change{ID: act.String() + ":" + k, Account: a.Address, Action: act, Reason: reason, Phase: phase,
			Wave: wave, Source: a.From, Target: a.To, Destructive: act.Destructive(), Fingerprint: Fingerprint(sa, route, hasRoute)}
		if delta.Known && (act == CatchUp || act == Cutover || (act == Import && delta.Source != nil)) {
			dd := delta
			c.Delta = &dd
		}
		if hasArch {
			ai := arch
			c.Archive = &ai
		}
		c.LastVerify = lastVerify(sa)
		return c
	}
	inflight := ""
	if sa != nil {
		inflight = sa.InFlight
	}
	held := sa != nil && sa.Held

	// An interrupted cut-over or a frozen route comes first: nobody may be
	// left frozen.
	if inflight == Cutover.String() || inflight == Rollback.String() || phase.InCutover() || (hasRoute && route.Frozen) {
		switch {
		case onTarget && !stay && inflight != Rollback.String():
			c := mk(Cutover, Reason{Code: ReasonFinishCutover, Backend: a.To, Interrupted: inflight, At: phase})
			c.Resume = true
			return []*Change{c}, ""
		case gate && !stay && !held && sa != nil && sa.Exported && inflight != Rollback.String():
			// An interrupted rollback is finished, never turned into a
			// new cut-over.
			// The wave's note (gateNote) completes the reason.
			return []*Change{mk(Cutover, Reason{Code: ReasonRetryCutover, Interrupted: inflight, At: phase})}, ""
		default:
			dest := a.From
			if sa != nil && sa.Source != "" {
				dest = sa.Source
			}
			c := mk(Rollback, Reason{Code: ReasonLeftFrozen, Backend: dest, Interrupted: inflight, At: phase})
			c.Source = dest
			return []*Change{c}, ""
		}
	}
	if stay {
		if hasRoute && route.Backend != a.To {
			c := mk(Rollback, Reason{Code: ReasonPlanKeeps, Backend: a.To, RoutedTo: route.Backend})
			c.Source = a.To // a rollback routes to its Source
			if back {
				c.Target = sa.Target
			}
			return []*Change{c}, ""
		}
		return nil, fmt.Sprintf("the plan keeps the account on %s", a.To)
	}
	if phase == state.PhaseDone {
		if hasRoute && route.Backend != a.To {
			d.drifted++
			d.diags = d.diags.Append(diag.Diagnostic{Severity: diag.Warning, Account: a.Address, Summary: "Route differs from the journal",
				Detail: fmt.Sprintf("The journal says the account was cut over to %s, but the route table sends it to %s. mailmig does not change it; use \"mailmig routes set\" or \"mailmig rollback\" to make them agree.", a.To, route.Backend)})
		} else if sa != nil && sa.Target != "" && sa.Target != a.To {
			d.diags = d.diags.Append(diag.Diagnostic{Severity: diag.Warning, Account: a.Address, Summary: "Target changed after cut-over",
				Detail: fmt.Sprintf("The account was cut over to %s, but the plan now names %s. Roll it back first (\"mailmig rollback %s\") to migrate it again.", sa.Target, a.To, a.Address)})
		}
		return nil, ""
	}
	// retried marks a reason with the interrupted action it repeats.
	retried := func(r Reason) Reason {
		if inflight != "" {
			r.RetryAction, r.RetrySeq = inflight, sa.InFlightSeq
		}
		return r
	}
	if sa == nil || (!sa.Imported && !sa.Exported) {
		if onTarget {
			return []*Change{mk(Adopt, Reason{Code: ReasonRouteAtTarget, Backend: a.To})}, ""
		}
	}
	if sa == nil || !sa.Imported {
		// The change's Archive says what an existing archive holds.
		imp := mk(Import, retried(Reason{Code: ReasonFirstImport, Backend: a.From}))
		exp := mk(Export, Reason{Code: ReasonFirstExport, Backend: a.To})
		exp.DependsOn = []string{imp.ID}
		return []*Change{imp, exp}, ""
	}
	if !sa.Exported {
		return []*Change{mk(Export, retried(Reason{Code: ReasonExportPending, Backend: a.To, Time: sa.LastImport}))}, ""
	}
	// Staged or catching up.
	thr, thrBytes := int64(DefaultCatchupThreshold), int64(DefaultCatchupThresholdBytes)
	if w := wi.w; w != nil && (w.CatchupThreshold != 0 || w.CatchupThresholdBytes != 0) {
		thr, thrBytes = int64(w.CatchupThreshold), w.CatchupThresholdBytes
		if thrBytes == 0 {
			thrBytes = 1<<63 - 1
		}
	}
	last := sa.LastPassCounts
	pending := last.Messages
	if delta.Known {
		pending = max(pending, delta.Messages())
	}
	// Archive messages never exported (an export that stopped early)
	// are part of the next pass too.
	unexported := int64(0)
	if hasArch && !arch.InUse {
		unexported = arch.Unexported
		pending += unexported
	}
	small := last.Messages <= thr && last.Bytes <= thrBytes && pending <= thr
	changed := delta.Any() || unexported > 0
	thrReason := Reason{LastPassMessages: last.Messages, LastPassBytes: last.Bytes, Threshold: thr, Unexported: unexported}
	if thrBytes != 1<<63-1 {
		thrReason.ThresholdBytes = thrBytes
	}
	switch {
	case gate && small && !held:
		// The wave's note (gateNote) and the change's Delta complete it.
		r := thrReason
		r.Code, r.Time = ReasonWithinThreshold, sa.LastPass
		c := mk(Cutover, r)
		known := int64(-1)
		if delta.Known {
			known = delta.Messages() + unexported
		}
		c.Freeze = freezeEstimate(sa, known)
		return []*Change{c}, ""
	case changed:
		return []*Change{mk(CatchUp, retried(Reason{Code: ReasonSourceChanged, Unexported: unexported}))}, ""
	case inflight != "":
		return []*Change{mk(CatchUp, retried(Reason{Code: ReasonRepeatPass}))}, ""
	case gate && !small && !held:
		r := thrReason
		r.Code = ReasonAboveThreshold
		return []*Change{mk(CatchUp, r)}, ""
	}
	switch {
	case held:
		return nil, fmt.Sprintf("held: %s; run \"mailmig state release %s\" to allow its cut-over", orDefault(sa.HoldNote, "rolled back by hand"), a.Address)
	case wi.w == nil:
		return nil, ""
	case wi.status == WaveOpen:
		return nil, gateNote
	}
	// The wave-level note explains the wait; repeat nothing per account.
	return nil, ""
}

// filterTargets keeps only changes of the targeted accounts, and drops
// changes whose dependencies were dropped.
func (d *differ) filterTargets(targets []string, byKey map[string]*plan.Account) diag.Diagnostics {
	var diags diag.Diagnostics
	want := map[string]bool{}
	for _, t := range targets {
		k := Key(t)
		if byKey[k] == nil {
			diags = diags.Append(diag.Errorf("Unknown target account", "The account %q given with -target is not in the plan. Check the spelling or add the account to an accounts block.", t))
			continue
		}
		want[k] = true
		d.ch.Targets = append(d.ch.Targets, byKey[k].Address)
	}
	narrow(d.ch, want, "which is not targeted")
	return diags
}

// narrow keeps only the changes of the accounts in want (normalised
// addresses) and their waiting entries; a kept account's change whose
// dependency was dropped becomes waiting, saying why (its dependency,
// then why). Used by -target and by apply workers (the accounts they
// claimed).
func narrow(ch *Changes, want map[string]bool, why string) {
	kept := map[string]bool{}
	for _, w := range ch.Waves {
		var cs []*Change
		for _, c := range w.Changes {
			if !want[Key(c.Account)] {
				continue
			}
			ok := true
			var missing string
			for _, dep := range c.DependsOn {
				if !kept[dep] {
					ok, missing = false, dep
				}
			}
			if !ok {
				w.Waiting = append(w.Waiting, &Waiting{Account: c.Account, Phase: c.Phase, Reason: fmt.Sprintf("its %s depends on %s, %s", c.Action, missing, why)})
				continue
			}
			kept[c.ID] = true
			cs = append(cs, c)
		}
		w.Changes = cs
		var ws []*Waiting
		for _, x := range w.Waiting {
			if want[Key(x.Account)] {
				ws = append(ws, x)
			}
		}
		w.Waiting = ws
	}
}

func (d *differ) summarise(accounts int) {
	s := &d.ch.Summary
	s.Accounts = accounts
	if len(d.ch.OnlyWaves) > 0 {
		s.Accounts = 0
		for _, w := range d.ch.Waves {
			s.Accounts += w.Accounts
		}
	}
	for _, w := range d.ch.Waves {
		if w.Status == WaveHalted {
			s.Halted++
		}
		for _, c := range w.Changes {
			s.add(c.Action)
		}
		s.Done += w.Phases[state.PhaseDone]
		s.Waiting += len(w.Waiting)
	}
	s.Removed = len(d.ch.Removed)
	s.Drifted = d.drifted
	if len(d.ch.Targets) > 0 {
		return
	}
	// Accounts that wait because of their wave's status count as waiting.
	s.Waiting = 0
	for _, w := range d.ch.Waves {
		s.Waiting += w.Idle
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// fmtInt formats n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "ch") || strings.HasSuffix(word, "s") || strings.HasSuffix(word, "x") {
		return fmtInt(int64(n)) + " " + word + "es"
	}
	return fmtInt(int64(n)) + " " + word + "s"
}
