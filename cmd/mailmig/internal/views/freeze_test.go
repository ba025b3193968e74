package views

import (
	"testing"

	"github.com/mailmig/mailmig/engine"
)

func TestFreezeText(t *testing.T) {
	for name, tc := range map[string]struct {
		f    *engine.FreezeEstimate
		want string
	}{
		"none":       {nil, ""},
		"as last":    {&engine.FreezeEstimate{Seconds: 2, LastCatchUpSeconds: 2, LastCatchUpChanges: 10, Pending: 4}, "frozen about 2 s (the last catch-up took 2 s for 10 changes)"},
		"sub-second": {&engine.FreezeEstimate{Seconds: 1, LastCatchUpSeconds: 1, LastCatchUpChanges: 1, Pending: -1}, "frozen 1 s or less (the last catch-up: 1 change in 1 s or less)"},
		"more now":   {&engine.FreezeEstimate{Seconds: 25, LastCatchUpSeconds: 5, LastCatchUpChanges: 20, Pending: 100}, "frozen about 25 s (the last catch-up took 5 s for 20 changes; 100 wait now)"},
		"minutes":    {&engine.FreezeEstimate{Seconds: 600, LastCatchUpSeconds: 60, LastCatchUpChanges: 0, Pending: 10}, "frozen about 10 min (the last catch-up took 60 s for 0 changes; 10 wait now)"},
	} {
		c := &engine.Change{Action: engine.Cutover, Freeze: tc.f}
		if got := FreezeText(c); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, tc.want)
		}
	}
}
