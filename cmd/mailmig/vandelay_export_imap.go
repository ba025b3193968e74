package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// runVandelayExportIMAP is "mailmig vandelay export-imap": the archive's
// mail onto an IMAP server (targets/imap.Export), an IMAP → IMAP migration
// through the archive for a target that has no JMAP.
func runVandelayExportIMAP(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	o := &sources.Spec{}
	fs := flag.NewFlagSet("vandelay export-imap", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export-imap [flags] ARCHIVE\n\n"+
			"Exports the archive's mail onto an IMAP server (a target without JMAP; what\n"+
			"imapsync does, through the archive), convergent: mailboxes are created, each\n"+
			"copy is appended with its flags and internal date unless the server holds the\n"+
			"same bytes already, a re-run appends nothing, and keyword changes are set on\n"+
			"the copies this export made. Nothing is deleted on the server.\n\n")
		fs.PrintDefaults()
	}
	login := addTargetLogin(fs, o, "IMAP", "the account whose mail is written")
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
	res, err := sources.ExportIMAP(ctx, a, o)
	if res == nil && err != nil {
		v.Errorf("%v", err)
		if errors.Is(err, vandelay.ErrUsage) {
			return exitVandelayUsage
		}
		return exitVandelayConnect
	}
	if res != nil {
		if *jsonOut {
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Fprintf(s.Out, "%s\n", b)
		} else {
			fmt.Fprintf(s.Out, "Exported onto %s: %d appended, %d found there already, %d unchanged, %d re-flagged; %d mailboxes created; %d bytes.\n",
				o.Address, res.Appended, res.Matched, res.Unchanged, res.Reflagged, res.MailboxesCreated, res.Bytes)
		}
	}
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayPartial
	}
	return exitOK
}
