package engine

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

func TestDiff(t *testing.T) {
	onTarget := map[string]Route{"a@example.test": {Backend: "stalwart", Generation: 3}}
	tests := map[string]struct {
		plan    func(*plan.Migration)
		st      *stateBuilder
		routes  map[string]Route
		deltas  map[string]Delta
		archs   map[string]ArchiveInfo
		now     time.Time
		targets []string
		want    []string
		// reasons are the changes' reasons, in order; fields left zero
		// here are not compared (views_test words them).
		reasons []Reason
		// notes are substrings expected in the waves' notes, in order.
		notes   []string
		waiting []string
		status  []WaveStatus
	}{
		"fresh start stages everyone": {
			now: day,
			want: []string{
				"+ import a@example.test", "+ export a@example.test <import:a@example.test",
				"+ import b@example.test", "+ export b@example.test <import:b@example.test",
				"+ import c@example.test", "+ export c@example.test <import:c@example.test",
				"+ import d@example.test", "+ export d@example.test <import:d@example.test",
				"+ import e@example.test", "+ export e@example.test <import:e@example.test",
			},
			reasons: []Reason{{Code: ReasonFirstImport, Backend: "legacy"}, {Code: ReasonFirstExport, Backend: "stalwart"}},
			notes:   []string{"window 22:00-05:00 Europe/Berlin opens in 8h (Sat 22:00 CET)", "cut-overs wait for wave pilot (0 of 2 done)"},
			status:  []WaveStatus{WaveWaiting, WaveWaiting},
		},
		"export only after import": {
			now:     day,
			st:      newState().action("a@example.test", "import", state.OutcomeOK, 10),
			targets: []string{"a@example.test"},
			want:    []string{"+ export a@example.test"},
			reasons: []Reason{{Code: ReasonExportPending, Backend: "stalwart", Time: time.Date(2026, 11, 27, 21, 10, 0, 0, time.UTC)}},
		},
		"staged waits outside the window": {
			now:     day,
			st:      newState().staged("a@example.test", 5000),
			targets: []string{"a@example.test"},
			want:    nil,
		},
		"big last pass catches up in the window": {
			now:     night,
			st:      newState().staged("a@example.test", 5000),
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonAboveThreshold, LastPassMessages: 5000, Threshold: 100}},
			notes:   []string{"window 22:00-05:00 Europe/Berlin open until 05:00 CET"},
			status:  []WaveStatus{WaveOpen, WaveWaiting},
		},
		"small last pass cuts over in the window": {
			now:     night,
			st:      newState().caughtUp("a@example.test", 12),
			targets: []string{"a@example.test"},
			want:    []string{"> cutover a@example.test"},
			reasons: []Reason{{Code: ReasonWithinThreshold, Time: time.Date(2026, 11, 27, 21, 10, 0, 0, time.UTC), LastPassMessages: 12, Threshold: 100}},
		},
		"refresh finds changes": {
			now:     day,
			st:      newState().caughtUp("a@example.test", 12),
			deltas:  map[string]Delta{"a@example.test": {Known: true, New: 12, Changed: 3, Since: time.Date(2026, 11, 27, 22, 10, 0, 0, time.UTC)}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged}},
		},
		"an archive imported by other means": {
			now:     day,
			archs:   map[string]ArchiveInfo{"a@example.test": {Messages: 1200, Mailboxes: 9, Bytes: 80 << 20}},
			targets: []string{"a@example.test"},
			want:    []string{"+ import a@example.test", "+ export a@example.test <import:a@example.test"},
			reasons: []Reason{{Code: ReasonFirstImport, Backend: "legacy"}},
		},
		"first export names the archive's size": {
			now:     day,
			st:      newState().action("a@example.test", "import", state.OutcomeOK, 1200),
			archs:   map[string]ArchiveInfo{"a@example.test": {Messages: 1200, Mailboxes: 9, Bytes: 80 << 20, Unexported: 1200}},
			targets: []string{"a@example.test"},
			want:    []string{"+ export a@example.test"},
			reasons: []Reason{{Code: ReasonExportPending, Backend: "stalwart"}},
		},
		"probe finds new messages and changed mailboxes": {
			now:     day,
			st:      newState().caughtUp("a@example.test", 12),
			deltas:  map[string]Delta{"a@example.test": {Known: true, Approx: true, New: 12, Mailboxes: 3, FoldersAdded: 1, Since: time.Date(2026, 11, 27, 22, 10, 0, 0, time.UTC)}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged}},
		},
		"probe finds only flag changes": {
			now:     day,
			st:      newState().caughtUp("a@example.test", 12),
			deltas:  map[string]Delta{"a@example.test": {Known: true, Approx: true, Mailboxes: 1}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged}},
		},
		"probe without archive imports again": {
			now:     day,
			st:      newState().caughtUp("a@example.test", 12),
			deltas:  map[string]Delta{"a@example.test": {Known: true, NotImported: true, New: 40}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged}},
		},
		"quiet probe cuts over in the window": {
			now:     night,
			st:      newState().caughtUp("a@example.test", 12),
			deltas:  map[string]Delta{"a@example.test": {Known: true, Approx: true}},
			targets: []string{"a@example.test"},
			want:    []string{"> cutover a@example.test"},
		},
		"unexported archive messages need a catch-up": {
			now:     day,
			st:      newState().caughtUp("a@example.test", 12),
			archs:   map[string]ArchiveInfo{"a@example.test": {Messages: 100, Exported: 93, Unexported: 7}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged, Unexported: 7}},
		},
		"unexported archive messages above the threshold postpone the cut-over": {
			now:     night,
			st:      newState().caughtUp("a@example.test", 12),
			archs:   map[string]ArchiveInfo{"a@example.test": {Messages: 1000, Exported: 800, Unexported: 200}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged, Unexported: 200}},
		},
		"an archive in use is not counted": {
			now:     night,
			st:      newState().caughtUp("a@example.test", 12),
			archs:   map[string]ArchiveInfo{"a@example.test": {InUse: true}},
			targets: []string{"a@example.test"},
			want:    []string{"> cutover a@example.test"},
		},
		"big refresh delta postpones the cut-over": {
			now:     night,
			st:      newState().caughtUp("a@example.test", 12),
			deltas:  map[string]Delta{"a@example.test": {Known: true, New: 500}},
			targets: []string{"a@example.test"},
			want:    []string{"~ catch-up a@example.test"},
			reasons: []Reason{{Code: ReasonSourceChanged}},
		},
		"done accounts need nothing; next wave opens": {
			now:     night,
			st:      newState().done("a@example.test").done("b@example.test").caughtUp("c@example.test", 1),
			targets: []string{"a@example.test", "b@example.test", "c@example.test"},
			want:    []string{"> cutover c@example.test"},
			status:  []WaveStatus{WaveDone, WaveOpen},
		},
		"after blocks the second wave": {
			now:     night,
			st:      newState().done("a@example.test").caughtUp("b@example.test", 500).caughtUp("c@example.test", 1),
			targets: []string{"b@example.test", "c@example.test"},
			want:    []string{"~ catch-up b@example.test"},
			notes:   []string{"open until", "cut-overs wait for wave pilot (1 of 2 done)"},
		},
		"not_before": {
			plan: func(m *plan.Migration) {
				m.Waves[0].NotBefore = time.Date(2026, 12, 1, 22, 0, 0, 0, berlin)
			},
			now:     night,
			st:      newState().caughtUp("a@example.test", 1),
			targets: []string{"a@example.test"},
			want:    nil,
			notes:   []string{"cut-overs not before 2026-12-01 22:00 CET (in 2d22h)"},
		},
		"canaries first": {
			plan: func(m *plan.Migration) {
				m.Waves[1].After = nil
				m.Waves[1].Canary = 1
			},
			now:     night,
			st:      newState().caughtUp("c@example.test", 1).caughtUp("d@example.test", 1).caughtUp("e@example.test", 1),
			targets: []string{"c@example.test", "d@example.test", "e@example.test"},
			want:    []string{"> cutover c@example.test canary", "> cutover d@example.test <cutover:c@example.test", "> cutover e@example.test <cutover:c@example.test"},
		},
		"canary not ready holds the others": {
			plan: func(m *plan.Migration) {
				m.Waves[1].After = nil
				m.Waves[1].Canary = 1
			},
			now:     night,
			st:      newState().caughtUp("c@example.test", 700).caughtUp("d@example.test", 1),
			targets: []string{"c@example.test", "d@example.test"},
			want:    []string{"~ catch-up c@example.test"},
			waiting: []string{"d@example.test: waiting for the wave's canary accounts (0 of 1 done)"},
		},
		"failures halt the wave": {
			now: night,
			st: newState().caughtUp("a@example.test", 1).caughtUp("b@example.test", 1).
				add(state.Record{Type: state.TypeFinish, Account: "b@example.test", Action: "cutover", Outcome: state.OutcomeRolledBack, Error: "verify found 2 mismatches", Counts: &state.Counts{Mismatches: 2}}),
			targets: []string{"a@example.test"},
			want:    nil,
			notes:   []string{"halted: 1 account with failed cut-overs (max_errors = 0), 2 verify mismatches"},
			status:  []WaveStatus{WaveHalted, WaveWaiting},
		},
		"interrupted cut-over after the flip resumes": {
			now: day,
			st: newState().caughtUp("a@example.test", 1).add(state.Record{Type: state.TypeStart, Account: "a@example.test", Action: "cutover"}).
				phase("a@example.test", state.PhaseFrozen).phase("a@example.test", state.PhaseFinalSync).phase("a@example.test", state.PhaseVerified),
			routes:  map[string]Route{"a@example.test": {Backend: "stalwart", Frozen: true, Generation: 5}},
			targets: []string{"a@example.test"},
			want:    []string{"> cutover a@example.test resume"},
			reasons: []Reason{{Code: ReasonFinishCutover, Backend: "stalwart", Interrupted: "cutover", At: state.PhaseVerified}},
		},
		"interrupted cut-over outside the window rolls back": {
			now: day,
			st: newState().caughtUp("a@example.test", 1).add(state.Record{Type: state.TypeStart, Account: "a@example.test", Action: "cutover"}).
				phase("a@example.test", state.PhaseFrozen),
			routes:  map[string]Route{"a@example.test": {Backend: "legacy", Frozen: true, Generation: 4}},
			targets: []string{"a@example.test"},
			want:    []string{"- rollback a@example.test"},
			reasons: []Reason{{Code: ReasonLeftFrozen, Backend: "legacy", Interrupted: "cutover", At: state.PhaseFrozen}},
		},
		"interrupted cut-over inside the window retries": {
			now: night,
			st: newState().caughtUp("a@example.test", 1).add(state.Record{Type: state.TypeStart, Account: "a@example.test", Action: "cutover"}).
				phase("a@example.test", state.PhaseFrozen),
			routes:  map[string]Route{"a@example.test": {Backend: "legacy", Frozen: true, Generation: 4}},
			targets: []string{"a@example.test"},
			want:    []string{"> cutover a@example.test"},
			reasons: []Reason{{Code: ReasonRetryCutover, Interrupted: "cutover", At: state.PhaseFrozen}},
		},
		"interrupted rollback of a done account is finished inside the window": {
			now:     night,
			st:      newState().done("a@example.test").add(state.Record{Type: state.TypeStart, Account: "a@example.test", Action: "rollback"}),
			routes:  onTarget,
			targets: []string{"a@example.test"},
			want:    []string{"- rollback a@example.test"},
			reasons: []Reason{{Code: ReasonLeftFrozen, Backend: "legacy", Interrupted: "rollback", At: state.PhaseDone}},
		},
		"interrupted import is retried": {
			now:     day,
			st:      newState().add(state.Record{Type: state.TypeStart, Account: "a@example.test", Action: "import"}),
			targets: []string{"a@example.test"},
			want:    []string{"+ import a@example.test", "+ export a@example.test <import:a@example.test"},
			reasons: []Reason{{Code: ReasonFirstImport, Backend: "legacy", RetryAction: "import", RetrySeq: 2}},
		},
		"adopt an account already on its target": {
			now:     day,
			routes:  onTarget,
			targets: []string{"a@example.test"},
			want:    []string{"= adopt a@example.test"},
		},
		"plan moves a done account back": {
			plan:    func(m *plan.Migration) { m.Accounts[0].To = "legacy" },
			now:     day,
			st:      newState().done("a@example.test"),
			routes:  onTarget,
			targets: []string{"a@example.test"},
			want:    []string{"- rollback a@example.test"},
			reasons: []Reason{{Code: ReasonPlanKeeps, Backend: "legacy", RoutedTo: "stalwart"}},
		},
		"held account catches up but does not cut over": {
			now:     night,
			st:      newState().caughtUp("a@example.test", 1).add(state.Record{Type: state.TypeHold, Account: "a@example.test", Note: "rolled back by hand"}),
			targets: []string{"a@example.test"},
			want:    nil,
			waiting: []string{`a@example.test: held: rolled back by hand; run "mailmig state release a@example.test"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := testPlan()
			if tc.plan != nil {
				tc.plan(m)
			}
			st := tc.st
			if st == nil {
				st = newState()
			}
			obs := &Observed{State: &st.st, Routes: tc.routes, Deltas: tc.deltas, Archives: tc.archs, Refreshed: tc.deltas != nil}
			ch, diags := Diff(m, obs, &DiffOptions{Clock: FixedClock{tc.now}, Targets: tc.targets})
			if diags.HasErrors() {
				t.Fatal(diags.Err())
			}
			if diff := cmp.Diff(tc.want, changeList(ch)); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			all := ch.All()
			for i, r := range tc.reasons {
				if i >= len(all) {
					t.Errorf("reason %d: no change", i)
					continue
				}
				if d := cmp.Diff(r, maskReason(all[i].Reason, r)); d != "" {
					t.Errorf("reason %d (-want +got):\n%s", i, d)
				}
			}
			for i, n := range tc.notes {
				if i >= len(ch.Waves) || !strings.Contains(ch.Waves[i].Note, n) {
					t.Errorf("wave %d note = %q, want it to contain %q", i, ch.Waves[i].Note, n)
				}
			}
			for i, s := range tc.status {
				if ch.Waves[i].Status != s {
					t.Errorf("wave %d status = %s, want %s", i, ch.Waves[i].Status, s)
				}
			}
			var waiting []string
			for _, w := range ch.Waves {
				for _, x := range w.Waiting {
					waiting = append(waiting, x.Account+": "+x.Reason)
				}
			}
			for _, w := range tc.waiting {
				found := false
				for _, g := range waiting {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("waiting %q not in %q", w, waiting)
				}
			}
			if ch.Summary.Changes != len(all) {
				t.Errorf("summary counts %d changes, have %d", ch.Summary.Changes, len(all))
			}
		})
	}
}

func TestDiffRemovedAndUnknownTarget(t *testing.T) {
	m := testPlan()
	st := newState().caughtUp("gone@example.test", 1).phase("gone@example.test", state.PhaseFrozen)
	obs := &Observed{State: &st.st, Routes: map[string]Route{"gone@example.test": {Backend: "legacy", Frozen: true}}}
	ch, diags := Diff(m, obs, &DiffOptions{Clock: FixedClock{day}})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	if len(ch.Removed) != 1 || ch.Removed[0].Account != "gone@example.test" || !strings.Contains(ch.Removed[0].Note, "FROZEN") {
		t.Fatalf("removed: %+v", ch.Removed)
	}
	for _, c := range ch.All() {
		if c.Account == "gone@example.test" {
			t.Fatal("removed account touched")
		}
	}
	_, diags = Diff(m, obs, &DiffOptions{Clock: FixedClock{day}, Targets: []string{"nobody@example.test"}})
	if !diags.HasErrors() || !strings.Contains(diags.Err().Error(), "Unknown target account") {
		t.Fatalf("unknown target: %v", diags)
	}
}

func TestDiffNoWave(t *testing.T) {
	m := testPlan()
	m.Accounts = append(m.Accounts, &plan.Account{Address: "lost@example.test", From: "legacy", To: "stalwart"})
	st := newState().caughtUp("lost@example.test", 1)
	ch, _ := Diff(m, &Observed{State: &st.st}, &DiffOptions{Clock: FixedClock{night}, Targets: []string{"lost@example.test"}})
	if len(ch.All()) != 0 {
		t.Fatalf("account in no wave got %v", changeList(ch))
	}
	last := ch.Waves[len(ch.Waves)-1]
	if last.Name != NoWave || !strings.Contains(last.Note, "never cut over") {
		t.Fatalf("no-wave group: %+v", last)
	}
}

func TestWindow(t *testing.T) {
	w := nightWindow()
	day := func(h, m int) time.Time { return time.Date(2026, 11, 28, h, m, 0, 0, berlin) }
	cases := map[string]struct {
		t    time.Time
		in   bool
		next time.Time
	}{
		"before start":            {day(21, 59), false, day(22, 0)},
		"at start":                {day(22, 0), true, day(22, 0)},
		"after midnight":          {day(4, 59), true, day(4, 59)},
		"at end":                  {day(5, 0), false, day(22, 0)},
		"noon":                    {day(12, 0), false, day(22, 0)},
		"utc instant in the zone": {time.Date(2026, 11, 28, 21, 30, 0, 0, time.UTC), true, time.Date(2026, 11, 28, 21, 30, 0, 0, time.UTC)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := InWindow(w, c.t); got != c.in {
				t.Fatalf("InWindow(%s) = %v", c.t, got)
			}
			if got := NextWindowOpen(w, c.t); !got.Equal(c.next) {
				t.Fatalf("NextWindowOpen(%s) = %s, want %s", c.t, got, c.next)
			}
		})
	}
	// A same-day window and a DST change: 01:00-04:00 on the night Berlin
	// leaves summer time (2026-10-25, 03:00 CEST → 02:00 CET).
	early := &plan.Window{Text: "01:00-04:00 Europe/Berlin", Start: time.Hour, End: 4 * time.Hour, Location: berlin}
	if !InWindow(early, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)) { // 02:30 CEST/CET
		t.Fatal("02:30 local on DST night not in 01:00-04:00")
	}
	if InWindow(early, time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC)) { // 04:00 CET
		t.Fatal("04:00 local in 01:00-04:00")
	}
	if got, want := WindowCloses(early, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)), time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("closes %s, want %s", got, want)
	}
	if !InWindow(nil, day(12, 0)) {
		t.Fatal("nil window closed")
	}
}

func TestChangesJSONRoundTrip(t *testing.T) {
	m := testPlan()
	ch, _ := Diff(m, &Observed{State: &newState().caughtUp("a@example.test", 1).st}, &DiffOptions{Clock: FixedClock{night}})
	var b strings.Builder
	if err := ch.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"action": "cutover"`) || !strings.Contains(b.String(), `"format_version": "`+FormatVersion+`"`) {
		t.Fatalf("JSON lacks fields:\n%s", b.String())
	}
	back, err := ReadChanges(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(changeList(ch), changeList(back)); diff != "" {
		t.Fatal(diff)
	}
	if diff := cmp.Diff(ch.All()[0].Reason, back.All()[0].Reason); diff != "" || back.All()[0].Reason.Code != ReasonWithinThreshold {
		t.Fatalf("reason after the round trip (-want +got):\n%s", diff)
	}
	if _, err := ReadChanges(strings.NewReader(`{"format_version":"3.0"}`)); err == nil {
		t.Fatal("future major version accepted")
	}
	// 1.0 had the reason as text.
	if _, err := ReadChanges(strings.NewReader(`{"format_version":"1.0","waves":[{"changes":[{"id":"x","reason":"first full import"}]}]}`)); err == nil || !strings.Contains(err.Error(), `format version "1.0"`) {
		t.Fatalf("format 1.0: %v", err)
	}
}

// maskReason zeroes the fields of got that want leaves zero, so that a
// test states only the fields it is about.
func maskReason(got, want Reason) Reason {
	g, w := reflect.ValueOf(&got).Elem(), reflect.ValueOf(want)
	for i := 0; i < g.NumField(); i++ {
		if w.Field(i).IsZero() {
			g.Field(i).SetZero()
		}
	}
	return got
}

// TestDiffImportSourceSize: the size a refresh counted at the source of an
// account never imported rides on its import change (and survives the
// saved JSON form); an account probed without a size gets no delta there.
func TestDiffImportSourceSize(t *testing.T) {
	m := testPlan()
	size := &SourceSize{Messages: 3000, Bytes: 204_162_662, BytesFrom: "status-size", Approx: true}
	obs := &Observed{State: &newState().st, Refreshed: true, Deltas: map[string]Delta{
		"a@example.test": {Known: true, Approx: true, NotImported: true, New: 3000, Source: size},
		"b@example.test": {Known: true, Approx: true}, // a Takeout: nothing to ask
	}}
	ch, diags := Diff(m, obs, &DiffOptions{Clock: FixedClock{day}, Targets: []string{"a@example.test", "b@example.test"}})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	data, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadChanges(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Change{}
	for _, c := range back.All() {
		got[c.ID] = c
	}
	a := got["import:a@example.test"]
	if a == nil || a.Delta == nil || a.Delta.Source == nil || *a.Delta.Source != *size {
		t.Errorf("import of a = %+v, want its source size %+v", a, size)
	}
	if !bytes.Contains(data, []byte(`"source_size":{"messages":3000,"bytes":204162662,"bytes_from":"status-size","approx":true}`)) {
		t.Errorf("JSON has no source_size object: %s", data)
	}
	if b := got["import:b@example.test"]; b == nil || b.Delta != nil {
		t.Errorf("import of b = %+v, want no delta", b)
	}
	if e := got["export:a@example.test"]; e == nil || e.Delta != nil {
		t.Errorf("export of a = %+v, want no delta", e)
	}
}
