package jmap

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailmig/mailmig/vandelay"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// Open discovers the session with opts' credential and picks the account
// for a data kind read over JMAP (jmap-calendars): the account opts name
// (id, name, or the user a master login acts for), else the session's
// primary account of capability, else its primary mail account. Unlike
// the mail source it does not require the mail capability. Errors are
// classed like the mail source's (vandelay.ErrUsage, ErrAuth,
// ErrConnect).
func Open(ctx context.Context, opts *Options, capability string) (*vandelay.Target, error) {
	if opts == nil || opts.URL == "" {
		return nil, fmt.Errorf("%w: jmap source needs a URL (--url)", vandelay.ErrUsage)
	}
	if opts.AccountID != "" && opts.AccountName != "" {
		return nil, fmt.Errorf("%w: use either an account id or an account name, not both", vandelay.ErrUsage)
	}
	auth, err := opts.auth()
	if err != nil {
		return nil, err
	}
	id, name := opts.accountKey()
	t, err := vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: opts.URL, Auth: auth, AccountID: id, AccountName: name,
		MaxRetries: opts.MaxRetries, Timeouts: opts.Timeouts, InsecureSkipVerify: opts.InsecureSkipVerify, Logger: vandelay.LoggerOr(opts.Logger)})
	if err != nil {
		switch {
		case errors.Is(err, jc.ErrAuthRefused):
			return nil, fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
		case ctx.Err() != nil:
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
	}
	if id == "" && name == "" {
		if p := t.Client.Session().PrimaryAccounts[capability]; p != "" {
			t.AccountID = p
		}
	}
	return t, nil
}
