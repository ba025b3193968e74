package jmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// Probe asks the server what changed since the archive's last import,
// through Mailbox/changes and Email/changes from the stored position: no
// Email is read and no blob downloaded. known are the archive's mailboxes
// and cursors (archive.Overview's Cursors). New, Deleted and
// MailboxesChanged count created, destroyed and updated objects (an
// updated Email counts as a changed mailbox); created, destroyed and
// renamed mailboxes are named. Without a usable position (never imported,
// another scope, a state the server forgot) the result is NotImported
// with the account's totals from one Mailbox/get.
func Probe(ctx context.Context, opts *Options, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	src, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	defer s.Close()
	t, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	c, acct := t.Client, t.AccountID
	r := &vandelay.ProbeResult{Approx: true, Bytes: -1}
	pos, ok := storedPosition(known)
	byRef := map[string]archive.MailboxCursor{}
	for _, k := range known {
		if id, isJMAP := strings.CutPrefix(k.SourceRef, refPrefix); isJMAP && k.Selectable {
			byRef[id] = k
			r.Mailboxes++
			r.Messages += k.Messages
			if k.Cursor.Updated.After(r.Since) {
				r.Since = k.Cursor.Updated
			}
		}
	}
	if !ok || pos.Scope != scopeKey(&s.cfg.Scope) {
		return totals(ctx, c, acct, &s.cfg.Scope)
	}
	mbState, emState := pos.Mailbox, pos.Email
	var changedMB []string
	destroyedMB := map[string]bool{}
	for round := 0; ; round++ {
		var mch, ech jc.ChangesResponse
		var upd struct {
			UpdatedProperties []string `json:"updatedProperties"`
		}
		calls := []*jc.Call{}
		var mc, ec *jc.Call
		if mbState != "" {
			mc = &jc.Call{Method: "Mailbox/changes", Args: map[string]any{"accountId": acct, "sinceState": mbState}, Result: &mch}
			calls = append(calls, mc)
		}
		if emState != "" {
			ec = &jc.Call{Method: "Email/changes", Args: map[string]any{"accountId": acct, "sinceState": emState}, Result: &ech}
			calls = append(calls, ec)
		}
		if len(calls) == 0 || round > 1000 {
			break
		}
		groups := make([][]*jc.Call, len(calls))
		for i, call := range calls {
			groups[i] = []*jc.Call{call}
		}
		if err := c.Exec(ctx, jc.UsingMail, groups...); err != nil {
			return nil, sourceErr(ctx, "probe changes", err)
		}
		for _, call := range calls {
			if call.Err == nil {
				continue
			}
			if call.Err.Type == jc.ErrCannotCalcChanges || call.Err.Type == jc.ErrInvalidArguments {
				return totals(ctx, c, acct, &s.cfg.Scope)
			}
			return nil, sourceErr(ctx, "probe changes", call.Err)
		}
		if mc != nil {
			_ = json.Unmarshal(mc.Raw, &upd)
			for _, id := range mch.Destroyed {
				destroyedMB[id] = true
			}
			changedMB = append(changedMB, mch.Created...)
			if !onlyCounts(upd.UpdatedProperties) {
				changedMB = append(changedMB, mch.Updated...)
			}
			mbState = ""
			if mch.HasMoreChanges {
				mbState = mch.NewState
			}
		}
		if ec != nil {
			r.New += int64(len(ech.Created))
			r.Deleted += int64(len(ech.Destroyed))
			if len(ech.Updated) > 0 && r.MailboxesChanged == 0 {
				// Which mailboxes an updated Email is in needs Email/get;
				// the probe reads no Email, so it says "some".
				r.MailboxesChanged = 1
			}
			emState = ""
			if ech.HasMoreChanges {
				emState = ech.NewState
			}
		}
	}
	// Names of created and renamed mailboxes: one Mailbox/get of their ids
	// (names only, no Email).
	if len(changedMB) > 0 {
		var list []jc.Mailbox
		if _, err := jc.GetObjects(ctx, c, acct, "Mailbox", dedupe(changedMB), []string{"id", "name", "parentId"}, &list); err != nil {
			return nil, sourceErr(ctx, "probe mailboxes", err)
		}
		for _, m := range list {
			if old, ok := byRef[m.ID]; ok {
				if old.Path != "INBOX" && !strings.HasSuffix(old.Path, m.Name) {
					r.Renamed = append(r.Renamed, old.Path+" → "+m.Name)
				} else {
					r.MailboxesChanged++
				}
				continue
			}
			r.Added = append(r.Added, m.Name)
		}
	}
	for id := range destroyedMB {
		if old, ok := byRef[id]; ok {
			r.Removed = append(r.Removed, old.Path)
		}
	}
	r.Mailboxes += len(r.Added) - len(r.Removed)
	r.Messages += r.New - r.Deleted
	sort.Strings(r.Added)
	sort.Strings(r.Removed)
	sort.Strings(r.Renamed)
	return r, nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// totals is the probe of an account the archive has no position for:
// the in-scope mailboxes and their Email counts from one Mailbox/get.
func totals(ctx context.Context, c *jc.Client, acct string, scope *vandelay.Scope) (*vandelay.ProbeResult, error) {
	var resp jc.GetResponse
	call := &jc.Call{Method: "Mailbox/get", Args: map[string]any{"accountId": acct, "ids": nil,
		"properties": []string{"id", "name", "parentId", "role", "isSubscribed", "totalEmails"}}, Result: &resp}
	if err := c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
		return nil, sourceErr(ctx, "probe mailboxes", err)
	}
	if call.Err != nil {
		return nil, sourceErr(ctx, "probe mailboxes", call.Err)
	}
	var list []jc.Mailbox
	if err := json.Unmarshal(resp.List, &list); err != nil {
		return nil, sourceErr(ctx, "decode mailboxes", err)
	}
	// Mailbox/get has no size; the quota, where offered, counts more than
	// mail (and Check reports it): bytes unknown.
	r := &vandelay.ProbeResult{Approx: true, NotImported: true, Bytes: -1}
	for i, mi := range mailboxInfos(list) {
		if !scope.InScope(mi.Path) || (scope.SubscribedOnly && !mi.Subscribed && mi.Role != archive.RoleInbox) {
			continue
		}
		r.Mailboxes++
		r.Messages += int64(list[i].TotalEmails)
	}
	r.New = r.Messages
	return r, nil
}

// Check is the pre-flight check of a JMAP source: discovery, login, the
// account and its mail capability, and the mail quota when the server
// offers one (RFC 9425 or Cyrus's), read as vandelay.CheckTarget reads a
// target's. Nothing else is read. A refused login is vandelay.ErrAuth.
func Check(ctx context.Context, opts *Options) (*vandelay.SourceCheck, error) {
	src, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	defer s.Close()
	if _, err := s.open(ctx); err != nil {
		return nil, err
	}
	auth, _ := s.cfg.auth()
	id, name := s.cfg.accountKey()
	tc, err := vandelay.CheckTarget(ctx, &vandelay.TargetOptions{URL: s.cfg.URL, Auth: auth, AccountID: id, AccountName: name,
		MaxRetries: 1, Timeouts: s.cfg.Timeouts, InsecureSkipVerify: s.cfg.InsecureSkipVerify, Logger: s.log})
	if err != nil {
		if errors.Is(err, jc.ErrAuthRefused) {
			return nil, fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
		}
		return nil, err
	}
	r := &vandelay.SourceCheck{Size: -1, Quota: tc.Quota, Unknown: tc.Unknown}
	if tc.Quota != nil {
		r.Size, r.SizeFrom = tc.Quota.Used, "quota"
	} else {
		r.Unknown = append(r.Unknown, "size: JMAP tells an account's size only through a quota")
	}
	return r, nil
}
