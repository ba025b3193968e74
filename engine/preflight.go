package engine

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// ErrProtocolMissing is wrapped by a Checker when a backend has no
// endpoint that the account's data needs (a source without imap, pop3,
// maildir, takeout or jmap; a target without jmap).
var ErrProtocolMissing = errors.New("protocol missing")

// Checker answers the pre-flight's questions about the real world: one
// login at each side of an account, reading what the servers tell
// without fetching or writing anything. Implementations are safe for
// concurrent use on different accounts. The errors they return are
// classified with errors.Is: vandelay.ErrAuth (login refused),
// vandelay.ErrAccountMissing (the login works but does not list the
// account), ErrProtocolMissing, vandelay.ErrConnect (unreachable).
type Checker interface {
	// CheckSource logs in at the account's source with the limits of lim.
	CheckSource(ctx context.Context, acct *plan.Account, lim *Limiter) (*vandelay.SourceCheck, error)
	// CheckTarget logs in at the account's target with the limits of lim.
	CheckTarget(ctx context.Context, acct *plan.Account, lim *Limiter) (*vandelay.TargetCheck, error)
}

// CheckProblem is the kind of a pre-flight finding.
type CheckProblem string

// The pre-flight findings.
const (
	// CheckLoginRefused: the server refused the login.
	CheckLoginRefused CheckProblem = "login_refused"
	// CheckAccountMissing: the target has no such account. Certain when
	// a master login's session does not list it; inferred (Finding.Inferred)
	// when the target refused the password that the source accepted.
	CheckAccountMissing CheckProblem = "account_missing"
	// CheckQuota: the target's free quota is below the source's size.
	CheckQuota CheckProblem = "quota_too_small"
	// CheckProtocolMissing: a data kind needs a protocol that a side lacks.
	CheckProtocolMissing CheckProblem = "protocol_missing"
	// CheckUnreachable: the server could not be reached or spoke wrongly.
	CheckUnreachable CheckProblem = "unreachable"
	// CheckError: anything else (e.g. no password in the plan).
	CheckError CheckProblem = "error"
)

// The sides of an account.
const (
	SideSource = "source"
	SideTarget = "target"
)

// Finding is one problem the pre-flight found for an account.
type Finding struct {
	Problem CheckProblem `json:"problem"`
	// Side is "source" or "target".
	Side string `json:"side"`
	// Backend is the side's backend name.
	Backend string `json:"backend"`
	// Login is the login name used (the master user for a master login).
	Login string `json:"login,omitempty"`
	// SecretRef names the secret used, as written in the plan
	// ("env:ALICE_PW"), never its value.
	SecretRef string `json:"secret_ref,omitempty"`
	// Inferred marks an account_missing that the server could not state:
	// the target refused the password the source accepted.
	Inferred bool `json:"inferred,omitempty"`
	// Data and Protocol name, for protocol_missing, the data kind and
	// the protocol (or JMAP capability) it needs.
	Data     plan.DataKind `json:"data,omitempty"`
	Protocol string        `json:"protocol,omitempty"`
	// Need and Free are, for quota_too_small, the source's size and the
	// target's free quota in bytes.
	Need int64 `json:"need_bytes,omitempty"`
	Free int64 `json:"free_bytes,omitempty"`
	// Error is the server's or the library's error text (secrets
	// redacted by the caller's views).
	Error string `json:"error,omitempty"`
}

// SideCheck is what the pre-flight learnt of one side of an account.
type SideCheck struct {
	Backend   string `json:"backend"`
	Login     string `json:"login,omitempty"`
	SecretRef string `json:"secret_ref,omitempty"`
	// LoggedIn is true when the login worked.
	LoggedIn bool `json:"logged_in"`
	// Size is the source's in-scope size in bytes, -1 when unknown.
	Size     int64  `json:"size,omitempty"`
	SizeFrom string `json:"size_from,omitempty"`
	// Quota is the side's storage quota, when it reports one.
	Quota *vandelay.Quota `json:"quota,omitempty"`
	// Unknown lists what could not be checked, and why.
	Unknown []string `json:"unknown,omitempty"`
}

// AccountCheck is the pre-flight of one account.
type AccountCheck struct {
	Account string `json:"account"`
	// Skipped says why the account was not checked ("done": already cut
	// over), else "".
	Skipped  string    `json:"skipped,omitempty"`
	Source   SideCheck `json:"source"`
	Target   SideCheck `json:"target"`
	Findings []Finding `json:"findings,omitempty"`
}

// Failed reports whether the account has findings.
func (a *AccountCheck) Failed() bool { return len(a.Findings) > 0 }

// CheckReportVersion is the format version of the JSON form of a
// CheckReport.
const CheckReportVersion = "1.0"

// CheckReport is the result of [Preflight].
type CheckReport struct {
	FormatVersion string          `json:"format_version"`
	Accounts      []*AccountCheck `json:"accounts"`
	// Checked, Failed and Skipped count the accounts.
	Checked int `json:"checked"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// PreflightOptions tune [Preflight]; a nil *PreflightOptions means
// defaults.
type PreflightOptions struct {
	// Accounts limits the check to these account keys ([Key]); nil
	// means every account of the plan.
	Accounts map[string]bool
	// State, when set, skips the accounts it records as done (their
	// source may be gone).
	State *state.State
	// Parallelism bounds the accounts checked at once. Default: 8.
	Parallelism int
	// Limiters are the per-backend limits; a check holds one of the
	// backend's limits.connections while it talks to it. Default:
	// NewLimiters(m).
	Limiters map[string]*Limiter
}

// Preflight logs in at the source and the target of every account in
// scope, through chk, and reports per account what would make the
// migration fail: a refused login, a target account that does not
// exist, a target quota below the source's size, a protocol a data kind
// needs. At most Parallelism accounts run at once and at most
// limits.connections checks hold a backend. Nothing is written.
func Preflight(ctx context.Context, m *plan.Migration, chk Checker, opts *PreflightOptions) *CheckReport {
	if opts == nil {
		opts = &PreflightOptions{}
	}
	par := opts.Parallelism
	if par <= 0 {
		par = 8
	}
	lims := opts.Limiters
	if lims == nil {
		lims = NewLimiters(m)
	}
	sems := map[string]chan struct{}{}
	for name, l := range lims {
		sems[name] = make(chan struct{}, max(1, l.Connections))
	}
	hold := func(backend string) (release func(), ok bool) {
		s := sems[backend]
		if s == nil {
			return func() {}, true
		}
		select {
		case s <- struct{}{}:
			return func() { <-s }, true
		case <-ctx.Done():
			return nil, false
		}
	}

	r := &CheckReport{FormatVersion: CheckReportVersion}
	var wg sync.WaitGroup
	slots := make(chan struct{}, par)
	for _, acct := range m.Accounts {
		if opts.Accounts != nil && !opts.Accounts[Key(acct.Address)] {
			continue
		}
		ac := &AccountCheck{Account: acct.Address,
			Source: SideCheck{Backend: acct.From, Login: sourceLoginAt(m.Backend(acct.From), acct), SecretRef: secretRef(m.Backend(acct.From), acct), Size: -1},
			Target: SideCheck{Backend: acct.To, Login: targetLogin(m.Backend(acct.To), acct), SecretRef: secretRef(m.Backend(acct.To), acct)}}
		r.Accounts = append(r.Accounts, ac)
		if opts.State != nil {
			if sa := opts.State.Account(acct.Address); sa != nil && sa.Phase == state.PhaseDone {
				ac.Skipped = "done"
				continue
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			ac.Findings = append(ac.Findings, Finding{Problem: CheckError, Side: SideSource, Backend: acct.From, Error: ctx.Err().Error()})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			checkAccount(ctx, m, chk, acct, ac, lims, hold)
		}()
	}
	wg.Wait()
	for _, ac := range r.Accounts {
		switch {
		case ac.Skipped != "":
			r.Skipped++
		case ac.Failed():
			r.Checked++
			r.Failed++
		default:
			r.Checked++
		}
	}
	return r
}

// checkAccount checks both sides of one account, the source first: the
// target's answer is judged with the source's.
func checkAccount(ctx context.Context, m *plan.Migration, chk Checker, acct *plan.Account, ac *AccountCheck, lims map[string]*Limiter, hold func(string) (func(), bool)) {
	finding := func(side *SideCheck, sideName string, p CheckProblem, err error) Finding {
		f := Finding{Problem: p, Side: sideName, Backend: side.Backend, Login: side.Login, SecretRef: side.SecretRef}
		if err != nil {
			f.Error = err.Error()
		}
		return f
	}
	classify := func(err error) CheckProblem {
		switch {
		case errors.Is(err, vandelay.ErrAuth):
			return CheckLoginRefused
		case errors.Is(err, vandelay.ErrAccountMissing):
			return CheckAccountMissing
		case errors.Is(err, ErrProtocolMissing):
			return CheckProtocolMissing
		case errors.Is(err, vandelay.ErrConnect):
			return CheckUnreachable
		}
		return CheckError
	}

	var src *vandelay.SourceCheck
	if release, ok := hold(acct.From); ok {
		var err error
		src, err = chk.CheckSource(ctx, acct, lims[acct.From])
		release()
		if err != nil {
			p := classify(err)
			f := finding(&ac.Source, SideSource, p, err)
			if p == CheckProtocolMissing {
				f.Data, f.Protocol = plan.DataMail, "imap, pop3, maildir, takeout or jmap"
			}
			ac.Findings = append(ac.Findings, f)
		} else {
			ac.Source.LoggedIn = true
			ac.Source.Size, ac.Source.SizeFrom, ac.Source.Quota = src.Size, src.SizeFrom, src.Quota
			ac.Source.Unknown = src.Unknown
		}
	}
	for _, k := range acct.Data {
		if k != plan.DataMail {
			ac.Source.Unknown = append(ac.Source.Unknown, string(k)+": not checked online (apply moves mail only)")
		}
	}

	release, ok := hold(acct.To)
	if !ok {
		ac.Findings = append(ac.Findings, finding(&ac.Target, SideTarget, CheckError, ctx.Err()))
		return
	}
	tgt, err := chk.CheckTarget(ctx, acct, lims[acct.To])
	release()
	if err != nil {
		p := classify(err)
		f := finding(&ac.Target, SideTarget, p, err)
		switch {
		case p == CheckLoginRefused && src != nil && sameSecret(m, acct):
			// A JMAP server answers a wrong password and a missing
			// account alike; the source just accepted this password.
			f.Problem, f.Inferred = CheckAccountMissing, true
		case p == CheckProtocolMissing:
			f.Data, f.Protocol = plan.DataMail, "jmap"
		}
		ac.Findings = append(ac.Findings, f)
		return
	}
	ac.Target.LoggedIn = true
	ac.Target.Quota, ac.Target.Unknown = tgt.Quota, tgt.Unknown
	tb := m.Backend(acct.To)
	for _, k := range acct.Data {
		if ep := dedicatedEndpoint(tb, k); ep != "" {
			ac.Target.Unknown = append(ac.Target.Unknown, string(k)+": "+ep+" endpoint not checked online")
			continue
		}
		caps := jmapCapabilities[k]
		if len(caps) == 0 {
			ac.Target.Unknown = append(ac.Target.Unknown, string(k)+": no JMAP capability to look for")
			continue
		}
		if !slices.ContainsFunc(caps, tgt.Has) {
			ac.Findings = append(ac.Findings, Finding{Problem: CheckProtocolMissing, Side: SideTarget, Backend: acct.To,
				Login: ac.Target.Login, Data: k, Protocol: "jmap " + caps[0]})
		}
	}
	if src != nil && src.Size >= 0 && tgt.Quota != nil {
		free := max(0, tgt.Quota.Limit-tgt.Quota.Used)
		if src.Size > free {
			ac.Findings = append(ac.Findings, Finding{Problem: CheckQuota, Side: SideTarget, Backend: acct.To,
				Login: ac.Target.Login, Need: src.Size, Free: free})
		}
	}
}

// jmapCapabilities are the JMAP capabilities that carry each data kind on
// a target, standard first (the rest are Cyrus's own).
var jmapCapabilities = map[plan.DataKind][]string{
	plan.DataMail:      {"urn:ietf:params:jmap:mail"},
	plan.DataSieve:     {"urn:ietf:params:jmap:sieve", "https://cyrusimap.org/ns/jmap/sieve"},
	plan.DataCalendars: {"urn:ietf:params:jmap:calendars", "https://cyrusimap.org/ns/jmap/calendars"},
	plan.DataContacts:  {"urn:ietf:params:jmap:contacts", "https://cyrusimap.org/ns/jmap/contacts"},
	plan.DataFiles:     {"urn:ietf:params:jmap:filenode"},
}

// dedicatedEndpoint names the endpoint other than jmap that carries kind
// k on backend b, or "" when JMAP does.
func dedicatedEndpoint(b *plan.Backend, k plan.DataKind) string {
	if b == nil {
		return ""
	}
	p := map[plan.DataKind]plan.Protocol{plan.DataSieve: plan.ProtoManageSieve, plan.DataCalendars: plan.ProtoCalDAV,
		plan.DataContacts: plan.ProtoCardDAV, plan.DataFiles: plan.ProtoWebDAV}[k]
	if p != "" && b.Endpoint(p) != nil {
		return string(p)
	}
	return ""
}

// sameSecret reports whether source and target are logged in to with the
// account's own password (neither with master credentials).
func sameSecret(m *plan.Migration, acct *plan.Account) bool {
	for _, name := range []string{acct.From, acct.To} {
		if b := m.Backend(name); b == nil || b.Login == plan.LoginMaster {
			return false
		}
	}
	return acct.Password.IsSet()
}

func sourceLogin(acct *plan.Account) string {
	if acct.SourceLogin != "" {
		return acct.SourceLogin
	}
	return acct.Address
}

// sourceLoginAt is the login the source sees: a Microsoft Graph app
// signs in as its registration (tenant/client id) for every mailbox.
func sourceLoginAt(b *plan.Backend, acct *plan.Account) string {
	if graphApp(b) {
		return b.Exchange.Tenant + "/" + b.Exchange.ClientID
	}
	return sourceLogin(acct)
}

// graphApp reports whether b is read through Microsoft Graph with the
// plan's app registration.
func graphApp(b *plan.Backend) bool {
	return b != nil && b.Exchange != nil && b.Exchange.API == "graph"
}

// targetLogin is the login the target sees: the master user for a master
// login (acting for the account), else the account's target login.
func targetLogin(b *plan.Backend, acct *plan.Account) string {
	if b != nil && b.Login == plan.LoginMaster && b.Master != nil {
		return b.Master.User
	}
	if acct.TargetLogin != "" {
		return acct.TargetLogin
	}
	return acct.Address
}

// secretRef names the secret a login at b uses, never its value.
func secretRef(b *plan.Backend, acct *plan.Account) string {
	switch {
	case graphApp(b):
		return "backend." + b.Name + ".exchange.client_secret"
	case b != nil && b.Login == plan.LoginMaster && b.Master != nil && b.Master.PasswordRef != "":
		return b.Master.PasswordRef
	case b != nil && b.Login == plan.LoginMaster:
		return "backend." + b.Name + ".master.password"
	case acct.PasswordRef != "":
		return acct.PasswordRef
	case acct.Password.IsSet():
		return "password in the plan (" + acct.DeclRange.String() + ")"
	}
	return ""
}
