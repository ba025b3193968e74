package pop3

import (
	"context"
	"fmt"

	"github.com/mailmig/mailmig/vandelay/uidl"
)

// List logs in and lists the maildrop without downloading a message: each
// message's UIDL and size and, with headers, the key of its header section
// (TOP n 0, uidl.HeaderKey). The cut-over lists the source (UIDLs only)
// and the target (with headers) to build the POP3 UIDL map.
func List(ctx context.Context, opts *Options, headers bool) ([]uidl.TargetMessage, error) {
	return ListKnown(ctx, opts, headers, nil)
}

// ListKnown is List that asks TOP only for messages whose header key
// known does not have (by UIDL: a server never reuses a UIDL for other
// bytes, RFC 1939 7), so a listing made before the cut-over's freeze makes
// the one inside it cost what arrived since.
func ListKnown(ctx context.Context, opts *Options, headers bool, known func(uidl string) (key string, ok bool)) ([]uidl.TargetMessage, error) {
	s := &Source{cfg: *opts}
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		c.Quit(ctx)
		c.Close()
	}()
	ids, err := c.Uidl(ctx)
	if err != nil {
		return nil, fmt.Errorf("UIDL at %s: %w", opts.Address, err)
	}
	sizes, err := c.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("LIST at %s: %w", opts.Address, err)
	}
	size := make(map[int]int64, len(sizes))
	for _, m := range sizes {
		size[m.Num] = m.Size
	}
	out := make([]uidl.TargetMessage, 0, len(ids))
	for _, m := range ids {
		t := uidl.TargetMessage{UIDL: m.UniqueID, Size: size[m.Num]}
		if headers && known != nil {
			if k, ok := known(m.UniqueID); ok {
				t.Key = k
				out = append(out, t)
				continue
			}
		}
		if headers {
			rc, err := c.Top(ctx, m.Num, 0)
			if err != nil {
				return nil, fmt.Errorf("TOP %d 0 at %s: %w", m.Num, opts.Address, err)
			}
			t.Key, err = uidl.HeaderKey(rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("TOP %d 0 at %s: %w", m.Num, opts.Address, err)
			}
		}
		out = append(out, t)
	}
	return out, nil
}
