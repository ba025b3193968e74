package engine

import (
	"time"

	"github.com/mailmig/mailmig/engine/state"
)

// ReasonCode says why a change is due. It is a closed set: the views
// word each code (cmd/mailmig/internal/views), and JSON readers switch on
// it.
type ReasonCode string

// The reason codes, with the fields of [Reason] each one sets.
const (
	// ReasonFinishCutover: an interrupted cut-over already routed the
	// account to Backend (the target); only unfreezing is left. Sets
	// Interrupted, At.
	ReasonFinishCutover ReasonCode = "finish-interrupted-cutover"
	// ReasonRetryCutover: an interrupted cut-over is tried again (the
	// wave is open). Sets Interrupted, At.
	ReasonRetryCutover ReasonCode = "retry-interrupted-cutover"
	// ReasonLeftFrozen: the account was left frozen or mid-cut-over; it
	// is routed back to Backend, unfrozen. Sets Interrupted, At.
	ReasonLeftFrozen ReasonCode = "left-frozen"
	// ReasonPlanKeeps: the plan keeps the account on Backend, but the
	// route sends it to RoutedTo.
	ReasonPlanKeeps ReasonCode = "plan-keeps-account"
	// ReasonRouteAtTarget: the route already points at Backend (the
	// target) before anything was copied: adopt.
	ReasonRouteAtTarget ReasonCode = "route-at-target"
	// ReasonFirstImport: the first full import from Backend. The change's
	// Archive says what an existing archive already holds. Sets Retry*.
	ReasonFirstImport ReasonCode = "first-import"
	// ReasonFirstExport: the first export onto Backend, after the first
	// import planned beside it.
	ReasonFirstExport ReasonCode = "first-export"
	// ReasonExportPending: imported (at Time) but never exported onto
	// Backend. The change's Archive holds the counts. Sets Retry*.
	ReasonExportPending ReasonCode = "export-pending"
	// ReasonWithinThreshold: the last pass (at Time) copied
	// LastPassMessages, within Threshold: cut over. The wave's note says
	// why the wave may cut over; the change's Delta and Unexported what
	// changed since.
	ReasonWithinThreshold ReasonCode = "within-threshold"
	// ReasonSourceChanged: the source changed (the change's Delta) or
	// Unexported archive messages wait: catch up. Sets Retry*.
	ReasonSourceChanged ReasonCode = "source-changed"
	// ReasonRepeatPass: an interrupted pass is repeated. Sets Retry*.
	ReasonRepeatPass ReasonCode = "repeat-pass"
	// ReasonAboveThreshold: the last pass copied LastPassMessages
	// (LastPassBytes), above Threshold (ThresholdBytes): catch up first
	// so that the cut-over's frozen time stays short.
	ReasonAboveThreshold ReasonCode = "above-threshold"
	// ReasonRequested: "mailmig rollback" asked for it: route back to
	// Backend, unfrozen, and hold the account.
	ReasonRequested ReasonCode = "requested-by-hand"
)

// Reason is why a change is due, as data: a code and the counts, times,
// thresholds and names it rests on. Which fields are set depends on the
// code (see the constants); the change's Delta and Archive complete it.
type Reason struct {
	Code ReasonCode `json:"code"`
	// Backend is the backend the reason names: the import's source, the
	// export's target, where a rollback routes to, where the route
	// already points.
	Backend string `json:"backend,omitempty"`
	// RoutedTo is where the route table sends the account now, when that
	// is the point (plan-keeps-account).
	RoutedTo string `json:"routed_to,omitempty"`
	// Interrupted is the action the journal shows in flight ("cutover",
	// "rollback"; "" when only the phase or a frozen route tells), At the
	// phase the account is in.
	Interrupted string      `json:"interrupted,omitempty"`
	At          state.Phase `json:"at,omitempty"`
	// RetryAction and RetrySeq name an earlier action interrupted at
	// journal record RetrySeq that this change repeats.
	RetryAction string `json:"retry_action,omitempty"`
	RetrySeq    uint64 `json:"retry_seq,omitempty"`
	// Running says that the in-flight action (Interrupted, RetryAction)
	// is not interrupted but running now in a live apply (Changes.Running):
	// the change is what a new apply would do if that one stopped now.
	Running bool `json:"running,omitempty"`
	// Time is when the last import finished (export-pending) or the last
	// pass ran (within-threshold); zero means never.
	Time time.Time `json:"time,omitzero"`
	// LastPassMessages and LastPassBytes are what the last pass copied.
	LastPassMessages int64 `json:"last_pass_messages,omitempty"`
	LastPassBytes    int64 `json:"last_pass_bytes,omitempty"`
	// Threshold is the catch-up threshold in messages, ThresholdBytes in
	// bytes (0: none).
	Threshold      int64 `json:"threshold,omitempty"`
	ThresholdBytes int64 `json:"threshold_bytes,omitempty"`
	// Unexported counts archive messages never exported that the next
	// pass takes along.
	Unexported int64 `json:"unexported,omitempty"`
}

// LastVerify is what the verify of an account's last cut-over found when
// it failed the cut-over: Total mismatches, the first of which the
// journal names. The views word what the operator can do per kind.
type LastVerify struct {
	Total      int64            `json:"total"`
	Mismatches []state.Mismatch `json:"mismatches,omitempty"`
}

// lastVerify returns the account's LastVerify, nil when its last cut-over
// did not fail verify (or succeeded since, or was released).
func lastVerify(sa *state.Account) *LastVerify {
	if sa == nil || sa.FailedCutovers == 0 || (sa.Mismatches == 0 && len(sa.VerifyMismatches) == 0) {
		return nil
	}
	return &LastVerify{Total: max(sa.Mismatches, int64(len(sa.VerifyMismatches))), Mismatches: sa.VerifyMismatches}
}
