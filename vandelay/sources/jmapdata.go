package sources

import (
	"context"
	"fmt"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/targets/jmapdata"
)

// JMAPSieveTarget returns the account's RFC 9661 Sieve scripts at an open
// JMAP target, or an error wrapping vandelay.ErrNoCapability when its
// session does not offer urn:ietf:params:jmap:sieve. (The ManageSieve
// target is SieveTargets["managesieve"]; this one needs no Spec, only the
// session the mail export opened.)
func JMAPSieveTarget(t *vandelay.Target) (vandelay.SieveTarget, error) {
	return jmapdata.NewSieveTarget(t.Client, t.AccountID)
}

// JMAPFileTarget returns the account's FileNode tree at an open JMAP
// target (draft-ietf-jmap-filenode), or an error wrapping
// vandelay.ErrNoCapability.
func JMAPFileTarget(t *vandelay.Target) (vandelay.FileTarget, error) {
	return jmapdata.NewFileTarget(t.Client, t.AccountID)
}

// ImportJMAPData imports the kinds beside mail that a JMAP mail source's
// session offers (vandelay.ImportJMAPData), with the source's own client.
// src must be a source of kind "jmap".
func ImportJMAPData(ctx context.Context, src vandelay.MailSource, a *archive.Archive, opts *vandelay.JMAPDataOptions) (*vandelay.JMAPDataResult, error) {
	js, ok := src.(*jmapsrc.Source)
	if !ok {
		return nil, fmt.Errorf("%w: only a jmap source has sieve scripts, identities, a vacation response and files over JMAP", vandelay.ErrUsage)
	}
	c, accountID, err := js.DataClient(ctx)
	if err != nil {
		return nil, err
	}
	return vandelay.ImportJMAPData(ctx, c, accountID, js.Describe(), a, opts)
}
