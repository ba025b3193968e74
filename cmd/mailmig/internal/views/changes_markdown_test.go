package views

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// pipeReason has a code this mailmig does not know (as in a newer saved
// file), which the views print as it is: here with a pipe to escape.
var pipeReason = engine.Reason{Code: "12 new, 3 changed since 2026-11-27 22:10 UTC | with a pipe"}

// bigChanges builds n changes over three waves, every tenth a rollback.
func bigChanges(n int) *engine.Changes {
	ch := &engine.Changes{FormatVersion: engine.FormatVersion}
	for w := 0; w < 3; w++ {
		ch.Waves = append(ch.Waves, &engine.WaveChanges{Name: fmt.Sprintf("wave-%d", w), Status: engine.WaveOpen, Phases: map[state.Phase]int{}})
	}
	for i := 0; i < n; i++ {
		a := engine.CatchUp
		if i%10 == 0 {
			a = engine.Rollback
		}
		wc := ch.Waves[i%3]
		wc.Accounts++
		wc.Changes = append(wc.Changes, &engine.Change{ID: fmt.Sprintf("%s:user%06d@example.test", a, i), Account: fmt.Sprintf("user%06d@example.test", i),
			Action: a, Destructive: a.Destructive(), Reason: pipeReason})
		wc.Waiting = append(wc.Waiting, &engine.Waiting{Account: fmt.Sprintf("idle%06d@example.test", i), Reason: "held"})
	}
	for i := 0; i < n/10; i++ {
		ch.Removed = append(ch.Removed, &engine.Removed{Account: fmt.Sprintf("gone%06d@example.test", i), Phase: state.PhaseDone, Note: "left alone"})
	}
	ch.Summary = engine.Summary{CatchUp: n - n/10, Rollback: n / 10, Changes: n, Accounts: n}
	return ch
}

func TestMarkdownLimit(t *testing.T) {
	for _, n := range []int{0, 3, 300, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			md := RenderMarkdown(bigChanges(n), MarkdownLimit)
			if len(md) > MarkdownLimit {
				t.Fatalf("%d accounts: %d bytes > %d", n, len(md), MarkdownLimit)
			}
			if n == 0 {
				return
			}
			for _, want := range []string{"### mailmig plan", "| wave-0 | open |", "> [!WARNING]", "<details><summary>Wave wave-0"} {
				if !strings.Contains(md, want) {
					t.Errorf("missing %q", want)
				}
			}
			if strings.Count(md, "<details>") != strings.Count(md, "</details>") {
				t.Error("unbalanced <details>")
			}
			if n == 100_000 && !strings.Contains(md, "more changes in this wave") {
				t.Error("a large plan is not summarised")
			}
			if n == 3 && strings.Contains(md, "more") {
				t.Error("a small plan was cut")
			}
			if !strings.Contains(md, `UTC \| with a pipe |`) {
				t.Error("pipe in a table cell not escaped")
			}
		})
	}
}
