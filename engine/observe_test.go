package engine

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

type fakeArchives struct {
	has            map[string]ArchiveInfo
	hasCalls, read atomic.Int64
}

func (f *fakeArchives) Has(a *plan.Account) bool {
	f.hasCalls.Add(1)
	_, ok := f.has[Key(a.Address)]
	return ok
}

func (f *fakeArchives) Archive(_ context.Context, a *plan.Account) (ArchiveInfo, error) {
	f.read.Add(1)
	if Key(a.Address) == "e@example.test" {
		return ArchiveInfo{}, errors.New("archive is corrupt")
	}
	return f.has[Key(a.Address)], nil
}

// slowDetector records the most concurrent Detect calls.
type slowDetector struct {
	mu        sync.Mutex
	cur, peak int
	calls     []string
}

func (d *slowDetector) Detect(ctx context.Context, a *plan.Account) (Delta, error) {
	d.mu.Lock()
	d.cur++
	d.peak = max(d.peak, d.cur)
	d.calls = append(d.calls, Key(a.Address))
	d.mu.Unlock()
	for range 1000 { // a server round trip: let the other workers in
		runtime.Gosched()
	}
	d.mu.Lock()
	d.cur--
	d.mu.Unlock()
	return Delta{New: 1, Approx: true}, nil
}

// TestObserve: archives are read for accounts that have one and are not
// done; Detect runs for accounts that are not done (imported ones for
// their delta, the others for their size at the source), at most
// limits.connections at once per source backend.
func TestObserve(t *testing.T) {
	m := testPlan()
	for _, x := range []string{"f", "g", "h", "i", "j", "k"} {
		m.Accounts = append(m.Accounts, &plan.Account{Address: x + "@example.test", From: "legacy", To: "stalwart"})
	}
	st := newState().done("a@example.test").caughtUp("b@example.test", 3).staged("c@example.test", 10)
	for _, x := range []string{"f", "g", "h", "i", "j", "k"} {
		st.staged(x+"@example.test", 1)
	}
	arch := &fakeArchives{has: map[string]ArchiveInfo{
		"a@example.test": {Messages: 1}, // done: not read
		"b@example.test": {Messages: 5, Exported: 5},
		"d@example.test": {Messages: 7, Unexported: 7}, // archive without journal
		"e@example.test": {},
	}}
	det := &slowDetector{}
	obs, diags := Observe(context.Background(), m, &st.st, &ObserveOptions{Archives: arch, Detector: det, Parallelism: 8})
	if got := arch.hasCalls.Load(); got != int64(len(m.Accounts))-1 {
		t.Errorf("Has called %d times, want %d (every account but the done one)", got, len(m.Accounts)-1)
	}
	if got := arch.read.Load(); got != 3 {
		t.Errorf("Archive read %d times, want 3 (b, d, e)", got)
	}
	if len(obs.Archives) != 2 || obs.Archives["b@example.test"].Messages != 5 || obs.Archives["d@example.test"].Unexported != 7 {
		t.Errorf("archives = %+v", obs.Archives)
	}
	if len(diags) != 1 || diags[0].Account != "e@example.test" || diags[0].Summary != "Cannot read the archive" {
		t.Errorf("diagnostics = %+v", diags)
	}
	// All but the done a: b, c and f..k were imported, d and e not yet.
	if len(det.calls) != 10 || len(obs.Deltas) != 10 {
		t.Errorf("detected %v (%d deltas), want b…k", det.calls, len(obs.Deltas))
	}
	if det.peak > 2 {
		t.Errorf("%d Detect calls at once; legacy's limits.connections is 2", det.peak)
	}
	if d := obs.Deltas["b@example.test"]; !d.Known || d.Since.IsZero() {
		t.Errorf("delta of b = %+v, want known with the last pass as since", d)
	}
	if !obs.Refreshed {
		t.Error("not marked refreshed")
	}
}

// TestObserveNoArchives: with nothing to read, no worker starts.
func TestObserveNoArchives(t *testing.T) {
	m := testPlan()
	arch := &fakeArchives{}
	obs, diags := Observe(context.Background(), m, &state.State{}, &ObserveOptions{Archives: arch})
	if len(diags) > 0 || len(obs.Archives) != 0 || arch.read.Load() != 0 || obs.Refreshed {
		t.Errorf("observed %+v, %v", obs, diags)
	}
}

type downDetector struct{}

func (downDetector) Detect(context.Context, *plan.Account) (Delta, error) {
	return Delta{}, errors.New("connection refused")
}

// TestObserveWarningsSummarised: a source that is down gives a few
// warnings in account order and one that counts the rest.
func TestObserveWarningsSummarised(t *testing.T) {
	m := testPlan()
	st := newState()
	only := map[string]bool{}
	for i := range 9 {
		addr := string(rune('k'+i)) + "@example.test"
		m.Accounts = append(m.Accounts, &plan.Account{Address: addr, From: "legacy", To: "stalwart"})
		st.staged(addr, 1)
		only[addr] = true
	}
	_, diags := Observe(context.Background(), m, &st.st, &ObserveOptions{Detector: downDetector{}, Accounts: only})
	var got []string
	for _, d := range diags {
		got = append(got, d.Account+"|"+d.Summary)
	}
	want := []string{"k@example.test|Cannot refresh account", "l@example.test|Cannot refresh account", "m@example.test|Cannot refresh account",
		"n@example.test|Cannot refresh account", "o@example.test|Cannot refresh account", "|Cannot refresh account"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("diagnostics %q, want %q", got, want)
	}
	if !strings.Contains(diags[5].Detail, "4 more accounts (e.g. p@example.test)") {
		t.Errorf("summary detail %q", diags[5].Detail)
	}
	if strings.Contains(diags[0].Detail, "size at the source") {
		t.Errorf("an imported account's warning talks of its size: %q", diags[0].Detail)
	}
}
