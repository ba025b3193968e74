package engine

import (
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

func TestFreezeEstimate(t *testing.T) {
	for name, tc := range map[string]struct {
		sa      *state.Account
		pending int64
		want    int64 // -1: no estimate
	}{
		"no state":         {nil, 3, -1},
		"no catch-up":      {&state.Account{}, 3, -1},
		"fewer now":        {&state.Account{LastCatchUpMS: 1200, LastCatchUpChanges: 10}, 3, 2},
		"unknown now":      {&state.Account{LastCatchUpMS: 1200, LastCatchUpChanges: 10}, -1, 2},
		"more now":         {&state.Account{LastCatchUpMS: 1000, LastCatchUpChanges: 10}, 40, 4},
		"no-change pass":   {&state.Account{LastCatchUpMS: 5}, 1, 1},
		"no-change, 4 now": {&state.Account{LastCatchUpMS: 600}, 4, 3},
	} {
		f := freezeEstimate(tc.sa, tc.pending)
		switch {
		case tc.want < 0 && f != nil:
			t.Errorf("%s: %+v, want none", name, f)
		case tc.want >= 0 && (f == nil || f.Seconds != tc.want || f.Pending != tc.pending):
			t.Errorf("%s: %+v, want %v s", name, f, tc.want)
		}
	}
}

// TestFoldLastCatchUp: the fold keeps the last successful catch-up's
// duration and changes, which the estimate reads.
func TestFoldLastCatchUp(t *testing.T) {
	s := &state.State{}
	for _, r := range []state.Record{
		{Seq: 1, Type: state.TypeFinish, Account: "a@x", Action: "import", Outcome: state.OutcomeOK, DurationMS: 90000, Counts: &state.Counts{Messages: 3000, New: 3000}},
		{Seq: 2, Type: state.TypeFinish, Account: "a@x", Action: "catch-up", Outcome: state.OutcomeOK, DurationMS: 1100, Counts: &state.Counts{Messages: 12, New: 10, Deleted: 2}},
		{Seq: 3, Type: state.TypeFinish, Account: "a@x", Action: "catch-up", Outcome: state.OutcomeFailed, DurationMS: 30000},
	} {
		s.Apply(&r)
	}
	a := s.Account("a@x")
	if a == nil || a.LastCatchUpMS != 1100 || a.LastCatchUpChanges != 12 {
		t.Errorf("fold: %+v", a)
	}
}
