package graph

import (
	"context"
	"fmt"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/rules"
)

// RulesScript is the name of the Sieve script the inbox rules become.
const RulesScript = "outlook-rules"

// Rules reads the inbox rules (mailFolders/inbox/messageRules) and hands
// them over as one Sieve script (RFC 5228 with fileinto, copy,
// imap4flags and body), the active one. What a rule does that Sieve
// cannot say (see docs/import.md) is listed in comments at the top of the
// script, named by rule, and logged; a disabled rule is listed, not
// converted.
type Rules struct{ s *Source }

var _ vandelay.SieveSource = (*Rules)(nil)

// NewRules returns the mailbox's inbox rules as a Sieve source.
func NewRules(opts *Options) (*Rules, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &Rules{s: s}, nil
}

// Describe implements vandelay.SieveSource.
func (r *Rules) Describe() archive.Source { return r.s.Describe() }

// Close implements vandelay.SieveSource.
func (r *Rules) Close() error { return nil }

// Scripts implements vandelay.SieveSource.
func (r *Rules) Scripts(ctx context.Context) ([]archive.NewSieveScript, error) {
	var rs []rules.Rule
	next := r.s.base + "/mailFolders/inbox/messageRules"
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("rule listing does not end")
		}
		var p struct {
			Value    []rules.Rule `json:"value"`
			NextLink string       `json:"@odata.nextLink"`
		}
		if err := r.s.get(ctx, next, &p); err != nil {
			return nil, fmt.Errorf("list inbox rules: %w", err)
		}
		rs = append(rs, p.Value...)
		next = p.NextLink
	}
	if len(rs) == 0 {
		return nil, nil
	}
	folders, err := r.s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	trash := ""
	for _, f := range folders {
		paths[f.ID] = f.Path
		if f.Role == archive.RoleTrash {
			trash = f.Path
		}
	}
	script, notes := rules.Sieve(rs, paths, trash, "Microsoft Graph messageRules")
	for _, n := range notes {
		r.s.log.Warn("inbox rule not fully expressible in Sieve", "rule", n)
	}
	return []archive.NewSieveScript{{Name: RulesScript, Body: script, Active: true}}, nil
}
