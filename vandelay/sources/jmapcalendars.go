package sources

import (
	"context"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
)

// importJMAPCalendars is the jmap-calendars kind's import: the account's
// client opened like the jmap mail source's, then
// vandelay.ImportCalendarsJMAP.
func importJMAPCalendars(ctx context.Context, s *Spec, a *archive.Archive, opts *vandelay.ImportOptions) (*vandelay.DAVImportResult, error) {
	if _, err := apiClient(s, vandelay.KindJMAPCalendars); err != nil {
		return nil, err
	}
	t, err := jmapsrc.Open(ctx, jmapOptions(s), vandelay.CapCalendars)
	if err != nil {
		return nil, err
	}
	return vandelay.ImportCalendarsJMAP(ctx, t.Client, t.AccountID, a, opts)
}
