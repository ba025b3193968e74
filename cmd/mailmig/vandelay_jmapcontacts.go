package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// runVandelayExportJMAPContacts is "mailmig vandelay export-jmap-contacts":
// the archive's address books onto a JMAP target offering
// urn:ietf:params:jmap:contacts, each vCard converted to JSContact
// (vandelay.ExportContactsJMAP; with --verify, VerifyContactsJMAP).
func runVandelayExportJMAPContacts(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	o := &sources.Spec{}
	fs := flag.NewFlagSet("vandelay export-jmap-contacts", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export-jmap-contacts [flags] ARCHIVE\n\n"+
			"Exports the archive's address books onto a JMAP server offering\n"+
			"urn:ietf:params:jmap:contacts (RFC 9610), each vCard converted to a\n"+
			"JSContact card (RFC 9555; docs/export.md lists what is kept), convergent:\n"+
			"one AddressBook per source address book, a card the user changed at the\n"+
			"target is a conflict and kept, and only cards this export created are\n"+
			"destroyed.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.URL, "url", "", "the JMAP server's base URL, /.well-known/jmap or session URL")
	fs.StringVar(&o.User, "user", "", "user name (HTTP Basic)")
	fs.StringVar(&o.Auth, "auth", "", "basic (default) or bearer")
	fs.StringVar(&o.AccountID, "account-id", "", "the JMAP account id (default: the session's primary account)")
	passEnv := fs.String("password-env", "", "read the password from environment variable `VAR`")
	passFile := fs.String("password-file", "", "read the password from `FILE`")
	tokenEnv := fs.String("token-env", "", "read the bearer token from environment variable `VAR`")
	tokenFile := fs.String("token-file", "", "read the bearer token from `FILE`")
	dryRun := fs.Bool("dry-run", false, "report what would change; write nothing")
	verify := fs.Bool("verify", false, "compare the archive with the target after the export")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if code, done := parseArchiveArgs(fs, args, s); done {
		return code
	}
	o.Logger = g.logger(s)
	if o.URL == "" {
		v.Errorf("--url is required.")
		return exitVandelayUsage
	}
	if err := readLoginSecret(o, *passEnv, *passFile, *tokenEnv, *tokenFile, s); err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	topts := &vandelay.TargetOptions{URL: o.URL, Auth: vandelay.BasicAuth{User: o.User, Password: o.Password}, AccountID: o.AccountID, Logger: o.Logger}
	if o.Token != "" {
		topts.Auth = vandelay.BearerAuth{Token: o.Token}
	}
	a, err := openExportArchive(ctx, fs.Arg(0), o.Logger)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	t, err := vandelay.OpenTarget(ctx, topts)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayConnect
	}
	res, err := vandelay.ExportContactsJMAP(ctx, a, t.Client, t.AccountID, &vandelay.DAVExportOptions{DryRun: *dryRun})
	if res != nil {
		v.DAVExportResult(res, *jsonOut)
	}
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayPartial
	}
	if *verify && !*dryRun {
		rep, err := vandelay.VerifyContactsJMAP(ctx, a, t.Client, t.AccountID)
		if err != nil {
			v.Errorf("verify: %v", err)
			return exitVandelayPartial
		}
		matched, items := 0, 0
		for _, c := range rep.Collections {
			matched, items = matched+c.Matched, items+c.Items
		}
		fmt.Fprintf(s.Out, "verify: %d of %d cards equal, %d mismatches, %d conflicts\n", matched, items, len(rep.Mismatches), len(rep.Conflicts))
		for _, m := range rep.Mismatches {
			fmt.Fprintf(s.Out, "mismatch: %s %s\n", m.Kind, m.Href)
		}
		if len(rep.Mismatches) > 0 {
			return exitVandelayPartial
		}
	}
	if len(res.Refused) > 0 || len(res.Conflicts) > 0 {
		return exitVandelayPartial
	}
	return exitOK
}
