package imap

import (
	"context"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/vandelay"
)

// Check is the pre-flight check of an IMAP source: one login, then the
// size of the in-scope mailboxes from STATUS SIZE (RFC 8438, with
// LIST-STATUS when offered) and the INBOX quota root's STORAGE (RFC 9208
// GETQUOTAROOT) when the server has QUOTA. Nothing is selected or
// fetched. A refused login is vandelay.ErrAuth.
func Check(ctx context.Context, opts *Options) (*vandelay.SourceCheck, error) {
	c2 := *opts
	c2.NoCompress = true
	src, err := New(&c2)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	defer s.Close()
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.addConn(c)
	caps := s.caps(c)
	r := &vandelay.SourceCheck{Size: -1}
	if caps.Has(imap.CapQuota) {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		data, err := c.GetQuotaRoot("INBOX").Wait()
		stop()
		if err != nil {
			r.Unknown = append(r.Unknown, fmt.Sprintf("quota: GETQUOTAROOT INBOX: %v", err))
		}
		for _, q := range data {
			st, ok := q.Resources[imap.QuotaResourceStorage]
			if !ok {
				continue
			}
			// RFC 9208 5.1: STORAGE is in units of 1024 octets.
			r.Quota = &vandelay.Quota{Used: st.Usage * 1024, Limit: st.Limit * 1024}
			break
		}
	} else {
		r.Unknown = append(r.Unknown, "quota: the server offers no QUOTA")
	}
	if hasStatusSize(caps) {
		list, err := s.listStatus(ctx, c, &imap.StatusOptions{NumMessages: true, Size: true})
		if err != nil {
			return nil, err
		}
		var total int64
		for _, ld := range list {
			mi := mailboxInfo(ld)
			if strings.EqualFold(ld.Mailbox, "INBOX") {
				mi.Path = "INBOX"
			}
			if !mi.Selectable || !s.cfg.InScope(mi.Path) || (s.cfg.SubscribedOnly && !mi.Subscribed && mi.Path != "INBOX") {
				continue
			}
			if ld.Status == nil || ld.Status.Size == nil {
				return nil, fmt.Errorf("%w: no STATUS SIZE for mailbox %q", vandelay.ErrConnect, ld.Mailbox)
			}
			total += *ld.Status.Size
		}
		r.Size, r.SizeFrom = total, "status-size"
	} else if r.Quota != nil {
		r.Size, r.SizeFrom = r.Quota.Used, "quota"
	} else {
		r.Unknown = append(r.Unknown, "size: the server offers neither STATUS=SIZE nor QUOTA")
	}
	return r, nil
}

// hasStatusSize reports whether the server answers STATUS SIZE (RFC 8438;
// IMAP4rev2 includes it).
func hasStatusSize(caps imap.CapSet) bool {
	return caps.Has(imap.CapStatusSize) || caps.Has(imap.CapIMAP4rev2)
}
