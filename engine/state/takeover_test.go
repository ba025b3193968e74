package state

import "testing"

// TestFoldTakeover: the fold keeps a takeover's note until the account's
// next successful cut-over (a rolled-back one keeps it).
func TestFoldTakeover(t *testing.T) {
	s := &State{}
	s.Apply(&Record{Seq: 1, Type: TypeTakeover, Account: "a@x.test", Note: "taken over by worker w2 from worker w1"})
	if got := s.Account("a@x.test").TakenOver; got != "taken over by worker w2 from worker w1" {
		t.Fatalf("after the takeover: TakenOver %q", got)
	}
	s.Apply(&Record{Seq: 2, Type: TypeFinish, Account: "a@x.test", Action: "cutover", Outcome: OutcomeRolledBack})
	if s.Account("a@x.test").TakenOver == "" {
		t.Fatal("a rolled-back cut-over forgot the takeover")
	}
	s.Apply(&Record{Seq: 3, Type: TypeFinish, Account: "a@x.test", Action: "cutover", Outcome: OutcomeOK})
	if got := s.Account("a@x.test").TakenOver; got != "" {
		t.Fatalf("after the cut-over: TakenOver %q", got)
	}
}
