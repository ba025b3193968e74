package graph

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/itemsync"
)

// RulesScript is the name of the Sieve script the inbox rules become.
const RulesScript = "outlook-rules"

// Rules reads the inbox rules (mailFolders/inbox/messageRules) and hands
// them over as one Sieve script (RFC 5228 with fileinto, copy,
// imap4flags and body), the active one. What a rule does that Sieve
// cannot say (see docs/import.md) is listed in comments at the top of the
// script, named by rule, and logged; a disabled rule is listed, not
// converted.
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

type recipient struct {
	EmailAddress emailAddress `json:"emailAddress"`
}

type predicates struct {
	FromAddresses         []recipient `json:"fromAddresses"`
	SentToAddresses       []recipient `json:"sentToAddresses"`
	SubjectContains       []string    `json:"subjectContains"`
	BodyContains          []string    `json:"bodyContains"`
	BodyOrSubjectContains []string    `json:"bodyOrSubjectContains"`
	SenderContains        []string    `json:"senderContains"`
	RecipientContains     []string    `json:"recipientContains"`
	HeaderContains        []string    `json:"headerContains"`
	Importance            string      `json:"importance"`
	WithinSizeRange       *struct {
		MinimumSize int64 `json:"minimumSize"`
		MaximumSize int64 `json:"maximumSize"`
	} `json:"withinSizeRange"`
	// Conditions with no Sieve test: reported when set.
	HasAttachments         bool     `json:"hasAttachments"`
	SentToMe               bool     `json:"sentToMe"`
	SentOnlyToMe           bool     `json:"sentOnlyToMe"`
	SentCcMe               bool     `json:"sentCcMe"`
	SentToOrCcMe           bool     `json:"sentToOrCcMe"`
	NotSentToMe            bool     `json:"notSentToMe"`
	IsAutomaticReply       bool     `json:"isAutomaticReply"`
	IsAutomaticForward     bool     `json:"isAutomaticForward"`
	IsMeetingRequest       bool     `json:"isMeetingRequest"`
	IsMeetingResponse      bool     `json:"isMeetingResponse"`
	IsEncrypted            bool     `json:"isEncrypted"`
	IsSigned               bool     `json:"isSigned"`
	IsReadReceipt          bool     `json:"isReadReceipt"`
	IsNonDeliveryReport    bool     `json:"isNonDeliveryReport"`
	IsVoicemail            bool     `json:"isVoicemail"`
	IsApprovalRequest      bool     `json:"isApprovalRequest"`
	IsPermissionControlled bool     `json:"isPermissionControlled"`
	Sensitivity            string   `json:"sensitivity"`
	MessageActionFlag      string   `json:"messageActionFlag"`
	Categories             []string `json:"categories"`
}

type ruleActions struct {
	MoveToFolder          string      `json:"moveToFolder"`
	CopyToFolder          string      `json:"copyToFolder"`
	Delete                bool        `json:"delete"`
	PermanentDelete       bool        `json:"permanentDelete"`
	MarkAsRead            bool        `json:"markAsRead"`
	MarkImportance        string      `json:"markImportance"`
	AssignCategories      []string    `json:"assignCategories"`
	ForwardTo             []recipient `json:"forwardTo"`
	RedirectTo            []recipient `json:"redirectTo"`
	ForwardAsAttachmentTo []recipient `json:"forwardAsAttachmentTo"`
	StopProcessingRules   bool        `json:"stopProcessingRules"`
}

type messageRule struct {
	ID          string       `json:"id"`
	DisplayName string       `json:"displayName"`
	Sequence    int          `json:"sequence"`
	IsEnabled   bool         `json:"isEnabled"`
	HasError    bool         `json:"hasError"`
	Conditions  *predicates  `json:"conditions"`
	Exceptions  *predicates  `json:"exceptions"`
	Actions     *ruleActions `json:"actions"`
}

// Scripts implements vandelay.SieveSource.
func (r *Rules) Scripts(ctx context.Context) ([]archive.NewSieveScript, error) {
	var rules []messageRule
	next := r.s.base + "/mailFolders/inbox/messageRules"
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("rule listing does not end")
		}
		var p struct {
			Value    []messageRule `json:"value"`
			NextLink string        `json:"@odata.nextLink"`
		}
		if err := r.s.get(ctx, next, &p); err != nil {
			return nil, fmt.Errorf("list inbox rules: %w", err)
		}
		rules = append(rules, p.Value...)
		next = p.NextLink
	}
	if len(rules) == 0 {
		return nil, nil
	}
	folders, err := r.s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	trash := ""
	for _, f := range folders {
		paths[f.ID] = f.Path
		if f.Role == archive.RoleTrash {
			trash = f.Path
		}
	}
	script, notes := rulesSieve(rules, paths, trash)
	for _, n := range notes {
		r.s.log.Warn("inbox rule not fully expressible in Sieve", "rule", n)
	}
	return []archive.NewSieveScript{{Name: RulesScript, Body: script, Active: true}}, nil
}

// sieveString quotes s as a Sieve string (RFC 5228 2.4.2).
func sieveString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func sieveList(ss []string) string {
	if len(ss) == 1 {
		return sieveString(ss[0])
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = sieveString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func addresses(rs []recipient) []string {
	var out []string
	for _, r := range rs {
		if r.EmailAddress.Address != "" {
			out = append(out, r.EmailAddress.Address)
		}
	}
	return out
}

// tests turns predicates into Sieve tests (all must hold) and names what
// has no Sieve test.
func tests(p *predicates, req map[string]bool) (out, missing []string) {
	if p == nil {
		return nil, nil
	}
	if a := addresses(p.FromAddresses); len(a) > 0 {
		out = append(out, "address :is \"from\" "+sieveList(a))
	}
	if a := addresses(p.SentToAddresses); len(a) > 0 {
		out = append(out, "address :is [\"to\", \"cc\"] "+sieveList(a))
	}
	if len(p.SubjectContains) > 0 {
		out = append(out, "header :contains \"subject\" "+sieveList(p.SubjectContains))
	}
	if len(p.BodyContains) > 0 {
		req["body"] = true
		out = append(out, "body :text :contains "+sieveList(p.BodyContains))
	}
	if len(p.BodyOrSubjectContains) > 0 {
		req["body"] = true
		l := sieveList(p.BodyOrSubjectContains)
		out = append(out, "anyof (header :contains \"subject\" "+l+", body :text :contains "+l+")")
	}
	if len(p.SenderContains) > 0 {
		out = append(out, "address :contains \"from\" "+sieveList(p.SenderContains))
	}
	if len(p.RecipientContains) > 0 {
		out = append(out, "address :contains [\"to\", \"cc\"] "+sieveList(p.RecipientContains))
	}
	switch p.Importance {
	case "high", "low":
		out = append(out, "header :is \"importance\" "+sieveString(p.Importance))
	}
	if r := p.WithinSizeRange; r != nil {
		// Graph's sizes are in kilobytes.
		if r.MinimumSize > 0 {
			out = append(out, fmt.Sprintf("size :over %dK", r.MinimumSize-1))
		}
		if r.MaximumSize > 0 {
			out = append(out, fmt.Sprintf("size :under %dK", r.MaximumSize+1))
		}
	}
	for name, set := range map[string]bool{
		"headerContains": len(p.HeaderContains) > 0, "hasAttachments": p.HasAttachments, "sentToMe": p.SentToMe,
		"sentOnlyToMe": p.SentOnlyToMe, "sentCcMe": p.SentCcMe, "sentToOrCcMe": p.SentToOrCcMe, "notSentToMe": p.NotSentToMe,
		"isAutomaticReply": p.IsAutomaticReply, "isAutomaticForward": p.IsAutomaticForward, "isMeetingRequest": p.IsMeetingRequest,
		"isMeetingResponse": p.IsMeetingResponse, "isEncrypted": p.IsEncrypted, "isSigned": p.IsSigned,
		"isReadReceipt": p.IsReadReceipt, "isNonDeliveryReport": p.IsNonDeliveryReport, "isVoicemail": p.IsVoicemail,
		"isApprovalRequest": p.IsApprovalRequest, "isPermissionControlled": p.IsPermissionControlled,
		"sensitivity": p.Sensitivity != "", "messageActionFlag": p.MessageActionFlag != "", "categories": len(p.Categories) > 0,
		"importance " + p.Importance: p.Importance == "normal",
	} {
		if set {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	return out, missing
}

// rulesSieve converts inbox rules (in their sequence) into a Sieve
// script. paths maps folder ids to archive paths and trash is the Deleted
// Items path. It returns the script and one note per rule that lost
// something ("rule NAME: …").
func rulesSieve(rules []messageRule, paths map[string]string, trash string) ([]byte, []string) {
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Sequence < rules[j].Sequence })
	req := map[string]bool{}
	var body strings.Builder
	var notes []string
	for _, ru := range rules {
		name := strings.NewReplacer("\n", " ", "\r", " ").Replace(ru.DisplayName)
		if !ru.IsEnabled {
			notes = append(notes, fmt.Sprintf("rule %q: disabled, not converted", name))
			continue
		}
		conds, missing := tests(ru.Conditions, req)
		excs, emissing := tests(ru.Exceptions, req)
		var lost []string
		for _, m := range missing {
			lost = append(lost, "condition "+m)
		}
		for _, m := range emissing {
			lost = append(lost, "exception "+m)
		}
		var acts []string
		a := ru.Actions
		if a == nil {
			a = &ruleActions{}
		}
		if a.MarkAsRead {
			req["imap4flags"] = true
			acts = append(acts, `addflag "\\Seen";`)
		}
		var kws []string
		for _, c := range a.AssignCategories {
			if k := itemsync.Category(c); k != "" {
				kws = append(kws, k)
			}
		}
		if len(kws) > 0 {
			req["imap4flags"] = true
			acts = append(acts, "addflag "+sieveList(kws)+";")
		}
		if a.MarkImportance == "high" {
			req["imap4flags"] = true
			acts = append(acts, `addflag "$Important";`)
		} else if a.MarkImportance != "" {
			lost = append(lost, "action markImportance "+a.MarkImportance)
		}
		folder := func(id, what string) (string, bool) {
			p, ok := paths[id]
			if !ok {
				lost = append(lost, "action "+what+" to an unknown folder")
			}
			return p, ok
		}
		if a.CopyToFolder != "" {
			if p, ok := folder(a.CopyToFolder, "copyToFolder"); ok {
				req["fileinto"], req["copy"] = true, true
				acts = append(acts, "fileinto :copy "+sieveString(p)+";")
			}
		}
		for _, to := range addresses(a.ForwardTo) {
			req["copy"] = true
			acts = append(acts, "redirect :copy "+sieveString(to)+";")
		}
		if len(a.ForwardAsAttachmentTo) > 0 {
			lost = append(lost, "action forwardAsAttachmentTo")
		}
		switch {
		case a.PermanentDelete:
			acts = append(acts, "discard;")
		case a.Delete && trash != "":
			req["fileinto"] = true
			acts = append(acts, "fileinto "+sieveString(trash)+";")
		case a.Delete:
			lost = append(lost, "action delete (no Deleted Items folder)")
		case a.MoveToFolder != "":
			if p, ok := folder(a.MoveToFolder, "moveToFolder"); ok {
				req["fileinto"] = true
				acts = append(acts, "fileinto "+sieveString(p)+";")
			}
		}
		for i, to := range addresses(a.RedirectTo) {
			// The last redirect replaces delivery (Outlook's redirect keeps
			// no copy); the others keep the message going.
			if i < len(a.RedirectTo)-1 {
				req["copy"] = true
				acts = append(acts, "redirect :copy "+sieveString(to)+";")
			} else {
				acts = append(acts, "redirect "+sieveString(to)+";")
			}
		}
		if a.StopProcessingRules {
			acts = append(acts, "stop;")
		}
		if len(lost) > 0 {
			notes = append(notes, fmt.Sprintf("rule %q: %s not expressible", name, strings.Join(lost, ", ")))
		}
		if len(missing) > 0 || len(acts) == 0 {
			// A rule whose condition cannot be tested would fire on the
			// wrong mail: it is left out rather than widened.
			if len(acts) == 0 && len(missing) == 0 {
				notes = append(notes, fmt.Sprintf("rule %q: no action expressible, not converted", name))
			} else {
				notes = append(notes, fmt.Sprintf("rule %q: not converted (a condition has no Sieve test)", name))
			}
			continue
		}
		test := "true"
		switch {
		case len(conds) == 1 && len(excs) == 0:
			test = conds[0]
		case len(conds) > 0 || len(excs) > 0:
			parts := append([]string{}, conds...)
			if len(excs) > 0 {
				parts = append(parts, "not anyof ("+strings.Join(excs, ", ")+")")
			}
			test = "allof (" + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(&body, "# rule %s\nif %s {\n", sieveString(name), test)
		for _, act := range acts {
			body.WriteString("    " + act + "\n")
		}
		body.WriteString("}\n")
	}
	var out strings.Builder
	out.WriteString("# Converted by mailmig from the Outlook inbox rules (Microsoft Graph messageRules).\n")
	for _, n := range notes {
		out.WriteString("# " + n + "\n")
	}
	var exts []string
	for _, e := range []string{"body", "copy", "fileinto", "imap4flags"} {
		if req[e] {
			exts = append(exts, e)
		}
	}
	if len(exts) > 0 {
		out.WriteString("require " + sieveList(exts) + ";\n")
	}
	out.WriteString(body.String())
	return []byte(strings.ReplaceAll(out.String(), "\n", "\r\n")), notes
}
