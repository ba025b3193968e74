package executor

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/jmap"
	"github.com/mailmig/mailmig/vandelay/sources"
)

var _ engine.Checker = (*Executor)(nil)

// CheckSource is the pre-flight login at the account's source: the kind's
// Check from the registry (IMAP, POP3), the probe for files (Maildir),
// the file's existence for a Takeout. Nothing is fetched or written; no
// archive is opened.
func (x *Executor) CheckSource(ctx context.Context, acct *plan.Account, lim *engine.Limiter) (*vandelay.SourceCheck, error) {
	kind, spec, err := x.sourceSpec(acct, lim, x.log)
	if err != nil {
		if _, ok := sources.Mail[kind]; !ok {
			return nil, fmt.Errorf("%w: %w", engine.ErrProtocolMissing, err)
		}
		return nil, err
	}
	k := sources.Mail[kind]
	switch {
	case k.Check != nil:
		return k.Check(ctx, spec)
	case k.Probe != nil:
		if _, err := k.Probe(ctx, spec, nil); err != nil {
			return nil, err
		}
	default:
		if _, err := os.Stat(spec.Path); err != nil {
			return nil, fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
		}
	}
	return &vandelay.SourceCheck{Size: -1, Unknown: []string{"size and quota: " + kind + " has no server to ask"}}, nil
}

// CheckTarget is the pre-flight login at the account's JMAP target,
// with the credentials the export uses. Unlike the export it skips the
// IMAP warm-up login (Cyrus creates mailboxes at a first login: a write).
func (x *Executor) CheckTarget(ctx context.Context, acct *plan.Account, lim *engine.Limiter) (*vandelay.TargetCheck, error) {
	b := x.m.Backend(acct.To)
	if b == nil {
		return nil, fmt.Errorf("target backend %q is not in the plan", acct.To)
	}
	ep := b.Endpoint(plan.ProtoJMAP)
	if ep == nil {
		return nil, fmt.Errorf("%w: target backend %s has no jmap endpoint", engine.ErrProtocolMissing, b.Name)
	}
	login := acct.TargetLogin
	if login == "" {
		login = acct.Address
	}
	opts := &vandelay.TargetOptions{URL: ep.URL, Logger: x.log, MaxRetries: 1, Timeouts: Timeouts(b)}
	if lim != nil {
		opts.Limiter = lim
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		opts.Auth = vandelay.BasicAuth{User: b.Master.User, Password: b.Master.Password.Reveal()}
		opts.AccountName = login
	case acct.Password.IsSet():
		opts.Auth = vandelay.BasicAuth{User: login, Password: acct.Password.Reveal()}
	default:
		return nil, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	t, err := vandelay.CheckTarget(ctx, opts)
	if errors.Is(err, jmap.ErrAuthRefused) {
		err = fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
	}
	return t, err
}
