package ews

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/rules"
)

// RulesScript is the name of the Sieve script the inbox rules become
// (the same as Graph's, so a mailbox moved from either API gets one).
const RulesScript = "outlook-rules"

// Rules reads the inbox rules with GetInboxRules (Exchange 2010 SP1 and
// later) and hands them over as one Sieve script, converted as Graph's
// messageRules are (internal/rules): what Sieve cannot say is listed in
// the script's comments and logged, and such a rule is left out rather
// than widened.
type Rules struct{ s *Source }

var _ vandelay.SieveSource = (*Rules)(nil)

// NewRules returns the mailbox's inbox rules as a Sieve source.
func NewRules(opts *Options) (*Rules, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &Rules{s: s}, nil
}

// Describe implements vandelay.SieveSource.
func (r *Rules) Describe() archive.Source { return r.s.Describe() }

// Close implements vandelay.SieveSource.
func (r *Rules) Close() error { return nil }

// inboxRules is GetInboxRulesResponse's InboxRules.
type inboxRules struct {
	List []inboxRule `xml:"Rule"`
}

type ewsStrings struct {
	List []string `xml:"String"`
}

type ewsAddresses struct {
	List []struct {
		Name         string `xml:"Name"`
		EmailAddress string `xml:"EmailAddress"`
	} `xml:"Address"`
}

func (a *ewsAddresses) recipients() []rules.Recipient {
	var out []rules.Recipient
	for _, x := range a.List {
		out = append(out, rules.Recipient{EmailAddress: rules.EmailAddress{Name: x.Name, Address: x.EmailAddress}})
	}
	return out
}

// folderRef is a rule's target folder, by id or distinguished name.
type folderRef struct {
	FolderID      *id `xml:"FolderId"`
	Distinguished *id `xml:"DistinguishedFolderId"`
}

// key is the folder's key in the paths map of Scripts.
func (f *folderRef) key() string {
	switch {
	case f == nil:
		return ""
	case f.FolderID != nil:
		return f.FolderID.ID
	case f.Distinguished != nil:
		return "distinguished:" + f.Distinguished.ID
	}
	return ""
}

// predicates is EWS's RulePredicates (conditions and exceptions).
type predicates struct {
	Categories                   ewsStrings   `xml:"Categories"`
	ContainsBodyStrings          ewsStrings   `xml:"ContainsBodyStrings"`
	ContainsHeaderStrings        ewsStrings   `xml:"ContainsHeaderStrings"`
	ContainsRecipientStrings     ewsStrings   `xml:"ContainsRecipientStrings"`
	ContainsSenderStrings        ewsStrings   `xml:"ContainsSenderStrings"`
	ContainsSubjectOrBodyStrings ewsStrings   `xml:"ContainsSubjectOrBodyStrings"`
	ContainsSubjectStrings       ewsStrings   `xml:"ContainsSubjectStrings"`
	FlaggedForAction             string       `xml:"FlaggedForAction"`
	FromAddresses                ewsAddresses `xml:"FromAddresses"`
	FromConnectedAccounts        ewsStrings   `xml:"FromConnectedAccounts"`
	HasAttachments               bool         `xml:"HasAttachments"`
	Importance                   string       `xml:"Importance"`
	IsApprovalRequest            bool         `xml:"IsApprovalRequest"`
	IsAutomaticForward           bool         `xml:"IsAutomaticForward"`
	IsAutomaticReply             bool         `xml:"IsAutomaticReply"`
	IsEncrypted                  bool         `xml:"IsEncrypted"`
	IsMeetingRequest             bool         `xml:"IsMeetingRequest"`
	IsMeetingResponse            bool         `xml:"IsMeetingResponse"`
	IsNDR                        bool         `xml:"IsNDR"`
	IsPermissionControlled       bool         `xml:"IsPermissionControlled"`
	IsReadReceipt                bool         `xml:"IsReadReceipt"`
	IsSigned                     bool         `xml:"IsSigned"`
	IsVoicemail                  bool         `xml:"IsVoicemail"`
	ItemClasses                  ewsStrings   `xml:"ItemClasses"`
	MessageClassifications       ewsStrings   `xml:"MessageClassifications"`
	NotSentToMe                  bool         `xml:"NotSentToMe"`
	SentCcMe                     bool         `xml:"SentCcMe"`
	SentOnlyToMe                 bool         `xml:"SentOnlyToMe"`
	SentToAddresses              ewsAddresses `xml:"SentToAddresses"`
	SentToMe                     bool         `xml:"SentToMe"`
	SentToOrCcMe                 bool         `xml:"SentToOrCcMe"`
	Sensitivity                  string       `xml:"Sensitivity"`
	WithinDateRange              *struct{}    `xml:"WithinDateRange"`
	WithinSizeRange              *struct {
		MinimumSize int64 `xml:"MinimumSize"`
		MaximumSize int64 `xml:"MaximumSize"`
	} `xml:"WithinSizeRange"`
}

// actions is EWS's RuleActions.
type actions struct {
	AssignCategories                ewsStrings   `xml:"AssignCategories"`
	CopyToFolder                    *folderRef   `xml:"CopyToFolder"`
	Delete                          bool         `xml:"Delete"`
	ForwardAsAttachmentToRecipients ewsAddresses `xml:"ForwardAsAttachmentToRecipients"`
	ForwardToRecipients             ewsAddresses `xml:"ForwardToRecipients"`
	MarkImportance                  string       `xml:"MarkImportance"`
	MarkAsRead                      bool         `xml:"MarkAsRead"`
	MoveToFolder                    *folderRef   `xml:"MoveToFolder"`
	PermanentDelete                 bool         `xml:"PermanentDelete"`
	RedirectToRecipients            ewsAddresses `xml:"RedirectToRecipients"`
	SendSMSAlertToRecipients        *struct{}    `xml:"SendSMSAlertToRecipients"`
	ServerReplyWithMessage          *struct{}    `xml:"ServerReplyWithMessage"`
	StopProcessingRules             bool         `xml:"StopProcessingRules"`
}

// inboxRule is EWS's Rule.
type inboxRule struct {
	XMLName     xml.Name
	RuleID      string      `xml:"RuleId"`
	DisplayName string      `xml:"DisplayName"`
	Priority    int         `xml:"Priority"`
	IsEnabled   bool        `xml:"IsEnabled"`
	IsInError   bool        `xml:"IsInError"`
	Conditions  *predicates `xml:"Conditions"`
	Exceptions  *predicates `xml:"Exceptions"`
	Actions     *actions    `xml:"Actions"`
}

// lower maps EWS's enumeration values (High, Normal, Low) onto Graph's.
func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (p *predicates) shared() *rules.Predicates {
	if p == nil {
		return nil
	}
	out := &rules.Predicates{
		FromAddresses:          p.FromAddresses.recipients(),
		SentToAddresses:        p.SentToAddresses.recipients(),
		SubjectContains:        p.ContainsSubjectStrings.List,
		BodyContains:           p.ContainsBodyStrings.List,
		BodyOrSubjectContains:  p.ContainsSubjectOrBodyStrings.List,
		SenderContains:         p.ContainsSenderStrings.List,
		RecipientContains:      p.ContainsRecipientStrings.List,
		HeaderContains:         p.ContainsHeaderStrings.List,
		Importance:             lower(p.Importance),
		HasAttachments:         p.HasAttachments,
		SentToMe:               p.SentToMe,
		SentOnlyToMe:           p.SentOnlyToMe,
		SentCcMe:               p.SentCcMe,
		SentToOrCcMe:           p.SentToOrCcMe,
		NotSentToMe:            p.NotSentToMe,
		IsAutomaticReply:       p.IsAutomaticReply,
		IsAutomaticForward:     p.IsAutomaticForward,
		IsMeetingRequest:       p.IsMeetingRequest,
		IsMeetingResponse:      p.IsMeetingResponse,
		IsEncrypted:            p.IsEncrypted,
		IsSigned:               p.IsSigned,
		IsReadReceipt:          p.IsReadReceipt,
		IsNonDeliveryReport:    p.IsNDR,
		IsVoicemail:            p.IsVoicemail,
		IsApprovalRequest:      p.IsApprovalRequest,
		IsPermissionControlled: p.IsPermissionControlled,
		Sensitivity:            p.Sensitivity,
		MessageActionFlag:      p.FlaggedForAction,
		Categories:             p.Categories.List,
	}
	if r := p.WithinSizeRange; r != nil {
		out.WithinSizeRange = &struct {
			MinimumSize int64 `json:"minimumSize"`
			MaximumSize int64 `json:"maximumSize"`
		}{r.MinimumSize, r.MaximumSize}
	}
	for name, set := range map[string]bool{
		"fromConnectedAccounts":  len(p.FromConnectedAccounts.List) > 0,
		"itemClasses":            len(p.ItemClasses.List) > 0,
		"messageClassifications": len(p.MessageClassifications.List) > 0,
		"withinDateRange":        p.WithinDateRange != nil,
	} {
		if set {
			out.Unsupported = append(out.Unsupported, name)
		}
	}
	return out
}

func (a *actions) shared() *rules.Actions {
	if a == nil {
		return nil
	}
	out := &rules.Actions{
		MoveToFolder:          a.MoveToFolder.key(),
		CopyToFolder:          a.CopyToFolder.key(),
		Delete:                a.Delete,
		PermanentDelete:       a.PermanentDelete,
		MarkAsRead:            a.MarkAsRead,
		MarkImportance:        lower(a.MarkImportance),
		AssignCategories:      a.AssignCategories.List,
		ForwardTo:             a.ForwardToRecipients.recipients(),
		RedirectTo:            a.RedirectToRecipients.recipients(),
		ForwardAsAttachmentTo: a.ForwardAsAttachmentToRecipients.recipients(),
		StopProcessingRules:   a.StopProcessingRules,
	}
	if a.ServerReplyWithMessage != nil {
		out.Unsupported = append(out.Unsupported, "serverReplyWithMessage")
	}
	if a.SendSMSAlertToRecipients != nil {
		out.Unsupported = append(out.Unsupported, "sendSMSAlertToRecipients")
	}
	return out
}

func (r *inboxRule) shared() rules.Rule {
	return rules.Rule{ID: r.RuleID, DisplayName: r.DisplayName, Sequence: r.Priority, IsEnabled: r.IsEnabled,
		HasError: r.IsInError, Conditions: r.Conditions.shared(), Exceptions: r.Exceptions.shared(), Actions: r.Actions.shared()}
}

// Scripts implements vandelay.SieveSource.
func (r *Rules) Scripts(ctx context.Context) ([]archive.NewSieveScript, error) {
	s := r.s
	folders, err := s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	msgs, err := s.call(ctx, "GetInboxRules", func(string) string {
		return "<m:GetInboxRules>\n<m:MailboxSmtpAddress>" + escape(s.cfg.User) + "</m:MailboxSmtpAddress>\n</m:GetInboxRules>"
	})
	if err != nil {
		return nil, authError(err)
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("GetInboxRules: %d answers", len(msgs))
	}
	if err := msgs[0].err(); err != nil {
		return nil, authError(fmt.Errorf("GetInboxRules: %w", err))
	}
	if len(msgs[0].InboxRules.List) == 0 {
		return nil, nil
	}
	paths := map[string]string{}
	trash := ""
	for _, f := range folders {
		paths[f.ID] = f.Path
		if f.Role == archive.RoleTrash {
			trash = f.Path
		}
		for _, d := range distinguished {
			if d.role != "" && d.role == f.Role {
				paths["distinguished:"+d.name] = f.Path
			}
		}
	}
	rs := make([]rules.Rule, 0, len(msgs[0].InboxRules.List))
	for i := range msgs[0].InboxRules.List {
		rs = append(rs, msgs[0].InboxRules.List[i].shared())
	}
	script, notes := rules.Sieve(rs, paths, trash, "EWS GetInboxRules")
	for _, n := range notes {
		s.log.Warn("inbox rule not fully expressible in Sieve", "rule", n)
	}
	return []archive.NewSieveScript{{Name: RulesScript, Body: script, Active: true}}, nil
}
