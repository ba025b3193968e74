package vandelay

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/mailmig/mailmig/vandelay/jmap"
)

// ErrAccountMissing is returned by [CheckTarget] when the login worked but
// the account it is meant to act for is not in the session's account list.
var ErrAccountMissing = errors.New("account not in the session")

// Quota is a storage quota as a server reports it, in bytes.
type Quota struct {
	// Used is the storage in use.
	Used int64 `json:"used"`
	// Limit is the hard limit.
	Limit int64 `json:"limit"`
}

// SourceCheck is what a pre-flight login at a source found. Nothing is
// selected, fetched or written.
type SourceCheck struct {
	// Size is the in-scope mail in bytes, or -1 when the source cannot
	// tell without fetching.
	Size int64 `json:"size"`
	// SizeFrom says where Size comes from: "status-size" (IMAP STATUS
	// SIZE, RFC 8438), "quota" (the QUOTA usage, RFC 9208), "stat" (POP3
	// STAT), or "" when unknown.
	SizeFrom string `json:"size_from,omitempty"`
	// Quota is the source's storage quota, nil when it reports none.
	Quota *Quota `json:"quota,omitempty"`
	// Unknown lists what the source could not tell and why, e.g. "size:
	// no STATUS=SIZE and no QUOTA".
	Unknown []string `json:"unknown,omitempty"`
}

// TargetCheck is what a pre-flight login at a JMAP target found.
type TargetCheck struct {
	// AccountID is the account the export would write to.
	AccountID string `json:"account_id"`
	// Capabilities are the session's capabilities together with the
	// account's, sorted.
	Capabilities []string `json:"capabilities"`
	// Quota is the account's mail storage quota, nil when the server
	// offers no quota capability or reports no limit.
	Quota *Quota `json:"quota,omitempty"`
	// Unknown lists what the target could not tell and why.
	Unknown []string `json:"unknown,omitempty"`
}

// Has reports whether the session or the account offers capability c.
func (t *TargetCheck) Has(c string) bool {
	i := sort.SearchStrings(t.Capabilities, c)
	return i < len(t.Capabilities) && t.Capabilities[i] == c
}

// The quota capabilities CheckTarget understands.
const (
	// CapQuota is RFC 9425's JMAP Quota.
	CapQuota = "urn:ietf:params:jmap:quota"
	// CapCyrusQuota is Cyrus's own Quota/get (objects {id, used, total}).
	CapCyrusQuota = "https://cyrusimap.org/ns/jmap/quota"
)

// CheckTarget logs in at a JMAP target, finds the account as [OpenTarget]
// does, and reads its capabilities and mail quota; it writes nothing. A
// refused login is [jmap.ErrAuthRefused]; a login that works but does not
// list the account (AccountName or AccountID, for a master credential) is
// [ErrAccountMissing].
func CheckTarget(ctx context.Context, opts *TargetOptions) (*TargetCheck, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("%w: the target needs a URL", ErrUsage)
	}
	jo := &jmap.Options{Auth: opts.Auth, Logger: opts.Logger, MaxRetries: opts.MaxRetries}
	jo.HTTPClient = targetClient(&opts.Timeouts, opts.Limiter, opts.InsecureSkipVerify)
	c, err := jmap.Discover(ctx, opts.URL, jo)
	if err != nil {
		if errors.Is(err, jmap.ErrAuthRefused) || ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	sess := c.Session()
	key := opts.AccountID
	if key == "" {
		key = opts.AccountName
	}
	id, err := sess.FindAccount(key)
	if err != nil {
		if key != "" {
			return nil, fmt.Errorf("%w: %q is not among the %d account(s) the login may use", ErrAccountMissing, key, len(sess.Accounts))
		}
		return nil, err
	}
	r := &TargetCheck{AccountID: id}
	seen := map[string]bool{}
	for k := range sess.Capabilities {
		seen[k] = true
	}
	for k := range sess.Accounts[id].AccountCapabilities {
		seen[k] = true
	}
	for k := range seen {
		r.Capabilities = append(r.Capabilities, k)
	}
	sort.Strings(r.Capabilities)
	switch {
	case r.Has(CapQuota):
		r.Quota, err = quotaRFC9425(ctx, c, id)
	case r.Has(CapCyrusQuota):
		r.Quota, err = quotaCyrus(ctx, c, id)
	default:
		r.Unknown = append(r.Unknown, "quota: the server offers no JMAP quota capability")
	}
	if err != nil {
		r.Unknown = append(r.Unknown, "quota: "+err.Error())
	}
	return r, nil
}

// quotaRFC9425 reads the account's mail octets quota (RFC 9425 Quota/get);
// nil when none applies.
func quotaRFC9425(ctx context.Context, c *jmap.Client, id string) (*Quota, error) {
	var res struct {
		List []struct {
			ResourceType string   `json:"resourceType"`
			Scope        string   `json:"scope"`
			Used         int64    `json:"used"`
			HardLimit    int64    `json:"hardLimit"`
			Types        []string `json:"types"`
		} `json:"list"`
	}
	call := &jmap.Call{Method: "Quota/get", Args: map[string]any{"accountId": id, "ids": nil}, Result: &res}
	if err := c.Exec(ctx, []string{jmap.CapCore, CapQuota}, []*jmap.Call{call}); err != nil {
		return nil, err
	}
	if call.Err != nil {
		return nil, call.Err
	}
	var best *Quota
	for _, q := range res.List {
		if q.ResourceType != "octets" || q.HardLimit <= 0 {
			continue
		}
		mail := len(q.Types) == 0
		for _, t := range q.Types {
			mail = mail || t == "Mail"
		}
		if !mail {
			continue
		}
		// The tightest quota that applies is the one that bites.
		if best == nil || q.HardLimit-q.Used < best.Limit-best.Used {
			best = &Quota{Used: q.Used, Limit: q.HardLimit}
		}
	}
	return best, nil
}

// quotaCyrus reads Cyrus's "mail" quota (its pre-RFC 9425 Quota/get).
func quotaCyrus(ctx context.Context, c *jmap.Client, id string) (*Quota, error) {
	var res struct {
		List []struct {
			ID    string `json:"id"`
			Used  int64  `json:"used"`
			Total *int64 `json:"total"`
		} `json:"list"`
	}
	call := &jmap.Call{Method: "Quota/get", Args: map[string]any{"accountId": id}, Result: &res}
	if err := c.Exec(ctx, []string{jmap.CapCore, CapCyrusQuota}, []*jmap.Call{call}); err != nil {
		return nil, err
	}
	if call.Err != nil {
		return nil, call.Err
	}
	for _, q := range res.List {
		if q.ID == "mail" && q.Total != nil && *q.Total > 0 {
			return &Quota{Used: q.Used, Limit: *q.Total}, nil
		}
	}
	return nil, nil
}
