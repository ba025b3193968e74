package routes

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestApplyMatchesRebuild applies deltas to overlay tables, past the
// flatten threshold, and checks each result and its changes against a
// table built from scratch and Diff.
func TestApplyMatchesRebuild(t *testing.T) {
	rs := map[string]Route{}
	aliases := map[string]string{}
	build := func(v int64, def string) *Table {
		var list []Route
		for _, r := range rs {
			list = append(list, r)
		}
		return NewTable(v, def, list, aliases, nil)
	}
	for i := range 50 {
		a := fmt.Sprintf("u%d@example.test", i)
		rs[a] = Route{Account: a, Backend: "old", State: Active, Generation: 1, Updated: time.Unix(1_800_000_000, 0).UTC()}
	}
	defer func(n int) { maxOverlay = n }(maxOverlay)
	maxOverlay = 40
	cur := build(1, "")
	def := ""
	for step := range 400 {
		d := Delta{Routes: map[string]*Route{}, Aliases: map[string]string{}}
		a := fmt.Sprintf("u%d@example.test", step%70)
		switch step % 5 {
		case 0, 1, 2:
			r := rs[a]
			r.Account, r.Backend, r.Generation = a, []string{"old", "new"}[step%2], r.Generation+1
			r.State = []State{Active, Frozen}[step%3%2]
			r.Updated = time.Unix(1_800_000_000+int64(step), 0).UTC()
			rs[a] = r
			d.Routes[a] = &r
		case 3:
			id := fmt.Sprintf("alias%d", step%13)
			if step%2 == 0 {
				delete(aliases, id)
				d.Aliases[id] = ""
			} else {
				aliases[id] = a
				d.Aliases[id] = a
			}
		case 4:
			if step%3 == 0 {
				delete(rs, a)
				d.Routes[a] = nil
			}
			if step%7 == 0 {
				def = fmt.Sprint("d", step%2)
				d.Default = &def
			}
		}
		want := build(int64(step+2), def)
		got, changes := cur.Apply(int64(step+2), d)
		if diff := cmp.Diff(want.Routes(), got.Routes()); diff != "" {
			t.Fatalf("step %d routes (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff(want.Aliases(), got.Aliases()); diff != "" {
			t.Fatalf("step %d aliases (-want +got):\n%s", step, diff)
		}
		if got.Default != want.Default || got.Len() != want.Len() {
			t.Fatalf("step %d default %q len %d, want %q %d", step, got.Default, got.Len(), want.Default, want.Len())
		}
		if diff := cmp.Diff(Diff(cur, want), changes); diff != "" {
			t.Fatalf("step %d changes (-diff +apply):\n%s", step, diff)
		}
		cur = got
	}
}
