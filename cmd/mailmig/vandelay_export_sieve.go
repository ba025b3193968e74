package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// runVandelayExportSieve is "mailmig vandelay export-sieve": flags to
// managesieve.Options, vandelay.ExportSieve, the result to the view.
func runVandelayExportSieve(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	o := &sources.Spec{}
	fs := flag.NewFlagSet("vandelay export-sieve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export-sieve [flags] ARCHIVE\n\n"+
			"Exports the archive's Sieve scripts onto a target's ManageSieve server (RFC 5804),\n"+
			"convergent: new and changed scripts are put with their original bytes, the\n"+
			"active one is activated, and only scripts this export created are deleted.\n\n")
		fs.PrintDefaults()
	}
	login := addTargetLogin(fs, o, "ManageSieve", "the account whose scripts are written")
	fs.StringVar(&o.Auth, "auth", "", "mechanism: plain, login, xoauth2 or oauthbearer (default: plain when offered, else login)")
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
	tg, err := sources.SieveTargets["managesieve"](ctx, o)
	if err != nil {
		v.Errorf("%v", err)
		if errors.Is(err, vandelay.ErrUsage) {
			return exitVandelayUsage
		}
		return exitVandelayConnect
	}
	defer tg.Close()
	res, err := vandelay.ExportSieve(ctx, a, tg, &vandelay.SieveExportOptions{DryRun: *dryRun})
	if res != nil {
		v.SieveExportResult(res, *jsonOut)
	}
	switch {
	case err != nil:
		v.Errorf("%v", err)
		return exitVandelayPartial
	case len(res.Refused) > 0 || len(res.Conflicts) > 0:
		// The others were exported; the refused ones need the user.
		return exitVandelayPartial
	}
	return exitOK
}
