package views

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// The views of the "mailmig vandelay" commands. Errors are one line,
// "Error: …", on Err, like the rest of the vandelay commands' output;
// results go to Out.

// Errorf prints "Error: " and the formatted message on Err.
func (v *View) Errorf(format string, args ...any) {
	fmt.Fprintf(v.Err, "Error: "+format+"\n", args...)
}

// Note prints a line of guidance on Err (e.g. how to resume).
func (v *View) Note(line string) {
	io.WriteString(v.Err, line+"\n")
}

// Text prints text as is on Out (usage and help).
func (v *View) Text(text string) {
	io.WriteString(v.Out, text)
}

func writeJSON(w io.Writer, x any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(x)
}

// ImportResult prints an import's counts and speed, or its JSON form.
func (v *View) ImportResult(r *archive.Result, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, struct {
			archive.Counts
			Complete bool
			DryRun   bool
			Seconds  float64
		}{r.Counts, r.Complete, r.DryRun, r.Duration.Seconds()})
		return
	}
	prefix := dryRunPrefix(r.DryRun)
	fmt.Fprintf(v.Out, "%smessages: %d added, %d deleted, %d moved, %d reflagged; mailboxes: %d created, %d renamed, %d deleted; %d skipped\n",
		prefix, r.MessagesAdded, r.MessagesDeleted, r.MessagesMoved, r.MessagesReflagged,
		r.MailboxesCreated, r.MailboxesRenamed, r.MailboxesDeleted, r.Skipped)
	secs := r.Duration.Seconds()
	rate := ""
	if secs > 0 && r.Fetched > 0 {
		rate = fmt.Sprintf(", %.0f msg/s, %.1f MB/s", float64(r.Fetched)/secs, float64(r.FetchedBytes)/1e6/secs)
	}
	fmt.Fprintf(v.Out, "fetched %d bodies (%.1f MB), stored %d new blobs, in %.1fs%s\n",
		r.Fetched, float64(r.FetchedBytes)/1e6, r.BlobsStored, secs, rate)
}

// SieveImportResult prints a Sieve import's counts, or its JSON form.
func (v *View) SieveImportResult(r *archive.SieveResult, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, r)
		return
	}
	prefix := dryRunPrefix(r.DryRun)
	fmt.Fprintf(v.Out, "%ssieve scripts: %d added, %d changed, %d deleted, %d unchanged; active script changed: %s\n",
		prefix, r.Added, r.Changed, r.Deleted, r.Unchanged, map[bool]string{true: "yes", false: "no"}[r.Activated > 0])
	if r.VacationChanged {
		fmt.Fprintf(v.Out, "%svacation response changed (read from the active script)\n", prefix)
	}
}

// Vacation shows the archived vacation response; nothing when there is
// none.
func (v *View) Vacation(vr *archive.Vacation) {
	if vr == nil {
		return
	}
	state := "disabled"
	if vr.Enabled {
		state = "enabled"
	}
	fmt.Fprintf(v.Out, "vacation response: %s (%s)", state, vr.SourceRef)
	if !vr.From.IsZero() || !vr.To.IsZero() {
		fmt.Fprintf(v.Out, ", %s – %s", dateOrOpen(vr.From), dateOrOpen(vr.To))
	}
	if vr.Days > 0 {
		fmt.Fprintf(v.Out, ", every %d days", vr.Days)
	}
	fmt.Fprintf(v.Out, "\n  subject: %q\n", vr.Subject)
}

func dateOrOpen(t time.Time) string {
	if t.IsZero() {
		return "open"
	}
	return t.Format("2006-01-02 15:04Z")
}

// SieveScripts lists the archive's Sieve scripts (name, size, the active
// one marked); nothing when there are none.
func (v *View) SieveScripts(ss []archive.SieveScript) {
	if len(ss) == 0 {
		return
	}
	fmt.Fprintf(v.Out, "sieve scripts: %d\n", len(ss))
	for _, s := range ss {
		active := ""
		if s.Active {
			active = "  (active)"
		}
		fmt.Fprintf(v.Out, "  %8d  %s%s\n", s.Size, s.Name, active)
	}
}

// SieveExportResult prints a Sieve export's counts, each script the
// target refused with the target's own text, and the conflicts; or the
// JSON form.
func (v *View) SieveExportResult(r *vandelay.SieveExportResult, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, r)
		return
	}
	prefix := dryRunPrefix(r.DryRun)
	fmt.Fprintf(v.Out, "%ssieve scripts: %d put, %d updated, %d deleted, %d unchanged; activations: %d\n",
		prefix, r.Put, r.Updated, r.Deleted, r.Unchanged, r.Activated)
	for _, n := range slices.Sorted(maps.Keys(r.Refused)) {
		fmt.Fprintf(v.Out, "refused by the target: %q: %s\n", n, strings.ReplaceAll(strings.TrimSpace(r.Refused[n]), "\r\n", "\n  "))
	}
	for _, n := range r.Conflicts {
		fmt.Fprintf(v.Out, "conflict: %q exists at the target with other content; the target's version was kept\n", n)
	}
}

// ExportResult prints an export's counts (after the dry run's list of
// changes), or its JSON form.
func (v *View) ExportResult(r *vandelay.ExportResult, dry, asJSON bool) {
	if asJSON {
		changes := make([]string, len(r.Changes))
		for i, c := range r.Changes {
			changes[i] = c.String()
		}
		writeJSON(v.Out, struct {
			*vandelay.ExportResult
			Changes []string
			DryRun  bool
			Partial bool
			Seconds float64
		}{r, changes, dry, r.Partial(), r.Duration.Seconds()})
		return
	}
	w := v.Out
	if dry {
		for _, c := range r.Changes {
			fmt.Fprintln(w, c)
		}
		fmt.Fprintf(w, "dry run, nothing changed: would have ")
	}
	fmt.Fprintf(w, "emails: %d imported, %d matched, %d updated, %d destroyed, %d unchanged; mailboxes: %d created, %d updated, %d matched, %d destroyed\n",
		r.EmailsImported, r.EmailsMatched, r.EmailsUpdated, r.EmailsDestroyed, r.EmailsUnchanged,
		r.MailboxesCreated, r.MailboxesUpdated, r.MailboxesMatched, r.MailboxesDestroyed)
	secs := r.Duration.Seconds()
	rate := ""
	if secs > 0 && r.Uploads > 0 {
		rate = fmt.Sprintf(", %.0f msg/s, %.1f MB/s", float64(r.Uploads)/secs, float64(r.UploadBytes)/1e6/secs)
	}
	fmt.Fprintf(w, "uploaded %d blobs (%.1f MB) in %.1fs%s\n", r.Uploads, float64(r.UploadBytes)/1e6, secs, rate)
	for _, sk := range r.Skipped {
		fmt.Fprintf(w, "skipped %s %s: %s\n", strings.ToLower(sk.Kind), sk.Name, sk.Reason)
	}
}

// VerifyReport prints verify's per-mailbox table, totals and mismatches,
// or its JSON form; withSource says that the source was compared too.
func (v *View) VerifyReport(rep *verify.Report, withSource, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, struct {
			*verify.Report
			OK bool `json:"ok"`
		}{rep, rep.OK()})
		return
	}
	tw := tabwriter.NewWriter(v.Out, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "MAILBOX\tROLE\tARCHIVE\tTARGET\t\n")
	for _, r := range rep.Mailboxes {
		mark := ""
		if !r.OK {
			mark = "MISMATCH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Path, r.Role, r.Archive, r.Target, mark)
	}
	tw.Flush()
	fmt.Fprintf(v.Out, "\n%d archive emails, %d target emails, %d hashed, %d hash-equal, %.1f MB downloaded\n",
		rep.ArchiveEmails, rep.TargetEmails, rep.Hashed, rep.HashEqual, float64(rep.DownloadedSize)/1e6)
	for _, m := range rep.Mismatches {
		fmt.Fprintf(v.Out, "MISMATCH %s\n", m)
	}
	switch {
	case rep.OK() && withSource:
		fmt.Fprintf(v.Out, "OK: source, archive and target agree\n")
	case rep.OK():
		fmt.Fprintf(v.Out, "OK: archive and target agree\n")
	}
}

// ArchiveSummary prints an archive's source and totals (inspect summary).
func (v *View) ArchiveSummary(src *archive.Source, st archive.Stats) {
	if src != nil {
		last := "never"
		if !src.LastComplete.IsZero() {
			last = src.LastComplete.Format(time.RFC3339)
		}
		fmt.Fprintf(v.Out, "source:     %s %s account %s (login %s), last complete run %s\n", src.Kind, src.Endpoint, src.Account, src.Login, last)
	}
	pack := ""
	if st.PackBytes > 0 {
		// The pack beside the database (archive.PackSuffix); more than the
		// blobs' total when it holds unreferenced bytes (no compaction yet).
		pack = fmt.Sprintf("; pack file %.1f MB", float64(st.PackBytes)/1e6)
	}
	fmt.Fprintf(v.Out, "messages:   %d (%.1f MB), %d tombstones\nblobs:      %d (%.1f MB%s)\nmailboxes:  %d\nmodseq:     %d\n\n",
		st.Messages, float64(st.Bytes)/1e6, st.Tombstones, st.Blobs, float64(st.BlobBytes)/1e6, pack, st.Mailboxes, st.ModSeq)
}

// MailboxTree prints an archive's mailboxes depth-first with their counts.
func (v *View) MailboxTree(mbs []*archive.Mailbox, counts map[int64]archive.MailboxCount) {
	children := map[int64][]*archive.Mailbox{}
	for _, m := range mbs {
		children[m.ParentID] = append(children[m.ParentID], m)
	}
	fmt.Fprintf(v.Out, "%8s  %10s  %s\n", "MESSAGES", "SIZE", "MAILBOX")
	var walk func(parent int64, depth int)
	walk = func(parent int64, depth int) {
		for _, m := range children[parent] {
			c := counts[m.ID]
			var notes []string
			if m.Role != "" {
				notes = append(notes, m.Role)
			}
			if m.Subscribed {
				notes = append(notes, "subscribed")
			}
			if !m.Selectable {
				notes = append(notes, "noselect")
			}
			if !m.Deleted.IsZero() {
				notes = append(notes, "deleted "+m.Deleted.Format(time.RFC3339))
			}
			n := ""
			if len(notes) > 0 {
				n = "  (" + strings.Join(notes, ", ") + ")"
			}
			fmt.Fprintf(v.Out, "%8d  %10s  %s%s%s\n", c.Messages, humanBytes(c.Bytes), strings.Repeat("  ", depth), m.Name, n)
			walk(m.ID, depth+1)
		}
	}
	walk(0, 0)
}

// humanBytes formats a size in binary units.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// MessageTable prints archive messages as a table; names maps mailbox
// ids to paths. Flush must be called after the last Row.
type MessageTable struct {
	tw    *tabwriter.Writer
	names map[int64]string
}

// MessageTable starts the table of inspect messages.
func (v *View) MessageTable(names map[int64]string) *MessageTable {
	t := &MessageTable{tw: tabwriter.NewWriter(v.Out, 0, 4, 2, ' ', 0), names: names}
	fmt.Fprintf(t.tw, "ID\tSIZE\tRECEIVED\tKEYWORDS\tMAILBOXES\tSHA-256\n")
	return t
}

// Row adds one message.
func (t *MessageTable) Row(m *archive.Message) {
	var mb []string
	for _, id := range m.MailboxIDs {
		mb = append(mb, t.names[id])
	}
	id := strconv.FormatInt(m.ID, 10)
	if !m.Deleted.IsZero() {
		id += " (deleted)"
	}
	fmt.Fprintf(t.tw, "%s\t%d\t%s\t%s\t%s\t%s\n", id, m.Size, m.ReceivedAt.Format(time.RFC3339), strings.Join(m.Keywords, " "),
		strings.Join(mb, ", "), m.Blob[:16])
}

// Flush writes the table.
func (t *MessageTable) Flush() error { return t.tw.Flush() }

// Runs prints an archive's import runs.
func (v *View) Runs(runs []archive.RunInfo) error {
	tw := tabwriter.NewWriter(v.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RUN\tSTARTED\tSECONDS\tSTATUS\tCOUNTS\n")
	for _, r := range runs {
		secs := "-"
		if !r.Finished.IsZero() {
			secs = strconv.FormatInt(int64(r.Finished.Sub(r.Started).Seconds()), 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, r.Started.Format(time.RFC3339), secs, r.Status, r.Counts)
	}
	return tw.Flush()
}

// DAVImportResult prints a CardDAV/CalDAV import's counts, the
// collections that failed and the items kept unparsed; or the JSON form.
func (v *View) DAVImportResult(kind string, r *vandelay.DAVImportResult, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, r)
		return
	}
	prefix := dryRunPrefix(r.DryRun)
	fmt.Fprintf(v.Out, "%s%s collections: %d synced, %d retired; items: %d added, %d changed, %d deleted, %d unchanged\n",
		prefix, kind, r.Collections, r.Retired, r.Added, r.Changed, r.Deleted, r.Unchanged)
	for _, h := range slices.Sorted(maps.Keys(r.Failed)) {
		fmt.Fprintf(v.Out, "failed: %s: %s (the other collections were synced)\n", h, r.Failed[h])
	}
	for _, h := range r.Unparsable {
		fmt.Fprintf(v.Out, "kept as bytes, does not parse: %s\n", h)
	}
}

// DAVExportResult prints a CardDAV/CalDAV export's counts, the items the
// target refused with its own text and the conflicts; or the JSON form.
func (v *View) DAVExportResult(r *vandelay.DAVExportResult, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, r)
		return
	}
	prefix := dryRunPrefix(r.DryRun)
	fmt.Fprintf(v.Out, "%scollections created: %d; items: %d put, %d updated, %d deleted, %d unchanged\n",
		prefix, r.Collections, r.Put, r.Updated, r.Deleted, r.Unchanged)
	for _, h := range slices.Sorted(maps.Keys(r.Refused)) {
		fmt.Fprintf(v.Out, "refused by the target: %s: %s\n", h, strings.Join(strings.Fields(r.Refused[h]), " "))
	}
	for _, h := range r.Conflicts {
		fmt.Fprintf(v.Out, "conflict: %s changed at the target; the target's version was kept\n", h)
	}
}

// dryRunPrefix starts a result line that a dry run only predicts.
func dryRunPrefix(dryRun bool) string {
	if dryRun {
		return "dry run, nothing written: would have "
	}
	return ""
}

// FilesImportResult prints a files import's counts, or its JSON form.
func (v *View) FilesImportResult(r *vandelay.FilesImportResult, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, r)
		return
	}
	fmt.Fprintf(v.Out, "%sfiles: %d added, %d changed, %d deleted, %d unchanged; %d bytes fetched\n",
		dryRunPrefix(r.DryRun), r.Added, r.Changed, r.Deleted, r.Unchanged, r.Bytes)
}

// FilesExportResult prints a files export's counts and conflicts, or its
// JSON form.
func (v *View) FilesExportResult(r *vandelay.FilesExportResult, asJSON bool) {
	if asJSON {
		writeJSON(v.Out, r)
		return
	}
	fmt.Fprintf(v.Out, "%sfolders created: %d; files: %d put, %d updated, %d deleted, %d unchanged\n",
		dryRunPrefix(r.DryRun), r.Folders, r.Put, r.Updated, r.Deleted, r.Unchanged)
	for _, p := range r.Conflicts {
		fmt.Fprintf(v.Out, "conflict: %q was changed at the target (or existed there with other content); the target's version was kept\n", p)
	}
}
