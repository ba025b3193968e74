package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// parseObjects splits an --objects list into mail and the JMAP data kinds
// (vandelay.JMAPDataKinds); "all" is mail and every kind.
func parseObjects(list string) (mail bool, kinds []string, err error) {
	for _, o := range strings.Split(list, ",") {
		switch o = strings.TrimSpace(o); {
		case o == "":
		case o == "mail":
			mail = true
		case o == "all":
			mail, kinds = true, slices.Clone(vandelay.JMAPDataKinds)
		case slices.Contains(vandelay.JMAPDataKinds, o):
			if !slices.Contains(kinds, o) {
				kinds = append(kinds, o)
			}
		default:
			return false, nil, fmt.Errorf("--objects %q: want mail, %s or all (contacts and calendars go with \"mailmig vandelay export-dav\", Sieve over ManageSieve with \"mailmig vandelay export-sieve\", files over WebDAV with \"mailmig vandelay export-webdav\")",
				o, strings.Join(vandelay.JMAPDataKinds, ", "))
		}
	}
	return mail, kinds, nil
}

// importJMAPKinds runs vandelay.ImportJMAPData for "vandelay import jmap
// --objects …" with the source's own client and prints the result.
func importJMAPKinds(ctx context.Context, v *views.View, src vandelay.MailSource, a *archive.Archive, kinds []string, opts *vandelay.JMAPDataOptions, asJSON bool) int {
	opts.Kinds = kinds
	res, err := sources.ImportJMAPData(ctx, src, a, opts)
	if res != nil {
		printJMAPImport(v, res, asJSON)
		got := map[string]bool{vandelay.JMAPKindSieve: res.Sieve != nil, vandelay.JMAPKindIdentity: res.Identities != nil,
			vandelay.JMAPKindVacation: res.Vacation, vandelay.JMAPKindFiles: res.Files != nil}
		for _, k := range res.Unchanged {
			got[k] = true
		}
		for _, k := range kinds {
			if !got[k] && err == nil {
				v.Note(fmt.Sprintf("%s: the source's session does not offer %s; not imported.", k, vandelay.JMAPKindCapability[k]))
			}
		}
	}
	if err != nil {
		return dataImportFailed(v, err)
	}
	return exitOK
}

func printJMAPImport(v *views.View, r *vandelay.JMAPDataResult, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(r)
		v.Text(string(b) + "\n")
		return
	}
	prefix := ""
	if r.DryRun {
		prefix = "(dry run) "
	}
	if r.Sieve != nil {
		v.Text(fmt.Sprintf("%ssieve scripts over jmap: %d added, %d changed, %d deleted, %d unchanged; activations: %d\n", prefix,
			r.Sieve.Added, r.Sieve.Changed, r.Sieve.Deleted, r.Sieve.Unchanged, r.Sieve.Activated))
	}
	if r.Identities != nil {
		v.Text(fmt.Sprintf("%sidentities over jmap: %d added, %d changed, %d deleted, %d unchanged\n", prefix,
			r.Identities.Added, r.Identities.Changed, r.Identities.Deleted, r.Identities.Unchanged))
	}
	if r.Vacation {
		v.Text(fmt.Sprintf("%svacation response over jmap: changed %v\n", prefix, r.VacationChanged))
	}
	if r.Files != nil {
		v.Text(fmt.Sprintf("%sfiles over jmap: %d added, %d changed, %d deleted, %d unchanged, %d bytes fetched\n", prefix,
			r.Files.Added, r.Files.Changed, r.Files.Deleted, r.Files.Unchanged, r.Files.Bytes))
	}
	if len(r.Unchanged) > 0 {
		v.Text(fmt.Sprintf("unchanged since the last run (/changes): %s\n", strings.Join(r.Unchanged, ", ")))
	}
}

// jmapKindReport is one kind's line of "vandelay export --objects …".
type jmapKindReport struct {
	Kind       string            `json:"kind"`
	Changes    int               `json:"changes"`
	Conflicts  []string          `json:"conflicts,omitempty"`
	Refused    map[string]string `json:"refused,omitempty"`
	Mismatches []string          `json:"mismatches,omitempty"`
	Missing    []string          `json:"missing,omitempty"`
	Result     any               `json:"result"`
}

// exportJMAPKinds exports each kind onto the target's session and then
// verifies it (content hashes for Sieve and files, the active script,
// every identity property). A kind the session does not offer is an
// error naming the capability. It returns the exit code: partial when
// anything was refused, conflicted or differs.
func exportJMAPKinds(ctx context.Context, v *views.View, a *archive.Archive, tg *vandelay.Target, kinds []string, dryRun, asJSON bool) int {
	c, acct := tg.Client, tg.AccountID
	var reps []jmapKindReport
	partial := false
	fail := func(k string, err error) int {
		v.Errorf("%s over jmap: %v", k, err)
		if errors.Is(err, vandelay.ErrNoCapability) {
			return exitVandelayUsage
		}
		return exitVandelayConnect
	}
	for _, k := range kinds {
		if !c.Session().Offers(vandelay.JMAPKindCapability[k]) {
			return fail(k, fmt.Errorf("%w %s", vandelay.ErrNoCapability, vandelay.JMAPKindCapability[k]))
		}
		rep := jmapKindReport{Kind: k}
		switch k {
		case vandelay.JMAPKindSieve:
			t, err := sources.JMAPSieveTarget(tg)
			if err != nil {
				return fail(k, err)
			}
			res, err := vandelay.ExportSieve(ctx, a, t, &vandelay.SieveExportOptions{DryRun: dryRun})
			if err != nil {
				return fail(k, err)
			}
			rep.Changes, rep.Conflicts, rep.Refused, rep.Result = res.Changes(), res.Conflicts, res.Refused, res
			if !dryRun {
				vr, err := vandelay.VerifySieve(ctx, a, t)
				if err != nil {
					return fail(k, err)
				}
				for _, mm := range vr.Mismatches {
					if mm.Kind == "missing" {
						rep.Missing = append(rep.Missing, mm.Name)
					} else {
						rep.Mismatches = append(rep.Mismatches, mm.Kind+" "+mm.Name)
					}
				}
			}
		case vandelay.JMAPKindIdentity:
			res, err := vandelay.ExportIdentitiesJMAP(ctx, a, c, acct, &vandelay.DAVExportOptions{DryRun: dryRun})
			if err != nil {
				return fail(k, err)
			}
			rep.Changes, rep.Conflicts, rep.Refused, rep.Result = res.Changes(), res.Conflicts, res.Refused, res
			if !dryRun {
				vr, err := vandelay.VerifyIdentitiesJMAP(ctx, a, c, acct)
				if err != nil {
					return fail(k, err)
				}
				rep.Mismatches, rep.Missing = vr.Mismatches, vr.Missing
			}
		case vandelay.JMAPKindVacation:
			res, err := vandelay.ExportVacationJMAP(ctx, a, c, acct, &vandelay.DAVExportOptions{DryRun: dryRun})
			if err != nil {
				return fail(k, err)
			}
			if res.Set {
				rep.Changes = 1
			}
			if res.Conflict {
				rep.Conflicts = []string{"vacation response"}
			}
			rep.Result = res
		case vandelay.JMAPKindFiles:
			t, err := sources.JMAPFileTarget(tg)
			if err != nil {
				return fail(k, err)
			}
			res, err := vandelay.ExportFiles(ctx, a, t, &vandelay.DAVExportOptions{DryRun: dryRun})
			if err != nil {
				return fail(k, err)
			}
			rep.Changes, rep.Conflicts, rep.Result = res.Changes(), res.Conflicts, res
			if !dryRun {
				vr, err := vandelay.VerifyFiles(ctx, a, t)
				if err != nil {
					return fail(k, err)
				}
				for _, mm := range vr.Mismatches {
					rep.Mismatches = append(rep.Mismatches, mm.Kind+" "+mm.Path)
				}
			}
		}
		partial = partial || len(rep.Conflicts)+len(rep.Refused)+len(rep.Mismatches)+len(rep.Missing) > 0
		reps = append(reps, rep)
	}
	if asJSON {
		b, _ := json.Marshal(reps)
		v.Text(string(b) + "\n")
	} else {
		for _, r := range reps {
			line := fmt.Sprintf("%s over jmap: %d changes", r.Kind, r.Changes)
			if dryRun {
				line = "(dry run) " + line
			}
			if n := len(r.Conflicts); n > 0 {
				line += fmt.Sprintf("; %d conflicts (the target's version kept): %s", n, strings.Join(r.Conflicts, ", "))
			}
			if len(r.Mismatches) > 0 {
				line += "; verify: " + strings.Join(r.Mismatches, ", ")
			}
			v.Text(line + "\n")
			names := make([]string, 0, len(r.Refused))
			for n := range r.Refused {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				v.Text(fmt.Sprintf("  refused by the target: %s: %s\n", n, r.Refused[n]))
			}
			for _, n := range r.Missing {
				v.Text(fmt.Sprintf("  missing at the target: %s\n", n))
			}
		}
	}
	if partial {
		return exitVandelayPartial
	}
	return exitOK
}
