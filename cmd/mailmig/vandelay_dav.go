package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// importDAV runs "mailmig vandelay import carddav" (and caldav): the library's
// ImportDAV, its result through the view, errors mapped to the import's
// exit codes (a collection that failed while the others synced is a
// partial run).
func importDAV(ctx context.Context, v *views.View, dk sources.DataKind, cfg *sources.Spec, archivePath string, opts *vandelay.ImportOptions, asJSON bool) int {
	return runDataImport(ctx, v, cfg, archivePath, dk.NewDAV, func(src vandelay.DAVSource, a *archive.Archive) int {
		res, err := vandelay.ImportDAV(ctx, src, a, opts)
		if res != nil {
			v.DAVImportResult(src.Kind(), res, asJSON)
		}
		switch {
		case err != nil:
			return dataImportFailed(v, err)
		case len(res.Failed) > 0:
			return exitVandelayPartial
		}
		return exitOK
	})
}

// importAccountData runs the import of a data kind read account-wide
// ("mailmig vandelay import jmap-calendars"): the kind's Import, its
// result through the DAV view.
func importAccountData(ctx context.Context, v *views.View, kind string, dk sources.DataKind, cfg *sources.Spec, archivePath string, opts *vandelay.ImportOptions, asJSON bool) int {
	a, err := archive.Open(ctx, archivePath, &archive.Options{Logger: cfg.Logger})
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	res, err := dk.Import(ctx, cfg, a, opts)
	if res != nil {
		v.DAVImportResult(kind, res, asJSON)
	}
	if err != nil {
		return dataImportFailed(v, err)
	}
	return exitOK
}

// runVandelayExportCardDAV is "mailmig vandelay export-carddav".
func runVandelayExportCardDAV(ctx context.Context, g *globals, args []string, s Streams) int {
	return runVandelayExportDAV(ctx, g, args, s, "carddav")
}

// runVandelayExportCalDAV is "mailmig vandelay export-caldav".
func runVandelayExportCalDAV(ctx context.Context, g *globals, args []string, s Streams) int {
	return runVandelayExportDAV(ctx, g, args, s, "caldav")
}

// runVandelayExportDAV is "mailmig vandelay export-carddav" and
// "export-caldav": flags to the target's options, vandelay.ExportDAV, the
// result to the view.
func runVandelayExportDAV(ctx context.Context, g *globals, args []string, s Streams, kind string) int {
	v := views.New(s.Out, s.Err, false)
	o := &sources.Spec{}
	what, proto, rfc, items, coll := "address books", "CardDAV", "RFC 6352", "vCards", archive.CollectionAddressBook
	if kind == "caldav" {
		what, proto, rfc, items, coll = "calendars", "CalDAV", "RFC 4791", "events and tasks", archive.CollectionCalendar
	}
	fs := flag.NewFlagSet("vandelay export-"+kind, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export-%s [flags] ARCHIVE\n\n"+
			"Exports the archive's %s onto a target's %s server (%s),\n"+
			"convergent: collections are created with their name, colour and description,\n"+
			"%s are put with their original bytes (If-None-Match: * to create, If-Match\n"+
			"to update), an item changed at the target is a conflict and kept, and only\n"+
			"items this export created are deleted.\n\n", kind, what, proto, rfc, items)
		fs.PrintDefaults()
	}
	login := addDAVLogin(fs, o, proto, "the account whose "+what+" are written")
	dryRun := fs.Bool("dry-run", false, "report what would change; write nothing")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if code, done := parseArchiveArgs(fs, args, s); done {
		return code
	}
	o.Logger = g.logger(s)
	if !login.finish(o, v, s) {
		return exitVandelayUsage
	}
	a, err := openExportArchive(ctx, fs.Arg(0), o.Logger)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	tg, err := sources.DAVTargets[kind](ctx, o)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	defer tg.Close()
	res, err := vandelay.ExportDAV(ctx, a, coll, tg, &vandelay.DAVExportOptions{DryRun: *dryRun})
	if res != nil {
		v.DAVExportResult(res, *jsonOut)
	}
	switch {
	case err != nil:
		v.Errorf("%v", err)
		return exitVandelayPartial
	case len(res.Refused) > 0 || len(res.Conflicts) > 0:
		return exitVandelayPartial
	}
	return exitOK
}
