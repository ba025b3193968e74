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

// importFiles runs "mailmig vandelay import webdav": the library's
// ImportFiles, its result through the view, errors mapped to the
// import's exit codes.
func importFiles(ctx context.Context, v *views.View, dk sources.DataKind, cfg *sources.Spec, archivePath string, opts *vandelay.ImportOptions, asJSON bool) int {
	return runDataImport(ctx, v, cfg, archivePath, dk.NewFiles, func(src vandelay.FileSource, a *archive.Archive) int {
		res, err := vandelay.ImportFiles(ctx, src, a, opts)
		if err != nil {
			if res != nil && res.Changes() > 0 {
				v.FilesImportResult(res, asJSON)
				v.Errorf("%v\nThe archive is consistent; run the same command again to resume.", err)
				return exitVandelayPartial
			}
			return dataImportFailed(v, err)
		}
		v.FilesImportResult(res, asJSON)
		return exitOK
	})
}

// runVandelayExportWebDAV is "mailmig vandelay export-webdav": flags to
// the target's options, vandelay.ExportFiles (and VerifyFiles with
// --verify), the result to the view.
func runVandelayExportWebDAV(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	o := &sources.Spec{}
	fs := flag.NewFlagSet("vandelay export-webdav", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export-webdav [flags] ARCHIVE\n\n"+
			"Exports the archive's file trees onto a WebDAV folder (RFC 4918),\n"+
			"convergent: folders are created (MKCOL), files streamed with If-None-Match: *\n"+
			"to create and If-Match to update, a file changed at the target is a conflict\n"+
			"and kept, and only what this export created is deleted.\n\n")
		fs.PrintDefaults()
	}
	login := addDAVLogin(fs, o, "WebDAV", "the account whose files are written")
	fs.StringVar(&o.Path, "path", "/", "the target folder's path on the server (\"{user}\" is replaced by --user)")
	dryRun := fs.Bool("dry-run", false, "report what would change; write nothing")
	verify := fs.Bool("verify", false, "afterwards compare every file by size and SHA-256")
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
	tg, err := sources.FileTargets["webdav"](ctx, o)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	defer tg.Close()
	res, err := vandelay.ExportFiles(ctx, a, tg, &vandelay.DAVExportOptions{DryRun: *dryRun})
	if res != nil {
		v.FilesExportResult(res, *jsonOut)
	}
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayPartial
	}
	if *verify && !*dryRun {
		rep, err := vandelay.VerifyFiles(ctx, a, tg)
		if err != nil {
			v.Errorf("verify: %v", err)
			return exitVandelayPartial
		}
		fmt.Fprintf(s.Out, "verify: %d equal, %d mismatches\n", rep.Matched, len(rep.Mismatches))
		for _, m := range rep.Mismatches {
			fmt.Fprintf(s.Out, "mismatch: %s %q\n", m.Kind, m.Path)
		}
		if len(rep.Mismatches) > 0 {
			return exitVandelayPartial
		}
	}
	if len(res.Conflicts) > 0 {
		return exitVandelayPartial
	}
	return exitOK
}
