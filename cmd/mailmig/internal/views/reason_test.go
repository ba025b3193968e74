package views

import (
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// TestReasonText words every reason code; the texts are the ones the
// engine built before reasons became data (engine TestDiff's old
// expectations), so the human and Markdown goldens stay as they were.
func TestReasonText(t *testing.T) {
	t2110 := time.Date(2026, 11, 27, 21, 10, 0, 0, time.UTC)
	t2210 := time.Date(2026, 11, 27, 22, 10, 0, 0, time.UTC)
	const note = "cut-over window 22:00-05:00 Europe/Berlin open until 05:00 CET"
	for name, tc := range map[string]struct {
		c    engine.Change
		want string
	}{
		"first import": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFirstImport, Backend: "legacy"}},
			"first full import from legacy"},
		"first import, archive holds some": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFirstImport, Backend: "legacy"}, Archive: &engine.ArchiveInfo{Messages: 1200}},
			"first full import from legacy; the archive already holds 1,200 messages, only what is missing is fetched"},
		"first import, archive in use, retried": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFirstImport, Backend: "legacy", RetryAction: "import", RetrySeq: 2}, Archive: &engine.ArchiveInfo{InUse: true}},
			"first full import from legacy; its archive is in use by another process right now (retrying the import interrupted at seq 2)"},
		"first import, size at the source": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFirstImport, Backend: "legacy"},
			Delta: &engine.Delta{Known: true, NotImported: true, New: 3000, Source: &engine.SourceSize{Messages: 3000, Bytes: 204_162_662, BytesFrom: "status-size"}}},
			"first full import from legacy; 3,000 messages, 194.7 MiB at the source"},
		"first import, bytes unknown, archive holds some": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFirstImport, Backend: "legacy"}, Archive: &engine.ArchiveInfo{Messages: 1200},
			Delta: &engine.Delta{Known: true, NotImported: true, Source: &engine.SourceSize{Messages: 1, Bytes: -1}}},
			"first full import from legacy; 1 message at the source (size unknown); the archive already holds 1,200 messages, only what is missing is fetched"},
		"first export": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFirstExport, Backend: "stalwart"}},
			"first export onto stalwart"},
		"export pending": {engine.Change{Reason: engine.Reason{Code: engine.ReasonExportPending, Backend: "stalwart", Time: t2110}},
			"first export onto stalwart (import finished 2026-11-27 21:10 UTC)"},
		"export pending, archive size": {engine.Change{Reason: engine.Reason{Code: engine.ReasonExportPending, Backend: "stalwart", Time: t2110}, Archive: &engine.ArchiveInfo{Messages: 1200, Mailboxes: 9, Bytes: 80 << 20}},
			"first export onto stalwart (import finished 2026-11-27 21:10 UTC); the archive holds 1,200 messages in 9 mailboxes, 80.0 MiB"},
		"above threshold": {engine.Change{Reason: engine.Reason{Code: engine.ReasonAboveThreshold, LastPassMessages: 5000, LastPassBytes: 1 << 20, Threshold: 100, ThresholdBytes: 1 << 30}},
			"last pass copied 5,000 messages, above the threshold of 100: catch up first so the cut-over's frozen time stays short"},
		"above threshold by bytes": {engine.Change{Reason: engine.Reason{Code: engine.ReasonAboveThreshold, LastPassMessages: 3, LastPassBytes: 3 << 30, Threshold: 100, ThresholdBytes: 1 << 30}},
			"last pass copied 3.0 GiB, above the threshold of 100: catch up first so the cut-over's frozen time stays short"},
		"within threshold": {engine.Change{Reason: engine.Reason{Code: engine.ReasonWithinThreshold, Time: t2110, LastPassMessages: 12, Threshold: 100}},
			"last pass 2026-11-27 21:10 UTC copied 12 messages, within the threshold of 100; " + note},
		"within threshold, source changed": {engine.Change{Reason: engine.Reason{Code: engine.ReasonWithinThreshold, Time: t2110, LastPassMessages: 1, Threshold: 100, Unexported: 2},
			Delta: &engine.Delta{Known: true, New: 3, Since: t2210}},
			"3 new since 2026-11-27 22:10 UTC; 2 messages in the archive not exported yet; last pass 2026-11-27 21:10 UTC copied 1 message, within the threshold of 100; " + note},
		"source changed": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged}, Delta: &engine.Delta{Known: true, New: 12, Changed: 3, Since: t2210}},
			"12 new, 3 changed since 2026-11-27 22:10 UTC"},
		"probe": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged}, Delta: &engine.Delta{Known: true, Approx: true, New: 12, Mailboxes: 3, FoldersAdded: 1, Since: t2210}},
			"12 new, 3 mailboxes changed, 1 folder added since 2026-11-27 22:10 UTC"},
		"data kinds": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged}, Delta: &engine.Delta{Known: true, New: 2, Since: t2210,
			Items: []engine.DataDelta{{Kind: plan.DataCalendars, Changed: 3}, {Kind: plan.DataSieve, Changed: 1}}}},
			"2 new, 3 events, 1 script changed since 2026-11-27 22:10 UTC"},
		"data kinds only": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged}, Delta: &engine.Delta{Known: true,
			Items: []engine.DataDelta{{Kind: plan.DataFiles, Changed: 2}}}},
			"2 files changed"},
		"flags only": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged}, Delta: &engine.Delta{Known: true, Approx: true, Mailboxes: 1}},
			"1 mailbox changed"},
		"not imported": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged}, Delta: &engine.Delta{Known: true, NotImported: true, New: 40}},
			"the archive has no completed import to compare with (missing?): the next pass imports everything (40 messages at the source)"},
		"unexported, retried": {engine.Change{Reason: engine.Reason{Code: engine.ReasonSourceChanged, Unexported: 7, RetryAction: "catch-up", RetrySeq: 9}},
			"7 messages in the archive not exported yet (retrying the catch-up interrupted at seq 9)"},
		"repeat the pass": {engine.Change{Reason: engine.Reason{Code: engine.ReasonRepeatPass, RetryAction: "catch-up", RetrySeq: 9}},
			"repeat the pass (retrying the catch-up interrupted at seq 9)"},
		"finish cut-over": {engine.Change{Reason: engine.Reason{Code: engine.ReasonFinishCutover, Backend: "stalwart", Interrupted: "cutover", At: state.PhaseVerified}},
			"finish the interrupted cut-over (cutover at verified): the route already points at stalwart; unfreeze it there"},
		"left frozen": {engine.Change{Reason: engine.Reason{Code: engine.ReasonLeftFrozen, Backend: "legacy", Interrupted: "cutover", At: state.PhaseFrozen}},
			"the account was left frozen (cutover at frozen); route it back to legacy, unfrozen"},
		"left frozen, no action in flight": {engine.Change{Reason: engine.Reason{Code: engine.ReasonLeftFrozen, Backend: "legacy", At: state.PhaseCatchingUp}},
			"the account was left frozen (catching-up); route it back to legacy, unfrozen"},
		"retry cut-over": {engine.Change{Reason: engine.Reason{Code: engine.ReasonRetryCutover, Interrupted: "cutover", At: state.PhaseFrozen}},
			"retry the cut-over interrupted at cutover at frozen; " + note},
		"plan keeps": {engine.Change{Reason: engine.Reason{Code: engine.ReasonPlanKeeps, Backend: "legacy", RoutedTo: "stalwart"}},
			"the plan keeps the account on legacy; route it back from stalwart"},
		"adopt": {engine.Change{Reason: engine.Reason{Code: engine.ReasonRouteAtTarget, Backend: "stalwart"}},
			"the route already points at stalwart: record the account as done without copying"},
		"by hand": {engine.Change{Reason: engine.Reason{Code: engine.ReasonRequested, Backend: "legacy"}},
			"requested by hand: route back to legacy, unfrozen, and hold the account"},
		"unknown code": {engine.Change{Reason: engine.Reason{Code: "from-the-future"}}, "from-the-future"},
	} {
		if got := ReasonText(&tc.c, note); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, tc.want)
		}
	}
}
