package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
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
	fs.StringVar(&o.Address, "server", "", "target IMAP server `host:port`")
	tlsMode := fs.String("tls", "implicit", "transport: implicit, starttls or none (none needs --allow-cleartext)")
	fs.BoolVar(&o.AllowCleartext, "allow-cleartext", false, "allow credentials over a connection without TLS")
	fs.BoolVar(&o.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the server certificate (test servers only)")
	fs.StringVar(&o.ServerName, "tls-server-name", "", "TLS server name (default: the host of --server)")
	fs.StringVar(&o.User, "user", "", "the account whose mail is written")
	passEnv := fs.String("password-env", "", "read the password from environment variable `VAR`")
	passFile := fs.String("password-file", "", "read the password from `FILE`")
	fs.StringVar(&o.MasterUser, "master-user", "", "log in as this master/admin user on --user's behalf (the password is the master's)")
	fs.StringVar(&o.MasterForm, "master-form", "authzid", "master login form: authzid (SASL PLAIN, Cyrus) or star (user*master, Dovecot)")
	tokenEnv := fs.String("token-env", "", "read the OAuth access token from environment variable `VAR`")
	tokenFile := fs.String("token-file", "", "read the OAuth access token from `FILE`")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if code, done := parseArchiveArgs(fs, args, s); done {
		return code
	}
	o.TLS = vandelay.TLSMode(*tlsMode)
	o.Logger = g.logger(s)
	if o.Address == "" || o.User == "" {
		v.Errorf("--server and --user are required.")
		return exitVandelayUsage
	}
	if err := readLoginSecret(o, *passEnv, *passFile, *tokenEnv, *tokenFile, s); err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	a, err := archive.Open(ctx, fs.Arg(0), &archive.Options{Logger: o.Logger})
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
