package imap

import (
	"context"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Probe asks the server cheaply what changed since the archive's last
// import: one login and one LIST with LIST-STATUS (MESSAGES UIDNEXT
// UIDVALIDITY HIGHESTMODSEQ) when offered, else LIST plus STATUS per
// mailbox — no SELECT, no FETCH. known are the archive's mailboxes and
// cursors (archive.Overview's Cursors); the scope (Include, Exclude,
// SubscribedOnly) is the one Sync uses. The estimate rules are those of
// vandelay.CompareMailboxes.
func Probe(ctx context.Context, opts *Options, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	c2 := *opts
	c2.NoCompress = true // a handful of lines; deflate would cost more than it saves
	src, err := New(&c2)
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	defer s.Close()
	return s.Probe(ctx, known)
}

// Probe is the package-level Probe on this source's configuration; it
// leaves its connection open until Close.
func (s *Source) Probe(ctx context.Context, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	list, err := s.probeList(ctx, vandelay.NeverSynced(known))
	if err != nil {
		return nil, err
	}
	return vandelay.CompareMailboxes(list, known), nil
}

// probeList logs in and lists the in-scope selectable mailboxes with their
// counters; with sized, and a server that offers STATUS=SIZE (RFC 8438,
// part of IMAP4rev2), also their sizes in the same LIST … RETURN (STATUS
// …), as Check reads them.
func (s *Source) probeList(ctx context.Context, sized bool) ([]vandelay.ProbeMailbox, error) {
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.addConn(c)
	caps := s.caps(c)
	condstore := caps.Has(imap.CapCondStore) || caps.Has(imap.CapIMAP4rev2)
	sized = sized && hasStatusSize(caps)
	list, err := s.listStatus(ctx, c, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: condstore, Size: sized})
	if err != nil {
		return nil, err
	}
	var out []vandelay.ProbeMailbox
	for _, ld := range list {
		mi := mailboxInfo(ld)
		if strings.EqualFold(ld.Mailbox, "INBOX") {
			mi.Path = "INBOX"
		}
		if !mi.Selectable || !s.cfg.InScope(mi.Path) || (s.cfg.SubscribedOnly && !mi.Subscribed && mi.Path != "INBOX") {
			continue
		}
		st := ld.Status
		if st == nil {
			return nil, fmt.Errorf("%w: no STATUS for mailbox %q", vandelay.ErrConnect, ld.Mailbox)
		}
		pm := vandelay.ProbeMailbox{Path: mi.Path, UIDValidity: uint64(st.UIDValidity), UIDNext: uint64(st.UIDNext), HighestModSeq: st.HighestModSeq}
		if st.NumMessages != nil {
			pm.Messages = int64(*st.NumMessages)
		}
		if sized && st.Size != nil {
			pm.Size, pm.SizeFrom = *st.Size, "status-size"
		}
		out = append(out, pm)
	}
	return out, nil
}
