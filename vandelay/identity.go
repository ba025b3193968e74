package vandelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

var usingIdentity = []string{jmap.CapCore, jmap.CapSubmission}

// IdentityExportResult counts what [ExportIdentitiesJMAP] did.
type IdentityExportResult struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Destroyed int `json:"destroyed"`
	Unchanged int `json:"unchanged"`
	// Refused maps an identity's email to the target's error text (e.g.
	// forbiddenFrom: the target does not let the account send as it);
	// the others were exported.
	Refused map[string]string `json:"refused,omitempty"`
	// Conflicts are emails of identities the user changed at the target
	// (or had there before the export with other fields): kept.
	Conflicts []string `json:"conflicts,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
}

// Changes is the number of changes made at the target.
func (r *IdentityExportResult) Changes() int { return r.Created + r.Updated + r.Destroyed }

// identityObject is the archived identity as the JMAP object's settable
// properties (RFC 8621 6.1; id and mayDelete are the server's).
func identityObject(i archive.Identity) map[string]any {
	list := func(s string) any {
		var v []jmap.EmailAddress
		if s == "" || json.Unmarshal([]byte(s), &v) != nil || len(v) == 0 {
			return nil
		}
		return v
	}
	return map[string]any{"name": i.Name, "email": i.Email, "replyTo": list(i.ReplyTo), "bcc": list(i.Bcc),
		"textSignature": i.TextSignature, "htmlSignature": i.HTMLSignature}
}

// identityKey is the comparable form of an identity's settable
// properties, of the archive's or the target's.
func identityKey(v any) string {
	var i jmap.Identity
	b, _ := json.Marshal(v)
	json.Unmarshal(b, &i)
	i.ID, i.MayDelete = "", false
	if len(i.ReplyTo) == 0 {
		i.ReplyTo = nil
	}
	if len(i.Bcc) == 0 {
		i.Bcc = nil
	}
	out, _ := json.Marshal(i)
	return string(out)
}

// ExportIdentitiesJMAP reconciles the archive's identities onto the
// target account's Identity objects (RFC 8621 6), convergent like the
// Sieve export: a new identity is created, one the target already has
// with the same email and fields is adopted, with other fields it is a
// conflict and kept; a changed one is updated only while the target still
// has what the export last sent; a tombstoned one is destroyed only when
// the export created it and nobody changed it since. A target without
// urn:ietf:params:jmap:submission is [ErrNoCapability]. An identity the
// server refuses (forbiddenFrom …) is reported in Refused.
func ExportIdentitiesJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string, opts *DAVExportOptions) (*IdentityExportResult, error) {
	if opts == nil {
		opts = &DAVExportOptions{}
	}
	if !c.Session().Has(jmap.CapSubmission) {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, jmap.CapSubmission)
	}
	res := &IdentityExportResult{DryRun: opts.DryRun}
	ids, err := a.Identities(ctx, true)
	if err != nil || len(ids) == 0 {
		return res, err
	}
	et, err := a.ExportTarget(ctx, "jmap-identity "+c.SessionURL()+" "+accountID)
	if err != nil {
		return nil, err
	}
	maps, err := et.Mappings(ctx, archive.KindIdentity)
	if err != nil {
		return nil, err
	}
	remote, _, err := jmap.GetAll[jmap.Identity](ctx, c, usingIdentity, accountID, "Identity")
	if err != nil {
		return nil, fmt.Errorf("read the target's identities: %w", err)
	}
	byID, byEmail := map[string]jmap.Identity{}, map[string]jmap.Identity{}
	for _, r := range remote {
		byID[r.ID] = r
		if _, dup := byEmail[r.Email]; !dup {
			byEmail[r.Email] = r
		}
	}
	sentKey := func(id int64) string { return "identity-sent:" + strconv.FormatInt(id, 10) }
	record := func(i archive.Identity, remoteID string, created bool) error {
		if opts.DryRun {
			return nil
		}
		if err := et.PutMappings(ctx, []archive.Mapping{{Kind: archive.KindIdentity, ArchiveID: i.ID, RemoteID: remoteID, Created: created, ModSeq: i.ModSeq}}); err != nil {
			return err
		}
		return et.SetState(ctx, sentKey(i.ID), identityKey(identityObject(i)))
	}
	refuse := func(email string, e *jmap.SetError) {
		if res.Refused == nil {
			res.Refused = map[string]string{}
		}
		text := e.Description
		if text == "" {
			text = e.Type
		}
		res.Refused[email] = text
	}
	set := func(args map[string]any) (*jmap.SetResponse, error) {
		r, err := jmap.Set(ctx, c, usingIdentity, accountID, "Identity", args)
		var me *jmap.MethodError
		if errors.As(err, &me) && me.Type == jmap.ErrUnknownMethod {
			// Cyrus 3.6: one read-only identity per account.
			return nil, fmt.Errorf("%w: Identity/set (the server has read-only identities)", ErrNoCapability)
		}
		if err != nil {
			return nil, fmt.Errorf("write the target's identities: %w", err)
		}
		return r, nil
	}
	for _, i := range ids {
		m, mapped := maps[i.ID]
		cur, present := byID[m.RemoteID]
		want := identityKey(identityObject(i))
		if i.Deleted {
			if !mapped {
				continue
			}
			sent, err := et.State(ctx, sentKey(i.ID))
			if err != nil {
				return res, err
			}
			if m.Created && present && identityKey(cur) == sent {
				res.Destroyed++
				if !opts.DryRun {
					r, err := set(map[string]any{"destroy": []string{m.RemoteID}})
					if err != nil {
						return res, err
					}
					if e := r.NotDestroyed[m.RemoteID]; e != nil {
						return res, fmt.Errorf("destroy identity %s: %s", i.Email, e.Error())
					}
				}
			} else if m.Created && present {
				res.Conflicts = append(res.Conflicts, i.Email)
			}
			if !opts.DryRun {
				if err := et.DeleteMappings(ctx, archive.KindIdentity, []int64{i.ID}); err != nil {
					return res, err
				}
			}
			continue
		}
		switch {
		case mapped && present && identityKey(cur) == want:
			res.Unchanged++
			if m.ModSeq != i.ModSeq {
				if err := record(i, m.RemoteID, m.Created); err != nil {
					return res, err
				}
			}
		case mapped && present:
			sent, err := et.State(ctx, sentKey(i.ID))
			if err != nil {
				return res, err
			}
			if identityKey(cur) != sent {
				res.Conflicts = append(res.Conflicts, i.Email)
				continue
			}
			res.Updated++
			if opts.DryRun {
				continue
			}
			obj := identityObject(i)
			delete(obj, "email") // immutable (RFC 8621 6.1)
			r, err := set(map[string]any{"update": map[string]any{m.RemoteID: obj}})
			if err != nil {
				return res, err
			}
			if e := r.NotUpdated[m.RemoteID]; e != nil {
				res.Updated--
				refuse(i.Email, e)
				continue
			}
			if err := record(i, m.RemoteID, m.Created); err != nil {
				return res, err
			}
		case !mapped && byEmail[i.Email].ID != "":
			// The user's own identity of that address, or one a killed
			// run created before it could record it: adopted when equal.
			r := byEmail[i.Email]
			if identityKey(r) != want {
				res.Conflicts = append(res.Conflicts, i.Email)
				continue
			}
			res.Unchanged++
			if err := record(i, r.ID, false); err != nil {
				return res, err
			}
		default:
			// New, or exported before and deleted at the target since:
			// created (again).
			res.Created++
			if opts.DryRun {
				continue
			}
			r, err := set(map[string]any{"create": map[string]any{"i": identityObject(i)}})
			if err != nil {
				return res, err
			}
			if e := r.NotCreated["i"]; e != nil {
				res.Created--
				refuse(i.Email, e)
				continue
			}
			if err := record(i, r.CreatedID("i"), !mapped || m.Created); err != nil {
				return res, err
			}
		}
	}
	if !opts.DryRun {
		if err := saveConflicts(ctx, et, "identity-conflicts", res.Conflicts); err != nil {
			return res, err
		}
	}
	return res, nil
}

// IdentityVerifyReport is what [VerifyIdentitiesJMAP] compared.
type IdentityVerifyReport struct {
	Matched int `json:"matched"`
	// Mismatches are emails of archived identities the target holds with
	// other fields.
	Mismatches []string `json:"mismatches,omitempty"`
	// Missing are emails the target has no identity for: refused by the
	// target (forbiddenFrom) or a target whose identities are read-only.
	// No re-run brings them, so they are reported apart (like a refused
	// Sieve script).
	Missing   []string `json:"missing,omitempty"`
	Conflicts []string `json:"conflicts,omitempty"`
}

// VerifyIdentitiesJMAP compares the archive's live identities with the
// target's by email and every settable property.
func VerifyIdentitiesJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string) (*IdentityVerifyReport, error) {
	if !c.Session().Has(jmap.CapSubmission) {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, jmap.CapSubmission)
	}
	ids, err := a.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	rep := &IdentityVerifyReport{}
	if len(ids) == 0 {
		return rep, nil
	}
	remote, _, err := jmap.GetAll[jmap.Identity](ctx, c, usingIdentity, accountID, "Identity")
	if err != nil {
		return nil, fmt.Errorf("read the target's identities: %w", err)
	}
	have, emails := map[string]bool{}, map[string]bool{}
	for _, r := range remote {
		have[identityKey(r)] = true
		emails[r.Email] = true
	}
	var conflicts map[string]bool
	if et, err := a.ExportTarget(ctx, "jmap-identity "+c.SessionURL()+" "+accountID); err == nil {
		if conflicts, err = loadConflicts(ctx, et, "identity-conflicts"); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, archive.ErrNotFound) {
		return nil, err
	}
	for _, i := range ids {
		switch {
		case have[identityKey(identityObject(i))]:
			rep.Matched++
		case conflicts[i.Email]:
			rep.Conflicts = append(rep.Conflicts, i.Email)
		case !emails[i.Email]:
			rep.Missing = append(rep.Missing, i.Email)
		default:
			rep.Mismatches = append(rep.Mismatches, i.Email)
		}
	}
	return rep, nil
}
