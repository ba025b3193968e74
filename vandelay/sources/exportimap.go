package sources

import (
	"context"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/imap"
	imaptarget "github.com/mailmig/mailmig/vandelay/targets/imap"
)

// ExportIMAPResult is what [ExportIMAP] did.
type ExportIMAPResult = imaptarget.ExportResult

// ExportIMAP logs in to the IMAP server s names (Server, Login, Logger)
// and exports the archive's mail onto it under the export target name
// "imap <address> <user>" (targets/imap.Export: convergent; nothing is
// deleted). It is the library entry of "mailmig vandelay export-imap".
func ExportIMAP(ctx context.Context, a *archive.Archive, s *Spec) (*ExportIMAPResult, error) {
	c, err := imap.Dial(ctx, &imap.Options{Server: s.Server, Login: s.Login, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return imaptarget.Export(ctx, a, c, "imap "+s.Address+" "+s.User, &imaptarget.Options{Logger: s.Logger})
}
