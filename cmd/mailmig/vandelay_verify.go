package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
	"github.com/mailmig/mailmig/vandelay/verify"
)

func runVandelayVerify(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	fs := flag.NewFlagSet("vandelay verify", flag.ContinueOnError)
	fs.SetOutput(s.Err)
	var tf targetFlags
	tf.register(fs)
	srcKind := fs.String("source-kind", "imap", "the kind of the source to compare (with --source-server): "+strings.Join(sources.Kinds(), ", "))
	srcServer := fs.String("source-server", "", "also compare the source `host:port` with the archive (a dry-run import must find nothing to do)")
	srcURL := fs.String("source-url", "", "also compare a JMAP source (--source-kind jmap) at `URL` with the archive")
	srcUser := fs.String("source-user", "", "the source account (with --source-server or --source-url)")
	srcPassEnv := fs.String("source-password-env", "", "read the source password from environment variable `VAR`")
	srcPassFile := fs.String("source-password-file", "", "read the source password from `FILE`")
	srcTLS := fs.String("source-tls", "implicit", "source transport: implicit, starttls or none (none needs --source-allow-cleartext)")
	srcClear := fs.Bool("source-allow-cleartext", false, "allow the source password over a connection without TLS")
	srcMaster := fs.String("source-master-user", "", "log in to the source as this master user on --source-user's behalf")
	sample := fs.Int("sample", 0, "download about `N` target blobs and compare the rest by size (0: download all)")
	ignore := fs.String("ignore-keywords", "$hasattachment", "comma-separated keywords left out of the comparison")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay verify --url URL (--auth-basic USER | --auth-bearer) [--sample N] [-json] ARCHIVE\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseArchiveArgs(fs, args, s); done {
		return code
	}
	log := g.logger(s)
	var srcCfg *sources.Spec
	srcEntry, ok := sources.Mail[*srcKind]
	if !ok {
		v.Errorf("unknown source kind %q (want %s).", *srcKind, strings.Join(sources.Kinds(), ", "))
		return exitVandelayUsage
	}
	if *srcServer != "" || *srcURL != "" {
		srcCfg = &sources.Spec{Server: vandelay.Server{Address: *srcServer, TLS: vandelay.TLSMode(*srcTLS), AllowCleartext: *srcClear},
			URL: *srcURL, Login: vandelay.Login{User: *srcUser, MasterUser: *srcMaster}, Logger: log}
		var err error
		if srcCfg.Password, err = readSecret("source password", *srcPassEnv, *srcPassFile, s); err != nil {
			v.Errorf("%v (use --source-password-env or --source-password-file)", err)
			return exitVandelayUsage
		}
	}
	// A source comparison is a dry-run import, which needs the write lock.
	a, err := archive.Open(ctx, fs.Arg(0), &archive.Options{Logger: log, ReadOnly: srcCfg == nil})
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	tg, code, err := tf.open(ctx, g, s)
	if err != nil {
		v.Errorf("%v", err)
		return code
	}
	var srcMismatch []verify.Mismatch
	if srcCfg != nil {
		m, code, err := compareSource(ctx, a, srcEntry, srcCfg)
		if err != nil {
			v.Errorf("source: %v", err)
			return code
		}
		srcMismatch = m
	}
	var ign []string
	for _, k := range strings.Split(*ignore, ",") {
		if k = strings.TrimSpace(k); k != "" {
			ign = append(ign, k)
		}
	}
	rep, err := verify.Target(ctx, a, tg.Client, tg.AccountID, &verify.Options{Logger: log, Sample: *sample, IgnoreKeywords: append([]string{}, ign...)})
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayConnect
	}
	rep.Mismatches = append(srcMismatch, rep.Mismatches...)
	v.VerifyReport(rep, srcCfg != nil, *jsonOut)
	if !rep.OK() {
		v.Errorf("%d mismatch(es), listed above.", len(rep.Mismatches))
		return exitVandelayMismatch
	}
	return exitOK
}

// compareSource compares the source with the archive (verify.Source);
// the int is the exit code on failure.
func compareSource(ctx context.Context, a *archive.Archive, k sources.Kind, spec *sources.Spec) ([]verify.Mismatch, int, error) {
	src, err := k.New(spec)
	if err != nil {
		return nil, exitVandelayUsage, err
	}
	defer src.Close()
	rep, err := verify.Source(ctx, src, a)
	switch {
	case rep == nil:
		return nil, exitVandelayArchive, err
	case err != nil:
		return nil, exitVandelayConnect, err
	}
	return rep.Mismatches, 0, nil
}
