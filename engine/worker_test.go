package engine

import (
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

// workerChanges is one wave: canary a's cut-over, b's cut-over depending
// on it, c's import and export.
func workerChanges() *Changes {
	ca := &Change{ID: "cutover:a@x", Account: "a@x", Action: Cutover, Canary: true, Source: "old", Target: "new", Reason: Reason{Code: ReasonWithinThreshold}}
	cb := &Change{ID: "cutover:b@x", Account: "b@x", Action: Cutover, Source: "old", Target: "new", DependsOn: []string{"cutover:a@x"}, Reason: Reason{Code: ReasonWithinThreshold}}
	ic := &Change{ID: "import:c@x", Account: "c@x", Action: Import, Source: "old", Target: "new"}
	ec := &Change{ID: "export:c@x", Account: "c@x", Action: Export, Source: "old", Target: "new", DependsOn: []string{"import:c@x"}}
	ch := &Changes{Waves: []*WaveChanges{{Name: "w", Changes: []*Change{ca, cb, ic, ec}}}}
	ch.recount()
	return ch
}

func ids(ch *Changes) string {
	var out []string
	for _, c := range ch.All() {
		out = append(out, c.ID+"<"+strings.Join(c.DependsOn, ",")+">")
	}
	return strings.Join(out, " ")
}

func TestChangesNarrowRehome(t *testing.T) {
	for _, tc := range []struct {
		name            string
		claimed, rehome []string
		retry           bool // a's cut-over retries an interrupted one
		want            string
		waiting         int
		summary         Summary
	}{
		{name: "all claimed", claimed: []string{"a@x", "b@x", "c@x"},
			want: "cutover:a@x<> cutover:b@x<cutover:a@x> import:c@x<> export:c@x<import:c@x>", summary: Summary{Import: 1, Export: 1, Cutover: 2, Changes: 4}},
		{name: "canary held elsewhere", claimed: []string{"b@x", "c@x"},
			want: "import:c@x<> export:c@x<import:c@x>", waiting: 1, summary: Summary{Import: 1, Export: 1, Changes: 2, Waiting: 1}},
		{name: "canary's archive elsewhere", claimed: []string{"a@x", "b@x"}, rehome: []string{"a@x"},
			want: "catch-up:a@x<>", waiting: 1, summary: Summary{CatchUp: 1, Changes: 1, Waiting: 1}},
		{name: "interrupted cut-over, archive elsewhere", claimed: []string{"a@x"}, rehome: []string{"a@x"}, retry: true,
			want: "rollback:a@x<> catch-up:a@x<rollback:a@x>", summary: Summary{CatchUp: 1, Rollback: 1, Changes: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := workerChanges()
			if tc.retry {
				ch.Waves[0].Changes[0].Reason = Reason{Code: ReasonRetryCutover, Interrupted: "cutover", At: state.PhaseFrozen}
			}
			set := func(xs []string) map[string]bool {
				m := map[string]bool{}
				for _, x := range xs {
					m[x] = true
				}
				return m
			}
			ch.Rehome(set(tc.rehome))
			ch.Narrow(set(tc.claimed), "which another worker holds")
			if got := ids(ch); got != tc.want {
				t.Errorf("changes %s, want %s", got, tc.want)
			}
			if n := len(ch.Waves[0].Waiting); n != tc.waiting {
				t.Errorf("%d waiting: %+v", n, ch.Waves[0].Waiting)
			}
			if ch.Summary != tc.summary {
				t.Errorf("summary %+v, want %+v", ch.Summary, tc.summary)
			}
			for _, c := range ch.All() {
				if c.Action == Rollback && (c.Reason.Code != ReasonLeftFrozen || c.Reason.Backend != "old" || !c.Destructive) {
					t.Errorf("rollback %+v", c)
				}
				if c.Action == CatchUp && c.Reason.Code != ReasonArchiveElsewhere {
					t.Errorf("catch-up %+v", c)
				}
			}
			if _, err := buildGraph(ch); err != nil {
				t.Errorf("graph: %v", err)
			}
		})
	}
}
