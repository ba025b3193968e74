package ews

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailmig/mailmig/vandelay"
)

// Check is the pre-flight of an EWS mailbox (mailmig plan -check): one
// GetFolder of the mailbox's Inbox, as the import asks it (impersonated
// for a master user), after the authentication scheme is chosen. A
// refused login (HTTP 401) and a master user without the
// ApplicationImpersonation role (ErrorImpersonateUserDenied and the like)
// are vandelay.ErrAuth; a mailbox the server does not know
// (ErrorNonExistentMailbox) is vandelay.ErrAccountMissing. EWS gives no
// mailbox size without reading every folder, so Size is -1.
func Check(ctx context.Context, opts *Options) (*vandelay.SourceCheck, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	msgs, err := s.call(ctx, "GetFolder", func(string) string {
		return "<m:GetFolder>\n<m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>\n" +
			`<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds>` + "\n</m:GetFolder>"
	})
	if err == nil && len(msgs) != 1 {
		err = fmt.Errorf("GetFolder: %d answers", len(msgs))
	}
	if err == nil {
		err = msgs[0].err()
	}
	var re *ResponseError
	switch {
	case errors.As(err, &re) && re.Code == "ErrorNonExistentMailbox":
		return nil, fmt.Errorf("%w: EWS has no mailbox %s: %w", vandelay.ErrAccountMissing, s.cfg.User, err)
	case errors.As(err, &re) && s.cfg.MasterUser != "" && (re.Code == "ErrorImpersonateUserDenied" || re.Code == "ErrorImpersonationDenied" || re.Code == "ErrorAccessDenied"):
		return nil, fmt.Errorf("%w: %s may not act for %s (the ApplicationImpersonation role is needed): %w", vandelay.ErrAuth, s.cfg.MasterUser, s.cfg.User, err)
	case err != nil:
		return nil, authError(err)
	}
	return &vandelay.SourceCheck{Size: -1, Unknown: []string{"size: EWS reports no mailbox size without reading every folder"}}, nil
}
