package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// fakeChecker answers the pre-flight from tables; it counts the checks
// that hold each backend at once.
type fakeChecker struct {
	src map[string]error
	tgt map[string]error
	// size per account; quota and capabilities of the target.
	size  int64
	quota *vandelay.Quota
	caps  []string

	mu      sync.Mutex
	running map[string]int
	maxSeen map[string]int
	checked atomic.Int64
}

func (f *fakeChecker) enter(b string) func() {
	f.mu.Lock()
	f.running[b]++
	f.maxSeen[b] = max(f.maxSeen[b], f.running[b])
	f.mu.Unlock()
	return func() { f.mu.Lock(); f.running[b]--; f.mu.Unlock() }
}

func (f *fakeChecker) CheckSource(ctx context.Context, acct *plan.Account, lim *Limiter) (*vandelay.SourceCheck, error) {
	defer f.enter(acct.From)()
	f.checked.Add(1)
	if err := f.src[acct.Address]; err != nil {
		return nil, err
	}
	return &vandelay.SourceCheck{Size: f.size, SizeFrom: "status-size"}, nil
}

func (f *fakeChecker) CheckTarget(ctx context.Context, acct *plan.Account, lim *Limiter) (*vandelay.TargetCheck, error) {
	defer f.enter(acct.To)()
	if err := f.tgt[acct.Address]; err != nil {
		return nil, err
	}
	return &vandelay.TargetCheck{AccountID: acct.Address, Capabilities: f.caps, Quota: f.quota}, nil
}

func TestPreflight(t *testing.T) {
	auth := fmt.Errorf("%w: refused", vandelay.ErrAuth)
	tests := map[string]struct {
		master bool
		data   []plan.DataKind
		src    map[string]error
		tgt    map[string]error
		quota  *vandelay.Quota
		caps   []string
		want   map[string][]string // account → "side problem inferred"
	}{
		"wrong password and a missing account": {
			src:  map[string]error{"a@example.test": auth},
			tgt:  map[string]error{"a@example.test": auth, "b@example.test": auth},
			caps: []string{"urn:ietf:params:jmap:mail"},
			want: map[string][]string{"a@example.test": {"source login_refused false", "target login_refused false"}, "b@example.test": {"target account_missing true"}},
		},
		"master login: the session says the account is missing": {
			master: true,
			tgt:    map[string]error{"c@example.test": fmt.Errorf("%w: c", vandelay.ErrAccountMissing), "d@example.test": auth},
			caps:   []string{"urn:ietf:params:jmap:mail"},
			// With a master login a refusal is the master's, never inferred.
			want: map[string][]string{"c@example.test": {"target account_missing false"}, "d@example.test": {"target login_refused false"}},
		},
		"quota below the source's size": {
			quota: &vandelay.Quota{Used: 900, Limit: 1000},
			caps:  []string{"urn:ietf:params:jmap:mail"},
			want: map[string][]string{"a@example.test": {"target quota_too_small false"}, "b@example.test": {"target quota_too_small false"},
				"c@example.test": {"target quota_too_small false"}, "d@example.test": {"target quota_too_small false"}, "e@example.test": {"target quota_too_small false"}},
		},
		"a data kind without its JMAP capability": {
			data: []plan.DataKind{plan.DataMail, plan.DataCalendars},
			caps: []string{"https://cyrusimap.org/ns/jmap/calendars"},
			want: map[string][]string{"a@example.test": {"target protocol_missing false"}, "b@example.test": {"target protocol_missing false"},
				"c@example.test": {"target protocol_missing false"}, "d@example.test": {"target protocol_missing false"}, "e@example.test": {"target protocol_missing false"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := testPlan()
			if tc.master {
				m.Backends[1].Login = plan.LoginMaster
				m.Backends[1].Master = &plan.Master{User: "admin", Password: plan.NewSecret("masterpw"), PasswordRef: `env("MASTER_PW")`}
			}
			for _, a := range m.Accounts {
				a.PasswordRef, a.Password = "env:PW_"+a.Address[:1], plan.NewSecret("pw")
				a.Data = []plan.DataKind{plan.DataMail}
				if tc.data != nil {
					a.Data = tc.data
				}
			}
			f := &fakeChecker{src: tc.src, tgt: tc.tgt, size: 500, quota: tc.quota, caps: tc.caps, running: map[string]int{}, maxSeen: map[string]int{}}
			r := Preflight(context.Background(), m, f, &PreflightOptions{Parallelism: 5})
			got := map[string][]string{}
			for _, a := range r.Accounts {
				for _, fd := range a.Findings {
					got[a.Account] = append(got[a.Account], fmt.Sprintf("%s %s %v", fd.Side, fd.Problem, fd.Inferred))
					if fd.Side == SideTarget && tc.master && (fd.Login != "admin" || fd.SecretRef != `env("MASTER_PW")`) {
						t.Errorf("%s: target login %q with %q, want the master user and its password's reference", a.Account, fd.Login, fd.SecretRef)
					}
					if fd.Side == SideSource && fd.SecretRef != "env:PW_"+a.Account[:1] {
						t.Errorf("%s: secret ref %q", a.Account, fd.SecretRef)
					}
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("findings (-want +got):\n%s", d)
			}
			if r.Failed != len(tc.want) || r.Checked != 5 {
				t.Errorf("checked %d failed %d, want 5 and %d", r.Checked, r.Failed, len(tc.want))
			}
			// testPlan's limits: legacy 2 connections, stalwart 3.
			if f.maxSeen["legacy"] > 2 || f.maxSeen["stalwart"] > 3 {
				t.Errorf("connections held at once: %v, want at most legacy 2 and stalwart 3", f.maxSeen)
			}
		})
	}
}

// TestPreflightScope checks only -target accounts and skips done ones.
func TestPreflightScope(t *testing.T) {
	m := testPlan()
	b := newState()
	b.done("c@example.test")
	f := &fakeChecker{running: map[string]int{}, maxSeen: map[string]int{}, caps: []string{"urn:ietf:params:jmap:mail"}}
	r := Preflight(context.Background(), m, f, &PreflightOptions{State: &b.st, Accounts: map[string]bool{"a@example.test": true, "c@example.test": true}})
	if r.Checked != 1 || r.Skipped != 1 || len(r.Accounts) != 2 || r.Accounts[1].Skipped != "done" || f.checked.Load() != 1 {
		t.Errorf("scope: checked %d skipped %d accounts %d, source logins %d", r.Checked, r.Skipped, len(r.Accounts), f.checked.Load())
	}
}

// blockingChecker holds every source check until released, so that the
// test sees how many run at once.
type blockingChecker struct {
	fakeChecker
	release chan struct{}
}

func (b *blockingChecker) CheckSource(ctx context.Context, acct *plan.Account, lim *Limiter) (*vandelay.SourceCheck, error) {
	defer b.enter(acct.From)()
	<-b.release
	return &vandelay.SourceCheck{Size: 1}, nil
}

// TestPreflightHoldsBackendLimit: with Parallelism 5 and legacy's
// limits.connections of 2, two source checks run and the others wait.
func TestPreflightHoldsBackendLimit(t *testing.T) {
	m := testPlan()
	b := &blockingChecker{fakeChecker: fakeChecker{running: map[string]int{}, maxSeen: map[string]int{}, caps: []string{"urn:ietf:params:jmap:mail"}},
		release: make(chan struct{})}
	done := make(chan *CheckReport)
	go func() { done <- Preflight(context.Background(), m, b, &PreflightOptions{Parallelism: 5}) }()
	running := func() int { b.mu.Lock(); defer b.mu.Unlock(); return b.running["legacy"] }
	for i := 0; i < 200 && running() < 2; i++ {
		<-time.After(5 * time.Millisecond)
	}
	// Give the three waiting accounts a chance to (wrongly) start.
	<-time.After(50 * time.Millisecond)
	if n := running(); n != 2 {
		t.Errorf("%d source checks at once, want legacy's 2 connections", n)
	}
	close(b.release)
	r := <-done
	if r.Checked != 5 || r.Failed != 0 || b.maxSeen["legacy"] != 2 {
		t.Errorf("checked %d failed %d, at most %d at once", r.Checked, r.Failed, b.maxSeen["legacy"])
	}
}
