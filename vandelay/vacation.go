package vandelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// CapVacationResponse is the JMAP capability of the vacation response
// (RFC 8621 8).
const CapVacationResponse = "urn:ietf:params:jmap:vacationresponse"

// ErrNoCapability reports that a JMAP target lacks a capability.
var ErrNoCapability = errors.New("the target's JMAP session lacks the capability")

// VacationResponse is the JMAP object (RFC 8621 8.1), the one with id
// "singleton".
type VacationResponse struct {
	IsEnabled bool    `json:"isEnabled"`
	FromDate  *string `json:"fromDate"`
	ToDate    *string `json:"toDate"`
	Subject   *string `json:"subject"`
	TextBody  *string `json:"textBody"`
	HTMLBody  *string `json:"htmlBody"`
}

// VacationExportResult says what [ExportVacationJMAP] did.
type VacationExportResult struct {
	// Set is true when VacationResponse/set was sent (or, in a dry run,
	// would be).
	Set bool `json:"set"`
	// Conflict is true when the user changed the response at the target
	// since the last export: the target's version was kept.
	Conflict bool `json:"conflict,omitempty"`
	DryRun   bool `json:"dry_run,omitempty"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func dateOrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format("2006-01-02T15:04:05Z")
	return &s
}

// vacationObject is the archived response as JMAP's object. What a Sieve
// action has beyond it (:days or :seconds, :from, :addresses) is not
// carried: the JMAP server decides how often it answers a sender and
// from which address (docs/export.md lists it).
func vacationObject(v *archive.Vacation) VacationResponse {
	return VacationResponse{IsEnabled: v.Enabled, FromDate: dateOrNil(v.From), ToDate: dateOrNil(v.To),
		Subject: strOrNil(v.Subject), TextBody: strOrNil(v.TextBody), HTMLBody: strOrNil(v.HTMLBody)}
}

func canonical(v VacationResponse) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ExportVacationJMAP sets the target account's VacationResponse from the
// archived one, convergent: nothing is sent when the target already has
// it; the object the export sent is kept in the export target's state
// ("vacation-sent"), so that a response the user changed at the target
// since is a conflict and kept. A target without the capability is
// [ErrNoCapability]; an archive without a response sends nothing.
func ExportVacationJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string, opts *DAVExportOptions) (*VacationExportResult, error) {
	if opts == nil {
		opts = &DAVExportOptions{}
	}
	res := &VacationExportResult{DryRun: opts.DryRun}
	if _, ok := c.Session().Capabilities[CapVacationResponse]; !ok {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, CapVacationResponse)
	}
	v, err := a.Vacation(ctx)
	if err != nil || v == nil {
		return res, err
	}
	et, err := a.ExportTarget(ctx, "jmap-vacation "+c.SessionURL()+" "+accountID)
	if err != nil {
		return nil, err
	}
	using := []string{jmap.CapCore, CapVacationResponse}
	var got struct {
		List []VacationResponse `json:"list"`
	}
	get := &jmap.Call{Method: "VacationResponse/get", Args: map[string]any{"accountId": accountID, "ids": []string{"singleton"}}, Result: &got}
	if err := c.Exec(ctx, using, []*jmap.Call{get}); err != nil {
		return nil, fmt.Errorf("read the target's vacation response: %w", err)
	}
	if err := jmap.FirstError(get); err != nil {
		return nil, fmt.Errorf("read the target's vacation response: %w", err)
	}
	want := vacationObject(v)
	cur := ""
	if len(got.List) > 0 {
		cur = canonical(got.List[0])
	}
	if cur == canonical(want) {
		return res, nil
	}
	sent, err := et.State(ctx, "vacation-sent")
	if err != nil {
		return nil, err
	}
	empty := canonical(VacationResponse{})
	if cur != "" && cur != empty && cur != sent {
		// Set by the user at the target (or before the export): kept.
		res.Conflict = true
		return res, nil
	}
	res.Set = true
	if opts.DryRun {
		return res, nil
	}
	set := &jmap.Call{Method: "VacationResponse/set", Args: map[string]any{"accountId": accountID,
		"update": map[string]any{"singleton": want}}}
	if err := c.Exec(ctx, using, []*jmap.Call{set}); err != nil {
		return nil, fmt.Errorf("set the target's vacation response: %w", err)
	}
	if err := jmap.FirstError(set); err != nil {
		return nil, fmt.Errorf("set the target's vacation response: %w", err)
	}
	var sr struct {
		NotUpdated map[string]json.RawMessage `json:"notUpdated"`
	}
	if len(set.Raw) > 0 {
		json.Unmarshal(set.Raw, &sr)
	}
	if e, ok := sr.NotUpdated["singleton"]; ok {
		return nil, fmt.Errorf("the target refused the vacation response: %s", e)
	}
	return res, et.SetState(ctx, "vacation-sent", canonical(want))
}
