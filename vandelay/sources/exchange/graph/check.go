package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/httpx"
)

// Check is the pre-flight of a Graph mailbox (mailmig plan -check): the
// app signs in (a refused secret is vandelay.ErrAuth), then one GET of the
// mailbox's Inbox, which needs the mailbox to exist (404 ErrorInvalidUser
// or MailboxNotEnabledForRESTAPI: vandelay.ErrAccountMissing) and the
// app's Mail.Read application permission with admin consent, not shut out
// by an application access policy (403: vandelay.ErrAuth naming the
// permission). Contacts.Read and Calendars.Read are asked the same way
// (one listing of one entry each) and a refusal is listed in Unknown: the
// pre-flight does not know which kinds an account moves. Nothing is
// fetched. Graph tells no mailbox size without reading every folder, so
// Size is -1.
func Check(ctx context.Context, opts *Options) (*vandelay.SourceCheck, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	var inbox struct {
		ID string `json:"id"`
	}
	err = s.get(ctx, s.base+"/mailFolders/inbox?$select=id", &inbox)
	var se *httpx.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		return nil, fmt.Errorf("%w: Graph has no mailbox %s (%s)", vandelay.ErrAccountMissing, s.cfg.User, graphError(se.Body))
	case errors.As(err, &se) && se.Status == http.StatusForbidden:
		return nil, fmt.Errorf("%w: the app may not read %s's mail (%s): it needs the Mail.Read application permission with admin consent, and no application access policy that leaves this mailbox out",
			vandelay.ErrAuth, s.cfg.User, graphError(se.Body))
	case err != nil:
		return nil, err
	}
	c := &vandelay.SourceCheck{Size: -1, Unknown: []string{"size: Graph reports no mailbox size without reading every folder"}}
	for _, p := range []struct{ path, perm, kind string }{
		{"/contactFolders?$top=1&$select=id", "Contacts.Read", "contacts"},
		{"/calendars?$top=1&$select=id", "Calendars.Read", "calendars"},
	} {
		err := s.get(ctx, s.base+p.path, nil)
		if errors.As(err, &se) && se.Status == http.StatusForbidden {
			c.Unknown = append(c.Unknown, fmt.Sprintf("%s: the app lacks %s (%s); only mail can be read", p.kind, p.perm, graphError(se.Body)))
		} else if err != nil {
			return nil, err
		}
	}
	return c, nil
}
