package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay/archive"
)

func runVandelayInspect(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	fs := flag.NewFlagSet("vandelay inspect", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay inspect [flags] ARCHIVE [summary|mailboxes|messages|runs]\n\n")
		fs.PrintDefaults()
	}
	mailboxPath := fs.String("mailbox", "", "with messages: only this mailbox `PATH`")
	limit := fs.Int("limit", 50, "with messages: page size")
	offset := fs.Int("offset", 0, "with messages: skip this many")
	deleted := fs.Bool("deleted", false, "with messages or mailboxes: include tombstones")
	// Flags may come before or after the positional arguments.
	var rest []string
	for {
		if code, done := parseVandelayFlags(fs, args, s); done {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) < 1 || len(rest) > 2 {
		v.Note("Usage: mailmig vandelay inspect [flags] ARCHIVE [summary|mailboxes|messages|runs]")
		return exitVandelayUsage
	}
	kind := "summary"
	if len(rest) == 2 {
		kind = rest[1]
	}
	a, err := archive.Open(ctx, rest[0], &archive.Options{ReadOnly: true})
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	switch kind {
	case "summary", "mailboxes":
		err = inspectMailboxes(ctx, a, v, kind == "summary", *deleted)
	case "messages":
		err = inspectMessages(ctx, a, v, *mailboxPath, *limit, *offset, *deleted)
	case "runs":
		err = inspectRuns(ctx, a, v)
	default:
		v.Errorf("unknown kind %q (want summary, mailboxes, messages or runs).", kind)
		return exitVandelayUsage
	}
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	return exitOK
}

func inspectMailboxes(ctx context.Context, a *archive.Archive, v *views.View, summary, deleted bool) error {
	if summary {
		st, err := a.Stats(ctx)
		if err != nil {
			return err
		}
		src, err := a.Source(ctx)
		if err != nil {
			return err
		}
		v.ArchiveSummary(src, st)
	}
	mbs, err := a.Mailboxes(ctx, &archive.MailboxFilter{IncludeDeleted: deleted})
	if err != nil {
		return err
	}
	counts, err := a.MailboxCounts(ctx)
	if err != nil {
		return err
	}
	v.MailboxTree(mbs, counts)
	if summary {
		ss, err := a.SieveScripts(ctx, false)
		if err != nil {
			return err
		}
		v.SieveScripts(ss)
		vr, err := a.Vacation(ctx)
		if err != nil {
			return err
		}
		v.Vacation(vr)
	}
	return nil
}

func inspectMessages(ctx context.Context, a *archive.Archive, v *views.View, mailboxPath string, limit, offset int, deleted bool) error {
	mbs, err := a.Mailboxes(ctx, &archive.MailboxFilter{IncludeDeleted: true})
	if err != nil {
		return err
	}
	names := map[int64]string{}
	f := &archive.MessageFilter{IncludeDeleted: deleted}
	for _, m := range mbs {
		names[m.ID] = m.Path
		if mailboxPath != "" && m.Path == mailboxPath && m.Deleted.IsZero() {
			f.MailboxID = m.ID
		}
	}
	if mailboxPath != "" && f.MailboxID == 0 {
		return fmt.Errorf("no mailbox %q in the archive", mailboxPath)
	}
	t := v.MessageTable(names)
	i := 0
	for m, err := range a.Messages(ctx, f) {
		if err != nil {
			return err
		}
		i++
		if i <= offset {
			continue
		}
		if i > offset+limit {
			break
		}
		t.Row(m)
	}
	return t.Flush()
}

func inspectRuns(ctx context.Context, a *archive.Archive, v *views.View) error {
	runs, err := a.Runs(ctx)
	if err != nil {
		return err
	}
	return v.Runs(runs)
}
