package jmap

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailmig/mailmig/vandelay"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// NewContacts returns the address books and contact cards of the JMAP
// account opts names (RFC 9610, urn:ietf:params:jmap:contacts) as a
// vandelay.DAVSource: the sources registry's "jmap-contacts" kind. It logs
// in on first use with the same client, credentials and account choice as
// the mail source; each card is archived as the vCard 4.0 its JSContact
// converts to (vandelay.ContactsJMAPSource).
func NewContacts(opts *Options) (vandelay.DAVSource, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	src := s.(*Source)
	open := func(ctx context.Context) (*jc.Client, string, error) {
		auth, err := src.cfg.auth()
		if err != nil {
			return nil, "", err
		}
		id, name := src.cfg.accountKey()
		t, err := vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: src.cfg.URL, Auth: auth, AccountID: id, AccountName: name,
			MaxRetries: src.cfg.MaxRetries, Timeouts: src.cfg.Timeouts, InsecureSkipVerify: src.cfg.InsecureSkipVerify, Logger: src.log})
		if err != nil {
			switch {
			case errors.Is(err, jc.ErrAuthRefused):
				return nil, "", fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
			case ctx.Err() != nil:
				return nil, "", err
			}
			return nil, "", fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
		}
		return t.Client, t.AccountID, nil
	}
	return vandelay.OpenContactsJMAPSource(src.Describe(), open), nil
}
