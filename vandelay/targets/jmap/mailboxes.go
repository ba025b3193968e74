package jmap

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// mbOp is one planned Mailbox/set create or update.
type mbOp struct {
	box    *archive.Mailbox
	create map[string]any // create properties, or nil
	update map[string]any // patch, or nil
	remote string         // target id for an update
	safe   bool           // name already replaced by SafeName
}

func (e *exporter) syncMailboxes(ctx context.Context) error {
	e.report("mailboxes")
	all, err := e.a.Mailboxes(ctx, &archive.MailboxFilter{IncludeDeleted: true})
	if err != nil {
		return err
	}
	maps, err := e.tgt.Mappings(ctx, archive.KindMailbox)
	if err != nil {
		return err
	}
	// The sort orders a JMAP source gave (none for other sources: the
	// target's own order is then left alone).
	orders, err := e.a.MailboxSortOrders(ctx)
	if err != nil {
		return err
	}
	remote, mbState, err := e.c.Mailboxes(ctx, e.acct)
	if err != nil {
		return fmt.Errorf("read target mailboxes: %w", err)
	}
	e.mailboxState = mbState
	e.boxes = map[int64]*archive.Mailbox{}
	for _, b := range all {
		e.boxes[b.ID] = b
	}
	e.remote = map[string]*jc.Mailbox{}
	claimed := map[string]bool{}
	byRole := map[string]string{}
	for i := range remote {
		r := &remote[i]
		e.remote[r.ID] = r
		if r.Role != "" {
			byRole[r.Role] = r.ID
		}
	}
	for _, m := range maps {
		if b := e.boxes[m.ArchiveID]; b != nil && e.remote[m.RemoteID] != nil {
			claimed[m.RemoteID] = true
		}
	}
	depth := func(b *archive.Mailbox) int {
		d := 0
		for p := b.ParentID; p != 0 && d < 1000; d++ {
			pb := e.boxes[p]
			if pb == nil {
				break
			}
			p = pb.ParentID
		}
		return d
	}
	var live []*archive.Mailbox
	for _, b := range all {
		if b.Deleted.IsZero() {
			live = append(live, b)
		} else if m, ok := maps[b.ID]; ok && e.remote[m.RemoteID] != nil {
			e.mbRemote[b.ID] = m.RemoteID // until destroyMailboxes
		}
	}
	sort.SliceStable(live, func(i, j int) bool { return depth(live[i]) < depth(live[j]) })
	var newMaps []archive.Mapping
	for i := 0; i < len(live); {
		d := depth(live[i])
		var ops []*mbOp
		for ; i < len(live) && depth(live[i]) == d; i++ {
			b := live[i]
			parent := ""
			if b.ParentID != 0 {
				p, ok := e.mbRemote[b.ParentID]
				if !ok {
					e.skip(archive.KindMailbox, b.ID, b.Path, "its parent mailbox could not be created on the target")
					continue
				}
				parent = p
			}
			if m, ok := maps[b.ID]; ok && e.remote[m.RemoteID] == nil {
				// Someone removed the target mailbox: it is matched or
				// created again below, and its messages get their
				// mailboxIds again.
				e.recreated = append(e.recreated, b.ID)
			}
			if m, ok := maps[b.ID]; ok && e.remote[m.RemoteID] != nil {
				r := e.remote[m.RemoteID]
				e.mbRemote[b.ID] = r.ID
				if b.ModSeq <= m.ModSeq {
					if r.IsSubscribed == b.Subscribed {
						continue
					}
					// Unchanged in the archive, but the target's
					// subscription differs: a server that kept an old
					// subscription for the name (IMAP DELETE does) created
					// the mailbox subscribed. Repair only that.
					ops = append(ops, &mbOp{box: b, update: map[string]any{"isSubscribed": b.Subscribed}, remote: r.ID})
					continue
				}
				patch := map[string]any{}
				roleBox := r.Role != "" && (r.Role == b.Role || r.Role == "inbox")
				if !roleBox && r.Name != b.Name && r.Name != SafeName(b.Name) {
					patch["name"] = b.Name
				}
				if !roleBox && r.ParentID != parent {
					patch["parentId"] = nullable(parent)
				}
				if r.IsSubscribed != b.Subscribed {
					patch["isSubscribed"] = b.Subscribed
				}
				if o, ok := orders[b.ID]; ok && r.SortOrder != o {
					patch["sortOrder"] = o
				}
				if len(patch) == 0 {
					newMaps = append(newMaps, archive.Mapping{Kind: archive.KindMailbox, ArchiveID: b.ID, RemoteID: r.ID, Created: m.Created, ModSeq: b.ModSeq})
					continue
				}
				ops = append(ops, &mbOp{box: b, update: patch, remote: r.ID})
				continue
			}
			// Match by role, then by name under the matched parent.
			match := ""
			if b.Role != "" && byRole[b.Role] != "" && !claimed[byRole[b.Role]] {
				match = byRole[b.Role]
			}
			if match == "" {
				for _, r := range remote {
					if claimed[r.ID] || r.ParentID != parent {
						continue
					}
					if r.Name == b.Name || r.Name == SafeName(b.Name) || (parent == "" && strings.EqualFold(b.Name, "INBOX") && r.Role == "inbox") {
						match = r.ID
						break
					}
				}
			}
			if match != "" {
				claimed[match] = true
				e.mbRemote[b.ID] = match
				e.res.MailboxesMatched++
				e.change('=', archive.KindMailbox, b.Path)
				r := e.remote[match]
				if r.IsSubscribed != b.Subscribed {
					ops = append(ops, &mbOp{box: b, update: map[string]any{"isSubscribed": b.Subscribed}, remote: match})
					newMaps = append(newMaps, archive.Mapping{Kind: archive.KindMailbox, ArchiveID: b.ID, RemoteID: match, ModSeq: 0})
					continue
				}
				newMaps = append(newMaps, archive.Mapping{Kind: archive.KindMailbox, ArchiveID: b.ID, RemoteID: match, ModSeq: b.ModSeq})
				continue
			}
			create := map[string]any{"name": b.Name, "parentId": nullable(parent), "isSubscribed": b.Subscribed}
			if o, ok := orders[b.ID]; ok && o != 0 {
				// A JMAP source's order (0, the default, is not sent).
				create["sortOrder"] = o
			}
			if b.Role != "" && byRole[b.Role] == "" {
				create["role"] = b.Role
				byRole[b.Role] = "(pending)"
			}
			ops = append(ops, &mbOp{box: b, create: create})
		}
		if err := e.applyMailboxOps(ctx, ops, &newMaps); err != nil {
			return err
		}
	}
	if e.opts.DryRun {
		return nil
	}
	return e.tgt.PutMappings(ctx, newMaps)
}

func nullable(id string) any {
	if id == "" {
		return nil
	}
	return id
}

// applyMailboxOps sends one depth level of creates and updates, chunked by
// maxObjectsInSet, and retries refused names once with SafeName and
// refused roles once without the role.
func (e *exporter) applyMailboxOps(ctx context.Context, ops []*mbOp, newMaps *[]archive.Mapping) error {
	for attempt := 0; len(ops) > 0 && attempt < 3; attempt++ {
		if e.opts.DryRun {
			for _, op := range ops {
				if op.create != nil {
					e.change('+', archive.KindMailbox, op.box.Path)
					e.res.MailboxesCreated++
					e.mbRemote[op.box.ID] = "(new " + op.box.Path + ")"
				} else {
					e.change('~', archive.KindMailbox, fmt.Sprintf("%s %v", op.box.Path, keys(op.update)))
					e.res.MailboxesUpdated++
				}
			}
			return nil
		}
		chunk := e.c.MaxObjectsInSet()
		var groups [][]*jc.Call
		var resps []*jc.SetResponse
		for start := 0; start < len(ops); start += chunk {
			part := ops[start:min(start+chunk, len(ops))]
			create, update := map[string]any{}, map[string]any{}
			for _, op := range part {
				if op.create != nil {
					create["b"+itoa(op.box.ID)] = op.create
				} else {
					update[op.remote] = op.update
				}
			}
			args := map[string]any{"accountId": e.acct}
			if len(create) > 0 {
				args["create"] = create
			}
			if len(update) > 0 {
				args["update"] = update
			}
			r := &jc.SetResponse{}
			resps = append(resps, r)
			groups = append(groups, []*jc.Call{{Method: "Mailbox/set", Args: args, Result: r}})
		}
		if err := e.c.Exec(ctx, jc.UsingMail, groups...); err != nil {
			return fmt.Errorf("create target mailboxes: %w", err)
		}
		var again []*mbOp
		for gi, g := range groups {
			if g[0].Err != nil {
				return fmt.Errorf("create target mailboxes: %w", g[0].Err)
			}
			r := resps[gi]
			part := ops[gi*chunk : min((gi+1)*chunk, len(ops))]
			for _, op := range part {
				b := op.box
				if op.create != nil {
					cid := "b" + itoa(b.ID)
					if id := r.CreatedID(cid); id != "" {
						e.mbRemote[b.ID] = id
						e.remote[id] = &jc.Mailbox{ID: id, Name: fmt.Sprint(op.create["name"]), ParentID: strOrEmpty(op.create["parentId"]), IsSubscribed: b.Subscribed}
						*newMaps = append(*newMaps, archive.Mapping{Kind: archive.KindMailbox, ArchiveID: b.ID, RemoteID: id, Created: true, ModSeq: b.ModSeq})
						e.res.MailboxesCreated++
						e.change('+', archive.KindMailbox, b.Path)
						continue
					}
					se := r.NotCreated[cid]
					if se != nil && se.Type == jc.SetInvalidProperties && hasProp(se.Properties, "role") && op.create["role"] != nil {
						delete(op.create, "role")
						again = append(again, op)
						continue
					}
					// Cyrus answers serverFail "Invalid mailbox name", others
					// invalidProperties [name]: retry once with SafeName.
					if se != nil && !op.safe && SafeName(b.Name) != b.Name {
						op.create["name"] = SafeName(b.Name)
						op.safe = true
						again = append(again, op)
						continue
					}
					e.skip(archive.KindMailbox, b.ID, b.Path, "target refused the mailbox: "+errText(se))
					continue
				}
				if _, ok := r.Updated[op.remote]; ok {
					if n, ok := op.update["name"]; ok {
						e.remote[op.remote].Name = fmt.Sprint(n)
					}
					*newMaps = append(*newMaps, archive.Mapping{Kind: archive.KindMailbox, ArchiveID: b.ID, RemoteID: op.remote, Created: e.createdBox(ctx, b.ID), ModSeq: b.ModSeq})
					e.res.MailboxesUpdated++
					e.change('~', archive.KindMailbox, b.Path)
					continue
				}
				se := r.NotUpdated[op.remote]
				if se != nil && !op.safe {
					if n, ok := op.update["name"]; ok && SafeName(fmt.Sprint(n)) != n {
						op.update["name"] = SafeName(b.Name)
						op.safe = true
						again = append(again, op)
						continue
					}
				}
				e.skip(archive.KindMailbox, b.ID, b.Path, "target refused the change: "+errText(se))
			}
		}
		ops = again
	}
	return nil
}

func (e *exporter) createdBox(ctx context.Context, id int64) bool {
	m, ok, _ := e.tgt.Mapping(ctx, archive.KindMailbox, id)
	return ok && m.Created
}

func strOrEmpty(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func hasProp(ps []string, p string) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func errText(se *jc.SetError) string {
	if se == nil {
		return "no answer"
	}
	return se.Error()
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// destroyMailboxes destroys target mailboxes of tombstoned archive
// mailboxes that the export created, deepest first; it forgets the others.
func (e *exporter) destroyMailboxes(ctx context.Context) error {
	maps, err := e.tgt.Mappings(ctx, archive.KindMailbox)
	if err != nil {
		return err
	}
	type victim struct {
		id     int64
		remote string
		depth  int
	}
	var vs []victim
	var forget []int64
	for id, m := range maps {
		b := e.boxes[id]
		if b != nil && b.Deleted.IsZero() {
			continue
		}
		if !m.Created || e.remote[m.RemoteID] == nil || e.remote[m.RemoteID].Role != "" {
			forget = append(forget, id)
			continue
		}
		d := 0
		for p := e.remote[m.RemoteID].ParentID; p != "" && d < 1000; d++ {
			if e.remote[p] == nil {
				break
			}
			p = e.remote[p].ParentID
		}
		vs = append(vs, victim{id, m.RemoteID, d})
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].depth > vs[j].depth })
	for _, v := range vs {
		name := e.mailboxPath(v.id)
		if e.opts.DryRun {
			e.change('-', archive.KindMailbox, name)
			e.res.MailboxesDestroyed++
			continue
		}
		var r jc.SetResponse
		call := &jc.Call{Method: "Mailbox/set", Args: map[string]any{"accountId": e.acct, "destroy": []string{v.remote}, "onDestroyRemoveEmails": false}, Result: &r}
		if err := e.c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
			return err
		}
		if call.Err != nil {
			return call.Err
		}
		if se := r.NotDestroyed[v.remote]; se != nil && se.Type != jc.SetNotFound {
			// Mail that the archive does not hold is still in it: keep it.
			e.log.Warn("target mailbox kept", "mailbox", name, "err", se)
			continue
		}
		forget = append(forget, v.id)
		delete(e.mbRemote, v.id)
		e.res.MailboxesDestroyed++
		e.change('-', archive.KindMailbox, name)
	}
	if e.opts.DryRun || len(forget) == 0 {
		return nil
	}
	return e.tgt.DeleteMappings(ctx, archive.KindMailbox, forget)
}
