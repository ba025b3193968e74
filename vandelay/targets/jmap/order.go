package jmap

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// The order of the import.
//
// A target numbers emails in the order it files them (the IMAP UIDs Cyrus
// or Stalwart give them), and that order is what users see: mail clients
// sort by "order received" (Thunderbird's default is UID order), and
// mbsync's recovery after a UIDVALIDITY change only goes through when the
// order of the messages did not change. So the export files new messages,
// in every target mailbox, in the order the source holds them:
//
//   - messages are sorted by their first mailbox (the lowest archive
//     mailbox id among theirs, i.e. the first one the import met), then by
//     their position there at the source: the IMAP UID for IMAP sources,
//     otherwise (POP3, Maildir, Takeout: no usable order in the source key)
//     the internal date, then the archive id (the order the import added
//     them). A message in several mailboxes is one target Email, filed
//     once: it has its source position in its first mailbox only; in the
//     others it lands wherever the import of its first mailbox stood at
//     that moment, between that mailbox's own messages;
//   - Options.Workers workers import in parallel. Each takes a whole first
//     mailbox (the biggest first) and imports its batches strictly one
//     after the other, then takes the next mailbox; a batch that empties a
//     mailbox is filled up from the next one the worker takes, so small
//     mailboxes share batches instead of making many small requests.
//     Batch n+1 is prepared (large blobs uploaded, small ones read from the
//     archive) while batch n is imported, but sent only after it;
//   - inside one batch the Email/import calls, and their "emails" members,
//     are in that order (see importBatch), and the creation ids also sort
//     in it, for servers that take the members in key order.
//
// A re-run imports only what is new in the archive, after what it filed
// before: new source messages have higher UIDs, so they stay last. Messages
// that only move or change keywords are patched, not filed again; the
// patches (one ordered Email/set "update" object per chunk) go in the same
// order, so that messages moved together land in their new mailbox in the
// source's order on a server that follows the request's order (Cyrus
// files a bulk move in the old mailbox's UID order by itself).

// mailboxRun is the messages to import of one first mailbox, in source
// order.
type mailboxRun struct {
	mailbox int64
	msgs    []*archive.Message
	bytes   int64
}

// sourceOrder returns the indexes of msgs in source order: by first
// mailbox, then by position there (see the top of this file).
func (e *exporter) sourceOrder(ctx context.Context, msgs []*archive.Message) ([]int, error) {
	type keyed struct {
		m      *archive.Message
		i      int
		mb     int64
		uid    uint64
		hasUID bool
	}
	ks := make([]keyed, len(msgs))
	idx := make(map[int64]int, len(msgs))
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ks[i] = keyed{m: m, i: i}
		if len(m.MailboxIDs) > 0 {
			ks[i].mb = m.MailboxIDs[0]
		}
		idx[m.ID] = i
		ids[i] = m.ID
	}
	src, err := e.a.Source(ctx)
	if err != nil {
		return nil, err
	}
	if src != nil && src.Kind == "imap" && len(msgs) > 1 {
		copies, err := e.a.Copies(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, c := range copies {
			i, ok := idx[c.MessageID]
			if !ok || c.MailboxID != ks[i].mb {
				continue
			}
			uid, err := strconv.ParseUint(c.Key, 10, 32)
			if err != nil {
				continue
			}
			// The same bytes twice in one folder: the first copy counts.
			if !ks[i].hasUID || uid < ks[i].uid {
				ks[i].uid, ks[i].hasUID = uid, true
			}
		}
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		c := cmp.Compare(x.mb, y.mb)
		if c == 0 && x.hasUID != y.hasUID {
			if x.hasUID {
				return -1
			}
			return 1
		}
		return cmp.Or(c, cmp.Compare(x.uid, y.uid), x.m.ReceivedAt.Compare(y.m.ReceivedAt), cmp.Compare(x.m.ID, y.m.ID))
	})
	order := make([]int, len(ks))
	for i, k := range ks {
		order[i] = k.i
	}
	return order, nil
}

// importRuns sorts msgs into source order and groups them by first
// mailbox, the biggest mailbox first.
func (e *exporter) importRuns(ctx context.Context, msgs []*archive.Message) ([]*mailboxRun, error) {
	order, err := e.sourceOrder(ctx, msgs)
	if err != nil {
		return nil, err
	}
	first := func(m *archive.Message) int64 {
		if len(m.MailboxIDs) == 0 {
			return 0
		}
		return m.MailboxIDs[0]
	}
	var runs []*mailboxRun
	for n, i := range order {
		m := msgs[i]
		if n == 0 || first(m) != first(msgs[order[n-1]]) {
			runs = append(runs, &mailboxRun{mailbox: first(m)})
		}
		r := runs[len(runs)-1]
		r.msgs = append(r.msgs, m)
		r.bytes += m.Size
	}
	// The cost of a batch is mostly its number of messages (the target
	// files them one by one), then its bytes.
	slices.SortStableFunc(runs, func(x, y *mailboxRun) int {
		return cmp.Or(cmp.Compare(len(y.msgs), len(x.msgs)), cmp.Compare(y.bytes, x.bytes))
	})
	return runs, nil
}

// batcher hands the runs out to the workers of importAll, biggest first:
// a worker owns each run it takes until the run is imported, and cuts its
// batches by count and bytes. A batch that empties a run is filled up
// from the next one, so small mailboxes share batches; they stay in order
// because one worker imports its batches one after the other.
type batcher struct {
	mu         sync.Mutex
	runs       []*mailboxRun
	size       int
	batchBytes int64
}

// take returns the next run, or nil when all are taken.
func (b *batcher) take() []*archive.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.runs) == 0 {
		return nil
	}
	r := b.runs[0]
	b.runs = b.runs[1:]
	return r.msgs
}

// next cuts the worker's next batch from *cur (the rest of the runs it
// owns), taking runs as needed; nil when there is nothing left.
func (b *batcher) next(cur *[]*archive.Message) []*archive.Message {
	var batch []*archive.Message
	var bytes int64
	for {
		if len(*cur) == 0 {
			if *cur = b.take(); len(*cur) == 0 {
				return batch
			}
		}
		m := (*cur)[0]
		// Batches are cut by count and by bytes, so that one batch of
		// large messages does not hold many uploaded-but-unimported blobs,
		// and, with inline blobs (held in memory, base64-encoded), so that
		// one batch is about one request.
		if len(batch) > 0 && (len(batch) >= b.size || bytes+m.Size > b.batchBytes) {
			return batch
		}
		batch = append(batch, m)
		bytes += m.Size
		*cur = (*cur)[1:]
	}
}
