// Package rules converts Outlook inbox rules into one Sieve script
// (RFC 5228 with fileinto, copy, imap4flags and body). Microsoft Graph's
// messageRule and EWS's Rule are the same model (Graph's JSON was made
// from it), so both sources fill these types (Graph decodes its JSON into
// them directly, EWS converts its XML) and share one conversion and one
// report of what Sieve cannot express (see docs/import.md).
package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/itemsync"
)

// EmailAddress is a name and address.
type EmailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Recipient is a rule's address.
type Recipient struct {
	EmailAddress EmailAddress `json:"emailAddress"`
}

// Predicates are a rule's conditions or exceptions.
type Predicates struct {
	FromAddresses         []Recipient `json:"fromAddresses"`
	SentToAddresses       []Recipient `json:"sentToAddresses"`
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
	// Unsupported names conditions a source reads that have no field
	// here (EWS's ItemClasses, WithinDateRange …): always reported.
	Unsupported []string `json:"-"`
}

// Actions are what a rule does.
type Actions struct {
	MoveToFolder          string      `json:"moveToFolder"`
	CopyToFolder          string      `json:"copyToFolder"`
	Delete                bool        `json:"delete"`
	PermanentDelete       bool        `json:"permanentDelete"`
	MarkAsRead            bool        `json:"markAsRead"`
	MarkImportance        string      `json:"markImportance"`
	AssignCategories      []string    `json:"assignCategories"`
	ForwardTo             []Recipient `json:"forwardTo"`
	RedirectTo            []Recipient `json:"redirectTo"`
	ForwardAsAttachmentTo []Recipient `json:"forwardAsAttachmentTo"`
	StopProcessingRules   bool        `json:"stopProcessingRules"`
	// Unsupported names actions with no field here (EWS's
	// ServerReplyWithMessage, SendSMSAlertToRecipients): reported.
	Unsupported []string `json:"-"`
}

// Rule is one inbox rule; Sequence orders them.
type Rule struct {
	ID          string      `json:"id"`
	DisplayName string      `json:"displayName"`
	Sequence    int         `json:"sequence"`
	IsEnabled   bool        `json:"isEnabled"`
	HasError    bool        `json:"hasError"`
	Conditions  *Predicates `json:"conditions"`
	Exceptions  *Predicates `json:"exceptions"`
	Actions     *Actions    `json:"actions"`
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

func addresses(rs []Recipient) []string {
	var out []string
	for _, r := range rs {
		if r.EmailAddress.Address != "" {
			out = append(out, r.EmailAddress.Address)
		}
	}
	return out
}

// tests turns Predicates into Sieve tests (all must hold) and names what
// has no Sieve test.
func tests(p *Predicates, req map[string]bool) (out, missing []string) {
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
	missing = append(missing, p.Unsupported...)
	sort.Strings(missing)
	return out, missing
}

// Sieve converts inbox rules (in their sequence) into a Sieve
// script. paths maps folder ids to archive paths and trash is the Deleted
// Items path; origin names where the rules were read, for the
// script's first line. It returns the script and one note per rule that lost
// something ("rule NAME: …").
func Sieve(rules []Rule, paths map[string]string, trash, origin string) ([]byte, []string) {
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
			a = &Actions{}
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
		for _, u := range a.Unsupported {
			lost = append(lost, "action "+u)
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
	out.WriteString("# Converted by mailmig from the Outlook inbox rules (" + origin + ").\n")
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
