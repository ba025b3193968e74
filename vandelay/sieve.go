package vandelay

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/sievevacation"
)

// SieveSource is one account's Sieve scripts at a source (ManageSieve).
// Scripts returns the complete current set with each script's bytes and
// the active flag; the archive does the diff by name and content hash
// ([archive.Archive.SyncSieve]), since ManageSieve has no change token.
//
// A SieveSource is used by one goroutine. Close releases its connection.
type SieveSource interface {
	// Describe returns the source's identity for the source-change guard.
	Describe() archive.Source
	// Scripts lists and fetches every script.
	Scripts(ctx context.Context) ([]archive.NewSieveScript, error)
	// Close releases the connection.
	Close() error
}

// SieveTarget is one account's Sieve script store at a target (Cyrus's or
// Stalwart's ManageSieve, later JMAP SieveScript). Implementations keep
// the bytes they are given exactly.
type SieveTarget interface {
	// Name is the target's stable identity in the archive's export
	// mapping, e.g. "managesieve 127.0.0.1:4190 u@example.test".
	Name() string
	// List returns the scripts at the target.
	List(ctx context.Context) ([]RemoteScript, error)
	// Get returns a script's bytes.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put stores body under name, replacing a script of that name. A
	// script the target's Sieve implementation refuses is a
	// *[ScriptRefusedError].
	Put(ctx context.Context, name string, body []byte) error
	// SetActive makes name the active script; "" deactivates every script.
	SetActive(ctx context.Context, name string) error
	// Delete deletes a script that is not active.
	Delete(ctx context.Context, name string) error
	// Close releases the connection.
	Close() error
}

// RemoteScript is one script at a [SieveTarget].
type RemoteScript struct {
	Name   string
	Active bool
}

// ScriptRefusedError reports that the target refused a script: its Sieve
// compiler rejected the bytes, or a quota. Text is the target's own
// message, shown to the user as it is.
type ScriptRefusedError struct {
	Name string
	Text string
}

func (e *ScriptRefusedError) Error() string {
	return fmt.Sprintf("target refused sieve script %q: %s", e.Name, e.Text)
}

// ImportSieve fetches every script of src and syncs the archive with them
// in one transaction (see [archive.Archive.SyncSieve]). Import options
// Progress is not used: a script set is small and fetched whole.
func ImportSieve(ctx context.Context, src SieveSource, a *archive.Archive, opts *ImportOptions) (*archive.SieveResult, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	scripts, err := src.Scripts(ctx)
	if err != nil {
		return nil, err
	}
	res, err := a.SyncSieve(ctx, src.Describe(), scripts, &archive.SieveSyncOptions{DryRun: opts.DryRun, AllowSourceChange: opts.AllowSourceChange})
	if err != nil {
		return res, err
	}
	changed, err := a.SetVacation(ctx, VacationFromSieve(scripts), opts.DryRun)
	if err != nil {
		return res, err
	}
	res.VacationChanged = changed
	return res, nil
}

// VacationFromSieve returns the vacation response the active script (or a
// script it includes, followed up to 4 levels) sets, nil when none does.
// Dates come from currentdate tests around the action; a :mime reason is
// split into its body (text/html goes to HTMLBody). The script bytes stay
// what is migrated to a Sieve target; this is the copy for a JMAP
// VacationResponse target.
func VacationFromSieve(scripts []archive.NewSieveScript) *archive.Vacation {
	byName := map[string]archive.NewSieveScript{}
	var cur *archive.NewSieveScript
	for i, s := range scripts {
		byName[s.Name] = s
		if s.Active {
			cur = &scripts[i]
		}
	}
	seen := map[string]bool{}
	var walk func(s archive.NewSieveScript, depth int) *archive.Vacation
	walk = func(s archive.NewSieveScript, depth int) *archive.Vacation {
		if depth > 4 || seen[s.Name] {
			return nil
		}
		seen[s.Name] = true
		p, err := sievevacation.Parse(s.Body)
		if err != nil {
			return nil // the script is migrated as bytes; no structured copy
		}
		if p.Vacation != nil {
			return vacationOf(s.Name, p.Vacation)
		}
		for _, inc := range p.Includes {
			if next, ok := byName[inc]; ok {
				if v := walk(next, depth+1); v != nil {
					return v
				}
			}
		}
		return nil
	}
	if cur == nil {
		return nil
	}
	return walk(*cur, 0)
}

func vacationOf(script string, sv *sievevacation.Vacation) *archive.Vacation {
	v := &archive.Vacation{Enabled: true, From: sv.Start, To: sv.End, Subject: sv.Subject, TextBody: sv.Reason,
		Days: sv.Days, Seconds: sv.Seconds, FromAddress: sv.From, Addresses: sv.Addresses, SourceRef: "sieve:" + script}
	if sv.MIME {
		hdr, body, ok := strings.Cut(strings.ReplaceAll(sv.Reason, "\r\n", "\n"), "\n\n")
		if !ok {
			body = ""
		}
		v.TextBody = body
		if strings.Contains(strings.ToLower(hdr), "text/html") {
			v.TextBody, v.HTMLBody = "", body
		}
	}
	return v
}

// SieveExportOptions configure [ExportSieve]. A nil pointer means the
// defaults.
type SieveExportOptions struct {
	// DryRun computes the changes and writes nothing to the target or the
	// archive.
	DryRun bool
}

// SieveExportResult counts what [ExportSieve] did (or would do).
type SieveExportResult struct {
	Put       int `json:"put"`       // new scripts stored
	Updated   int `json:"updated"`   // scripts stored again with new bytes
	Deleted   int `json:"deleted"`   // scripts the export had created, deleted at the source
	Activated int `json:"activated"` // SETACTIVE calls (including deactivation)
	Unchanged int `json:"unchanged"`
	// Refused maps a script name to the target's error text; the other
	// scripts were exported.
	Refused map[string]string `json:"refused,omitempty"`
	// Conflicts names scripts that existed at the target before the
	// export with other bytes: the target's version was kept.
	Conflicts []string `json:"conflicts,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
}

// Changes is the number of changes made at the target.
func (r *SieveExportResult) Changes() int { return r.Put + r.Updated + r.Deleted + r.Activated }

// ExportSieve reconciles the archive's Sieve scripts onto t, convergent
// like the mail export:
//
//   - a script new in the archive is put with its original bytes and
//     recorded (export_map kind archive.KindSieveScript, Created); a script
//     of that name already at the target with the same bytes is adopted
//     (not Created), with other bytes it is a conflict and left alone;
//   - a script whose archive ModSeq is newer than the one recorded is put
//     again when its bytes differ from the target's, and an exported
//     script that is gone from the target is put back;
//   - the active script follows the archive (none active at the source
//     deactivates only a script the export created);
//   - a tombstoned script is deleted from the target only when the export
//     created it.
//
// A script the target refuses is reported in Refused and the others still
// go; the error is non-nil only when the target or the archive failed.
// Every step is recorded before the next, so a killed export re-runs
// without doubling anything.
func ExportSieve(ctx context.Context, a *archive.Archive, t SieveTarget, opts *SieveExportOptions) (*SieveExportResult, error) {
	if opts == nil {
		opts = &SieveExportOptions{}
	}
	res := &SieveExportResult{DryRun: opts.DryRun}
	scripts, err := a.SieveScripts(ctx, true)
	if err != nil {
		return nil, err
	}
	// The active script first: when the target's quota (Cyrus allows 5
	// scripts per user by default) refuses some, the one that filters
	// mail is in.
	sort.SliceStable(scripts, func(i, j int) bool { return scripts[i].Active && !scripts[j].Active })
	et, err := a.ExportTarget(ctx, t.Name())
	if err != nil {
		return nil, err
	}
	maps, err := et.Mappings(ctx, archive.KindSieveScript)
	if err != nil {
		return nil, err
	}
	remote, err := t.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sieve scripts at the target: %w", err)
	}
	there := map[string]bool{}
	remoteActive := ""
	for _, r := range remote {
		there[r.Name] = true
		if r.Active {
			remoteActive = r.Name
		}
	}
	record := func(m archive.Mapping) error {
		if opts.DryRun {
			return nil
		}
		return et.PutMappings(ctx, []archive.Mapping{m})
	}
	put := func(s archive.SieveScript) (bool, error) {
		if opts.DryRun {
			return true, nil
		}
		body, err := a.BlobBytes(ctx, s.Hash)
		if err != nil {
			return false, err
		}
		err = t.Put(ctx, s.Name, body)
		var re *ScriptRefusedError
		if errors.As(err, &re) {
			if res.Refused == nil {
				res.Refused = map[string]string{}
			}
			res.Refused[s.Name] = re.Text
			return false, nil
		}
		return err == nil, err
	}
	wantActive, created := "", map[string]bool{}
	for _, s := range scripts {
		m, mapped := maps[s.ID]
		if s.Deleted {
			continue
		}
		if s.Active {
			wantActive = s.Name
		}
		switch {
		case !mapped && !there[s.Name]:
			// Record the intent (Created, ModSeq 0) before the put: a run
			// killed after the put finds the mapping, sees equal bytes and
			// still knows that the export created the script.
			m = archive.Mapping{Kind: archive.KindSieveScript, ArchiveID: s.ID, RemoteID: s.Name, Created: true}
			if err := record(m); err != nil {
				return res, err
			}
			ok, err := put(s)
			if err != nil {
				return res, fmt.Errorf("put sieve script %q: %w", s.Name, err)
			}
			if !ok {
				if !opts.DryRun {
					if err := et.DeleteMappings(ctx, archive.KindSieveScript, []int64{s.ID}); err != nil {
						return res, err
					}
				}
				continue
			}
			res.Put++
			created[s.Name] = true
			m.ModSeq = s.ModSeq
			if err := record(m); err != nil {
				return res, err
			}
		case mapped && !there[s.Name]:
			// Exported before, gone from the target since (the user
			// deleted it there): put it back, like the mail export
			// re-creates a mailbox deleted on the target.
			ok, err := put(s)
			if err != nil {
				return res, fmt.Errorf("put sieve script %q: %w", s.Name, err)
			}
			if !ok {
				continue
			}
			res.Put++
			m.ModSeq = s.ModSeq
			if err := record(m); err != nil {
				return res, err
			}
		case !mapped || m.ModSeq < s.ModSeq:
			// Unmapped but present (a re-run after a kill between the put
			// and its record, or the user's own script), or changed in the
			// archive since the last export: compare bytes.
			cur, err := t.Get(ctx, s.Name)
			if err != nil && there[s.Name] {
				return res, fmt.Errorf("get sieve script %q from the target: %w", s.Name, err)
			}
			switch {
			case there[s.Name] && archive.Hash(cur) == s.Hash:
				res.Unchanged++
			case !mapped && there[s.Name]:
				res.Conflicts = append(res.Conflicts, s.Name)
				continue
			default:
				ok, err := put(s)
				if err != nil {
					return res, fmt.Errorf("put sieve script %q: %w", s.Name, err)
				}
				if !ok {
					continue
				}
				res.Updated++
			}
			if !mapped {
				m = archive.Mapping{Kind: archive.KindSieveScript, ArchiveID: s.ID, RemoteID: s.Name, Created: false}
			}
			m.ModSeq = s.ModSeq
			if err := record(m); err != nil {
				return res, err
			}
		default:
			res.Unchanged++
		}
	}
	for _, m := range maps {
		if m.Created {
			created[m.RemoteID] = true
		}
	}
	// Activation before deletion: the target refuses to delete its active
	// script.
	switch {
	case wantActive != "" && wantActive != remoteActive && res.Refused[wantActive] == "":
		res.Activated++
		if !opts.DryRun {
			if err := t.SetActive(ctx, wantActive); err != nil {
				return res, fmt.Errorf("activate sieve script %q: %w", wantActive, err)
			}
		}
	case wantActive == "" && remoteActive != "" && created[remoteActive]:
		res.Activated++
		if !opts.DryRun {
			if err := t.SetActive(ctx, ""); err != nil {
				return res, fmt.Errorf("deactivate sieve scripts: %w", err)
			}
		}
	}
	live := map[string]bool{}
	for _, s := range scripts {
		if !s.Deleted {
			live[s.Name] = true
		}
	}
	for _, s := range scripts {
		m, ok := maps[s.ID]
		if !s.Deleted || !ok {
			continue
		}
		if m.Created && there[m.RemoteID] && !live[m.RemoteID] {
			res.Deleted++
			if !opts.DryRun {
				if err := t.Delete(ctx, m.RemoteID); err != nil {
					return res, fmt.Errorf("delete sieve script %q: %w", m.RemoteID, err)
				}
			}
		}
		if !opts.DryRun {
			if err := et.DeleteMappings(ctx, archive.KindSieveScript, []int64{s.ID}); err != nil {
				return res, err
			}
		}
	}
	if !opts.DryRun {
		if err := saveConflicts(ctx, et, "sieve-conflicts", res.Conflicts); err != nil {
			return res, err
		}
	}
	return res, nil
}

// SieveMismatch is one difference found by [VerifySieve].
type SieveMismatch struct {
	Name string `json:"name"`
	// Kind is "missing" (not at the target), "content" (other bytes) or
	// "active" (another script, or none, is active at the target).
	Kind string `json:"kind"`
}

// SieveVerifyReport is what [VerifySieve] compared.
type SieveVerifyReport struct {
	Scripts    int             `json:"scripts"` // live scripts in the archive
	Mismatches []SieveMismatch `json:"mismatches,omitempty"`
	// Conflicts name scripts whose bytes differ because the last export
	// found a script of that name that the user already had at the
	// target and kept it: reported, not mismatches (a cut-over proceeds
	// with a warning), like DAV items and files.
	Conflicts []string `json:"conflicts,omitempty"`
}

// VerifySieve compares the archive's live scripts with the target's: each
// one present with the same SHA-256, and the same script active. Scripts
// the target holds beyond the archive's are not differences (the user's
// own). A script the target refused is reported "missing"; one the last
// export kept as a conflict (the user's own script of that name) is
// listed in Conflicts, not as a mismatch.
func VerifySieve(ctx context.Context, a *archive.Archive, t SieveTarget) (*SieveVerifyReport, error) {
	scripts, err := a.SieveScripts(ctx, false)
	if err != nil {
		return nil, err
	}
	remote, err := t.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sieve scripts at the target: %w", err)
	}
	there, remoteActive := map[string]bool{}, ""
	for _, r := range remote {
		there[r.Name] = true
		if r.Active {
			remoteActive = r.Name
		}
	}
	var conflicts map[string]bool
	if et, err := a.ExportTarget(ctx, t.Name()); err == nil {
		if conflicts, err = loadConflicts(ctx, et, "sieve-conflicts"); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, archive.ErrNotFound) {
		return nil, err
	}
	rep := &SieveVerifyReport{Scripts: len(scripts)}
	wantActive, ours := "", map[string]bool{}
	for _, s := range scripts {
		ours[s.Name] = true
		if s.Active {
			wantActive = s.Name
		}
		if !there[s.Name] {
			rep.Mismatches = append(rep.Mismatches, SieveMismatch{s.Name, "missing"})
			continue
		}
		b, err := t.Get(ctx, s.Name)
		if err != nil {
			return nil, fmt.Errorf("get sieve script %q from the target: %w", s.Name, err)
		}
		switch {
		case archive.Hash(b) == s.Hash:
		case conflicts[s.Name]:
			rep.Conflicts = append(rep.Conflicts, s.Name)
		default:
			rep.Mismatches = append(rep.Mismatches, SieveMismatch{s.Name, "content"})
		}
	}
	// None active at the source: a user's own active script at the
	// target is not a difference, one of the archive's is.
	if wantActive != remoteActive && (wantActive != "" || ours[remoteActive]) {
		rep.Mismatches = append(rep.Mismatches, SieveMismatch{wantActive, "active"})
	}
	return rep, nil
}
