package jmap

import (
	"context"

	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// DataClient returns the source's JMAP client and account (the session
// discovered once per source), so that the data kinds beside mail that
// the session offers are read with the same client:
// vandelay.ImportJMAPData(ctx, c, accountID, src.Describe(), a, opts).
func (s *Source) DataClient(ctx context.Context) (*jc.Client, string, error) {
	t, err := s.open(ctx)
	if err != nil {
		return nil, "", err
	}
	return t.Client, t.AccountID, nil
}
