package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// berlin is the time zone of the test windows.
var berlin = mustLoc("Europe/Berlin")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// nightWindow is "22:00-05:00 Europe/Berlin".
func nightWindow() *plan.Window {
	return &plan.Window{Text: "22:00-05:00 Europe/Berlin", Start: 22 * time.Hour, End: 5 * time.Hour, Location: berlin}
}

// testPlan builds a plan with two waves: pilot (a, b) and everyone (c, d,
// e) after pilot, both with the night window.
func testPlan() *plan.Migration {
	m := &plan.Migration{Hash: "planhash"}
	m.Backends = []*plan.Backend{{Name: "legacy", Limits: plan.Limits{Connections: 2}}, {Name: "stalwart", Limits: plan.Limits{Connections: 3}}}
	add := func(addr, wave string) {
		m.Accounts = append(m.Accounts, &plan.Account{Address: addr, From: "legacy", To: "stalwart", Wave: wave})
	}
	for _, x := range []string{"a", "b"} {
		add(x+"@example.test", "pilot")
	}
	for _, x := range []string{"c", "d", "e"} {
		add(x+"@example.test", "everyone")
	}
	m.Waves = []*plan.Wave{
		{Name: "pilot", Accounts: []string{"a@example.test", "b@example.test"}, CutoverWindow: nightWindow(), MaxParallel: 4, CatchupThreshold: 100, CatchupThresholdBytes: 10 << 20},
		{Name: "everyone", Accounts: []string{"c@example.test", "d@example.test", "e@example.test"}, After: []string{"pilot"}, CutoverWindow: nightWindow(), MaxParallel: 2, CatchupThreshold: 100, CatchupThresholdBytes: 10 << 20},
	}
	return m
}

// night is inside the window; day is outside.
var (
	night = time.Date(2026, 11, 28, 23, 30, 0, 0, berlin)
	day   = time.Date(2026, 11, 28, 14, 0, 0, 0, berlin)
)

// stateBuilder folds records into a State without a file.
type stateBuilder struct {
	st  state.State
	seq uint64
	t   time.Time
}

func newState() *stateBuilder {
	b := &stateBuilder{t: time.Date(2026, 11, 27, 21, 10, 0, 0, time.UTC)}
	b.add(state.Record{Type: state.TypeInit, Lineage: "lin-1"})
	return b
}

func (b *stateBuilder) add(r state.Record) *stateBuilder {
	b.seq++
	r.Seq = b.seq
	if r.Time.IsZero() {
		r.Time = b.t
	}
	b.st.Apply(&r)
	return b
}

func (b *stateBuilder) action(acct, action string, out state.Outcome, msgs int64) *stateBuilder {
	b.add(state.Record{Type: state.TypeStart, Account: acct, Action: action, Source: "legacy", Target: "stalwart"})
	return b.add(state.Record{Type: state.TypeFinish, Account: acct, Action: action, Outcome: out, Counts: &state.Counts{Messages: msgs}})
}

func (b *stateBuilder) phase(acct string, p state.Phase) *stateBuilder {
	return b.add(state.Record{Type: state.TypeTransition, Account: acct, Phase: p})
}

// staged: imported (n messages) and exported.
func (b *stateBuilder) staged(acct string, n int64) *stateBuilder {
	return b.action(acct, "import", state.OutcomeOK, n).action(acct, "export", state.OutcomeOK, n).phase(acct, state.PhaseStaged)
}

// caughtUp: staged then one catch-up of n messages.
func (b *stateBuilder) caughtUp(acct string, n int64) *stateBuilder {
	return b.staged(acct, 5000).action(acct, "catch-up", state.OutcomeOK, n).phase(acct, state.PhaseCatchingUp)
}

func (b *stateBuilder) done(acct string) *stateBuilder {
	b.caughtUp(acct, 3).add(state.Record{Type: state.TypeStart, Account: acct, Action: "cutover"})
	for _, p := range []state.Phase{state.PhaseFrozen, state.PhaseFinalSync, state.PhaseVerified, state.PhaseCutOver, state.PhaseDone} {
		b.phase(acct, p)
	}
	return b.add(state.Record{Type: state.TypeFinish, Account: acct, Action: "cutover", Outcome: state.OutcomeOK, Counts: &state.Counts{Messages: 1}})
}

// changeList renders changes compactly for comparisons.
func changeList(ch *Changes) []string {
	var out []string
	for _, c := range ch.All() {
		s := fmt.Sprintf("%c %s %s", c.Action.Symbol(), c.Action, c.Account)
		if c.Canary {
			s += " canary"
		}
		if c.Resume {
			s += " resume"
		}
		for _, d := range c.DependsOn {
			s += " <" + d
		}
		out = append(out, s)
	}
	return out
}

func TestLimiterShared(t *testing.T) {
	m := testPlan()
	m.Backends[0].Limits.MessagesPerSecond = 1000
	ls := NewLimiters(m)
	l := ls["legacy"]
	if l.Connections != 2 || ls["stalwart"].Connections != 3 {
		t.Fatalf("connections: %d %d", l.Connections, ls["stalwart"].Connections)
	}
	if l.Throttle() == nil || (*Limiter)(nil).Throttle() != nil {
		t.Fatal("throttle")
	}
	if err := l.WaitMessages(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if err := (*Limiter)(nil).WaitBytes(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Backoff(ctx, 3, 0); err == nil {
		t.Fatal("backoff ignored a cancelled context")
	}
}
