package corpus

import (
	"fmt"
	"slices"
	"strings"
)

// Summary describes the corpus in a few lines: counts per folder and kind,
// size percentiles, flags and duplicates.
func (c *Corpus) Summary() string {
	var b strings.Builder
	sizes := make([]int64, 0, len(c.Messages))
	kinds := map[Kind]int{}
	flags := map[string]int{}
	perFolder := map[string]int{}
	dups := 0
	for _, m := range c.Messages {
		sizes = append(sizes, m.Size)
		kinds[m.Kind]++
		perFolder[m.Folder]++
		for _, f := range m.Flags {
			flags[f]++
		}
		if m.DuplicateOf >= 0 {
			dups++
		}
	}
	slices.Sort(sizes)
	pct := func(p float64) int64 {
		if len(sizes) == 0 {
			return 0
		}
		return sizes[min(len(sizes)-1, int(p*float64(len(sizes))))]
	}
	fmt.Fprintf(&b, "corpus seed %d: %d messages, %s in %d folders, %d duplicates\n",
		c.Options.Seed, len(c.Messages), human(c.Size()), len(c.Folders), dups)
	fmt.Fprintf(&b, "sizes: min %s p50 %s p90 %s p99 %s max %s\n",
		human(pct(0)), human(pct(0.5)), human(pct(0.9)), human(pct(0.99)), human(pct(1)))
	fmt.Fprintf(&b, "kinds:")
	for k := Plain; k <= Huge; k++ {
		fmt.Fprintf(&b, " %s %d", k, kinds[k])
	}
	b.WriteString("\nfolders:")
	for _, f := range c.Folders {
		sub := ""
		if !f.Subscribed {
			sub = " unsubscribed"
		}
		fmt.Fprintf(&b, "\n  %-24s %5d%s %s", f.Name, perFolder[f.Name], sub, f.SpecialUse)
	}
	b.WriteString("\nflags:")
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, flags[k])
	}
	b.WriteString("\n")
	return b.String()
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
