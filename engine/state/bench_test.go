package state

import (
	"fmt"
	"testing"
)

// BenchmarkAppend measures one fsynced append to a journal that already
// holds n records; the cost must not grow with n.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fill(b, dir, n)
			j, err := Open(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := j.Append(Record{Type: TypeFinish, Account: fmt.Sprintf("u%d@example.test", i%1000), Action: "catch-up", Outcome: OutcomeOK, Counts: &Counts{Messages: 12, Bytes: 40960}, DurationMS: 830}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func fill(b *testing.B, dir string, n int) {
	j, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := j.Append(Record{Type: TypeFinish, Account: fmt.Sprintf("u%d@example.test", i%5000), Action: "import", Outcome: OutcomeOK, Counts: &Counts{Messages: 100}}); err != nil {
			b.Fatal(err)
		}
	}
	j.Close()
}
