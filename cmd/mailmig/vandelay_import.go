package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

func runVandelayImport(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage := fmt.Sprintf("Usage: mailmig vandelay import %s [flags] ARCHIVE\n", strings.Join(sources.AllKinds(), "|"))
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			v.Text(usage)
			return exitOK
		}
		v.Note(strings.TrimSuffix(usage, "\n"))
		return exitVandelayUsage
	}
	kind := args[0]
	k, ok := sources.Mail[kind]
	dk, isData := sources.Data[kind]
	if isData {
		// A data kind reads a subset of the same flags.
		k, ok = sources.Kind{Summary: dk.Summary, Settings: dk.Settings}, true
	}
	if !ok {
		v.Errorf("unknown source kind %q (want %s).", kind, strings.Join(sources.AllKinds(), ", "))
		return exitVandelayUsage
	}
	cfg := &sources.Spec{}
	fs := flag.NewFlagSet("vandelay import "+kind, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay import %s [flags] ARCHIVE\n\nImports %s.\n\n", kind, k.Summary)
		printKindDefaults(fs, k)
	}
	fs.StringVar(&cfg.Address, "server", "", "source server `host:port` (imap, pop3, managesieve, carddav, caldav)")
	tlsMode := fs.String("tls", "implicit", "transport: implicit, starttls or none (none needs --allow-cleartext)")
	fs.BoolVar(&cfg.AllowCleartext, "allow-cleartext", false, "allow credentials over a connection without TLS")
	fs.BoolVar(&cfg.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the server certificate (test servers only)")
	fs.StringVar(&cfg.ServerName, "tls-server-name", "", "TLS server name (default: the host of --server)")
	fs.StringVar(&cfg.URL, "url", "", "HTTP endpoint: a JMAP server's base URL, /.well-known/jmap or session URL (jmap); the EWS URL https://host/EWS/Exchange.asmx (exchange-ews); the Graph URL, default https://graph.microsoft.com/v1.0 (exchange-graph)")
	fs.StringVar(&cfg.AccountID, "account-id", "", "JMAP account id (default: the primary mail account, or --user's with --master-user)")
	fs.StringVar(&cfg.AccountName, "account-name", "", "JMAP account by name, e.g. an account an admin credential may act for")
	fs.StringVar(&cfg.User, "user", "", "the account to import")
	passEnv := fs.String("password-env", "", "read the password from environment variable `VAR`")
	passFile := fs.String("password-file", "", "read the password from `FILE`")
	fs.StringVar(&cfg.MasterUser, "master-user", "", "log in as this master user on --user's behalf (the password is the master's)")
	fs.StringVar(&cfg.MasterForm, "master-form", "star", "master login form: star (user*master) or authzid (SASL PLAIN)")
	fs.StringVar(&cfg.Auth, "auth", "", "mechanism: plain, login, xoauth2 or oauthbearer (default: plain when offered, else login); jmap: basic (default) or bearer; exchange-ews: basic or ntlm (default: what the server offers, NTLM first)")
	tokenEnv := fs.String("token-env", "", "read the OAuth access token from environment variable `VAR`")
	tokenFile := fs.String("token-file", "", "read the OAuth access token from `FILE`")
	fs.BoolVar(&cfg.NoCompress, "no-compress", false, "do not use IMAP COMPRESS=DEFLATE even when the server offers it")
	fs.StringVar(&cfg.OAuth.Tenant, "tenant", "", "exchange-graph: the Entra ID tenant (id or domain)")
	fs.StringVar(&cfg.OAuth.ClientID, "client-id", "", "exchange-graph: the app registration's application (client) id")
	secretEnv := fs.String("client-secret-env", "", "exchange-graph: read the app's client secret from environment variable `VAR`")
	secretFile := fs.String("client-secret-file", "", "exchange-graph: read the app's client secret from `FILE`")
	fs.BoolVar(&cfg.OAuth.DeviceCode, "device-code", false, "exchange-graph: sign the user in with a device code (shown on stderr) instead of the app's secret")
	fs.StringVar(&cfg.OAuth.Authority, "authority", "", "exchange-graph: the login endpoint (default https://login.microsoftonline.com; national clouds differ)")
	fs.Float64Var(&cfg.AppRate, "app-rate", 0, "exchange-graph: requests per second the app registration's mailboxes share in this process (default 100)")
	fs.StringVar(&cfg.Path, "path", "", "Maildir root, Takeout .zip/.tgz/.mbox file or directory, or the WebDAV tree's root path (\"{user}\" is replaced by --user)")
	fs.Var((*regexpList)(&cfg.Include), "include", "import only mailboxes whose path matches `REGEXP` (repeatable)")
	fs.Var((*regexpList)(&cfg.Exclude), "exclude", "skip mailboxes whose path matches `REGEXP` (repeatable)")
	fs.BoolVar(&cfg.SubscribedOnly, "subscribed-only", false, "import only subscribed mailboxes (and INBOX)")
	fs.BoolVar(&cfg.IncludeDeleted, "include-deleted", false, "also import messages flagged \\Deleted")
	fs.IntVar(&cfg.Connections, "connections", 4, "parallel connections to the source")
	fs.IntVar(&cfg.Batch, "batch", 100, "messages per UID FETCH")
	maxConns := fs.Int("max-connections", 0, "cap on connections (the backend's limit; 0: none)")
	msgRate := fs.Float64("max-messages-per-second", 0, "throttle: messages per second (0: unlimited)")
	byteRate := fs.String("max-bytes-per-second", "0", "throttle: bytes per second, e.g. 40MiB (0: unlimited)")
	allowChange := fs.Bool("allow-source-change", false, "import even though the archive holds mail from another source")
	dryRun := fs.Bool("dry-run", false, "report what would change; write nothing")
	progress := fs.String("progress", "auto", "progress display: auto, bar, plain or none")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	objects := fs.String("objects", "mail", "jmap: what to import: mail, sieve, identities, vacation, files (each the source's session offers, with its own /changes cursor) or all")
	var prof profileFlags
	prof.register(fs)
	if code, done := parseArchiveArgs(fs, args[1:], s); done {
		return code
	}
	archivePath := fs.Arg(0)
	cfg.TLS = vandelay.TLSMode(*tlsMode)
	br, err := parseSize(*byteRate)
	if err != nil {
		v.Errorf("--max-bytes-per-second: %v", err)
		return exitVandelayUsage
	}
	cfg.Throttle = vandelay.NewThrottle(*maxConns, *msgRate, br)
	cfg.Logger = g.logger(s)
	stopProf, err := prof.start(cfg.Logger)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	defer stopProf()
	if k.Reads(sources.SetLogin) {
		if err := readLoginSecret(cfg, *passEnv, *passFile, *tokenEnv, *tokenFile, s); err != nil {
			v.Errorf("%v", err)
			return exitVandelayUsage
		}
	}
	if k.Reads(sources.SetApp) && !cfg.OAuth.DeviceCode {
		if cfg.OAuth.ClientSecret, err = readSecret("client secret", *secretEnv, *secretFile, s); err != nil {
			v.Errorf("%v", err)
			return exitVandelayUsage
		}
	}
	if cfg.OAuth.DeviceCode {
		// The sign-in message (URL and code) is for the user, not the log.
		cfg.OAuth.Prompt = func(msg string) { v.Note(msg) }
		// The sign-in is kept beside the archive (mode 0600) so that the
		// next run of the same import refreshes instead of asking again.
		cfg.OAuth.CacheFile = archivePath + ".graph-token"
	}
	if isData && dk.NewFiles != nil {
		return importFiles(ctx, v, dk, cfg, archivePath, &vandelay.ImportOptions{DryRun: *dryRun}, *jsonOut)
	}
	if isData && dk.NewDAV != nil {
		return importDAV(ctx, v, dk, cfg, archivePath, &vandelay.ImportOptions{DryRun: *dryRun}, *jsonOut)
	}
	if isData && dk.Import != nil {
		return importAccountData(ctx, v, kind, dk, cfg, archivePath, &vandelay.ImportOptions{DryRun: *dryRun}, *jsonOut)
	}
	if isData {
		return importSieve(ctx, v, dk, cfg, archivePath, &vandelay.ImportOptions{AllowSourceChange: *allowChange, DryRun: *dryRun}, *jsonOut)
	}
	importMail, dataKinds, err := parseObjects(*objects)
	if err == nil && len(dataKinds) > 0 && kind != "jmap" {
		err = fmt.Errorf("--objects %s: only a jmap source has them", strings.Join(dataKinds, ","))
	}
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	src, err := k.New(cfg)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	defer src.Close()

	a, err := archive.Open(ctx, archivePath, &archive.Options{Logger: cfg.Logger})
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	dataOpts := &vandelay.JMAPDataOptions{DryRun: *dryRun, AllowSourceChange: *allowChange}
	if !importMail {
		return importJMAPKinds(ctx, v, src, a, dataKinds, dataOpts, *jsonOut)
	}
	prog := v.NewImportProgress(*progress, src.Describe().Account)
	res, syncErr := vandelay.Import(ctx, src, a, &vandelay.ImportOptions{AllowSourceChange: *allowChange, DryRun: *dryRun, Progress: prog})
	prog.Finish()
	if res == nil {
		// The run did not begin or finish: nothing to report but the error.
		v.Errorf("%v", syncErr)
		if errors.Is(syncErr, archive.ErrSourceChanged) {
			return exitVandelaySourceChange
		}
		return exitVandelayArchive
	}
	var partial *vandelay.PartialError
	errors.As(syncErr, &partial)
	v.ImportResult(res, *jsonOut)
	if syncErr == nil && len(dataKinds) > 0 {
		// The other kinds after the mail, as apply does.
		return importJMAPKinds(ctx, v, src, a, dataKinds, dataOpts, *jsonOut)
	}
	switch {
	case syncErr == nil:
		return exitOK
	case errors.Is(syncErr, vandelay.ErrUsage):
		v.Errorf("%v", syncErr)
		return exitVandelayUsage
	case errors.Is(syncErr, vandelay.ErrAuth), errors.Is(syncErr, vandelay.ErrConnect):
		v.Errorf("%v", syncErr)
		return exitVandelayConnect
	case partial != nil:
		v.Errorf("%v\nThe archive is consistent; run the same command again to resume.", syncErr)
		return exitVandelayPartial
	case errors.Is(syncErr, context.Canceled):
		v.Note("Interrupted; the archive is consistent; run the same command again to resume.")
		return exitVandelayPartial
	default:
		v.Errorf("%v", syncErr)
		return exitVandelayArchive
	}
}

// importFlagSettings maps the import flags that belong to a group of
// source settings to that group; the other flags apply to every kind.
var importFlagSettings = map[string]sources.Setting{
	"server": sources.SetServer, "tls": sources.SetServer, "allow-cleartext": sources.SetServer,
	"insecure-skip-verify": sources.SetServer, "tls-server-name": sources.SetServer,
	"password-env": sources.SetLogin, "password-file": sources.SetLogin, "master-user": sources.SetLogin,
	"master-form": sources.SetLogin, "auth": sources.SetLogin, "token-env": sources.SetLogin, "token-file": sources.SetLogin,
	"no-compress": sources.SetCompress, "path": sources.SetPath, "url": sources.SetURL,
	"tenant": sources.SetApp, "client-id": sources.SetApp, "client-secret-env": sources.SetApp, "client-secret-file": sources.SetApp,
	"device-code": sources.SetApp, "authority": sources.SetApp, "app-rate": sources.SetApp,
	"include": sources.SetScope, "exclude": sources.SetScope, "subscribed-only": sources.SetSelection, "include-deleted": sources.SetSelection,
	"account-id": sources.SetAccount, "account-name": sources.SetAccount, "objects": sources.SetAccount,
	"connections": sources.SetConnections, "batch": sources.SetConnections,
	"max-connections": sources.SetThrottle, "max-messages-per-second": sources.SetThrottle, "max-bytes-per-second": sources.SetThrottle,
}

// printKindDefaults prints the defaults of the flags the source kind
// reads, as its registry entry describes them.
func printKindDefaults(fs *flag.FlagSet, k sources.Kind) {
	all := fs
	fs = flag.NewFlagSet(all.Name(), flag.ContinueOnError)
	fs.SetOutput(all.Output())
	all.VisitAll(func(f *flag.Flag) {
		set, ok := importFlagSettings[f.Name]
		if !ok || k.Reads(set) {
			fs.Var(f.Value, f.Name, f.Usage)
			fs.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	fs.PrintDefaults()
}

// importSieve runs "mailmig vandelay import managesieve": the library's
// ImportSieve, its result through the view, errors mapped to the import's
// exit codes.
func importSieve(ctx context.Context, v *views.View, dk sources.DataKind, cfg *sources.Spec, archivePath string, opts *vandelay.ImportOptions, asJSON bool) int {
	return runDataImport(ctx, v, cfg, archivePath, dk.NewSieve, func(src vandelay.SieveSource, a *archive.Archive) int {
		res, err := vandelay.ImportSieve(ctx, src, a, opts)
		if err != nil {
			return dataImportFailed(v, err)
		}
		v.SieveImportResult(res, asJSON)
		return exitOK
	})
}

// runDataImport is the frame of a non-mail kind's import command: the
// kind's source from newSource (a usage error when refused), the archive
// opened, run with both, both closed after it.
func runDataImport[S interface{ Close() error }](ctx context.Context, v *views.View, cfg *sources.Spec, archivePath string,
	newSource func(*sources.Spec) (S, error), run func(S, *archive.Archive) int) int {
	src, err := newSource(cfg)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	defer src.Close()
	a, err := archive.Open(ctx, archivePath, &archive.Options{Logger: cfg.Logger})
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayArchive
	}
	defer a.Close()
	return run(src, a)
}

// dataImportFailed reports a failed import of a non-mail kind and maps its
// error to the import's exit codes.
func dataImportFailed(v *views.View, err error) int {
	v.Errorf("%v", err)
	switch {
	case errors.Is(err, vandelay.ErrUsage):
		return exitVandelayUsage
	case errors.Is(err, vandelay.ErrAuth), errors.Is(err, vandelay.ErrConnect):
		return exitVandelayConnect
	case errors.Is(err, archive.ErrSourceChanged):
		return exitVandelaySourceChange
	default:
		return exitVandelayArchive
	}
}
