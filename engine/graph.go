package engine

import (
	"fmt"
)

// node is one change in the dependency graph.
type node struct {
	idx        int
	c          *Change
	deps       int     // unfinished dependencies
	dependents []*node // changes that wait for this one
	wave       string
	backends   []string // backends whose connection slots the change holds
	done       bool
	result     *Result
}

// graph is the dependency DAG of a Changes.
type graph struct {
	nodes []*node
	byID  map[string]*node
}

// buildGraph links every change to its dependencies. Dependencies on IDs
// that are not in the changes are errors, as are cycles.
func buildGraph(ch *Changes) (*graph, error) {
	g := &graph{byID: map[string]*node{}}
	for _, c := range ch.All() {
		if g.byID[c.ID] != nil {
			return nil, fmt.Errorf("change %s appears twice", c.ID)
		}
		n := &node{idx: len(g.nodes), c: c, wave: c.Wave, backends: backendsOf(c)}
		g.nodes = append(g.nodes, n)
		g.byID[c.ID] = n
	}
	for _, n := range g.nodes {
		for _, dep := range n.c.DependsOn {
			d := g.byID[dep]
			if d == nil {
				return nil, fmt.Errorf("change %s depends on %s, which is not among the changes", n.c.ID, dep)
			}
			d.dependents = append(d.dependents, n)
			n.deps++
		}
	}
	// Cycle check (Kahn).
	deps := make([]int, len(g.nodes))
	var queue []*node
	for i, n := range g.nodes {
		deps[i] = n.deps
		if n.deps == 0 {
			queue = append(queue, n)
		}
	}
	seen := 0
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		seen++
		for _, d := range n.dependents {
			deps[d.idx]--
			if deps[d.idx] == 0 {
				queue = append(queue, d)
			}
		}
	}
	if seen != len(g.nodes) {
		return nil, fmt.Errorf("the changes' dependencies form a cycle")
	}
	return g, nil
}

// backendsOf returns the backends whose connections a change uses, sorted
// so that slots are always taken in the same order.
func backendsOf(c *Change) []string {
	var bs []string
	switch c.Action {
	case Import:
		bs = []string{c.Source}
	case Export:
		bs = []string{c.Target}
	case CatchUp, Cutover:
		bs = []string{c.Source, c.Target}
		if c.Resume {
			bs = nil
		}
	}
	if len(bs) == 2 && bs[0] > bs[1] {
		bs[0], bs[1] = bs[1], bs[0]
	}
	if len(bs) == 2 && bs[0] == bs[1] {
		bs = bs[:1]
	}
	return bs
}
