package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Exit codes of "mailmig vandelay export" and "verify" beyond the import's
// (docs/export.md): usage 2, connect/auth 3, partial 5, archive 6, and
// verify's mismatch 7.
const exitVandelayMismatch = 7

// targetFlags are the flags that name and open a JMAP target.
type targetFlags struct {
	url, basicUser         string
	bearer                 bool
	passEnv, passFile      string
	tokenEnv, tokenFile    string
	accountID, accountName string
	maxRetries             int
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.url, "url", "", "JMAP server: base URL, /.well-known/jmap or session URL")
	fs.StringVar(&t.basicUser, "auth-basic", "", "log in with HTTP Basic as `USER` (password from --password-env, --password-file or a prompt)")
	fs.BoolVar(&t.bearer, "auth-bearer", false, "log in with an OAuth bearer token (from --token-env, --token-file or a prompt)")
	fs.StringVar(&t.passEnv, "password-env", "", "read the password from environment variable `VAR`")
	fs.StringVar(&t.passFile, "password-file", "", "read the password from `FILE`")
	fs.StringVar(&t.tokenEnv, "token-env", "", "read the bearer token from environment variable `VAR`")
	fs.StringVar(&t.tokenFile, "token-file", "", "read the bearer token from `FILE`")
	fs.StringVar(&t.accountID, "account-id", "", "target account id (default: the primary mail account)")
	fs.StringVar(&t.accountName, "account-name", "", "target account by name, e.g. an account an admin credential may act for")
	fs.IntVar(&t.maxRetries, "max-retries", 6, "retries of a request after 429/503 or a dropped connection")
}

// open authenticates, discovers the session and picks the account. The
// int is the exit code on failure.
func (t *targetFlags) open(ctx context.Context, g *globals, s Streams) (*vandelay.Target, int, error) {
	if t.url == "" {
		return nil, exitVandelayUsage, errors.New("--url is required")
	}
	opts := &vandelay.TargetOptions{URL: t.url, AccountID: t.accountID, AccountName: t.accountName,
		MaxRetries: t.maxRetries, Logger: g.logger(s)}
	switch {
	case t.basicUser != "" && t.bearer:
		return nil, exitVandelayUsage, errors.New("use either --auth-basic or --auth-bearer, not both")
	case t.basicUser != "":
		pw, err := readSecret("password", t.passEnv, t.passFile, s)
		if err != nil {
			return nil, exitVandelayUsage, err
		}
		opts.Auth = vandelay.BasicAuth{User: t.basicUser, Password: pw}
	case t.bearer:
		tok, err := readSecret("access token", t.tokenEnv, t.tokenFile, s)
		if err != nil {
			return nil, exitVandelayUsage, err
		}
		opts.Auth = vandelay.BearerAuth{Token: tok}
	default:
		return nil, exitVandelayUsage, errors.New("choose --auth-basic USER or --auth-bearer")
	}
	if t.accountID != "" && t.accountName != "" {
		return nil, exitVandelayUsage, errors.New("use either --account-id or --account-name, not both")
	}
	tg, err := vandelay.OpenTarget(ctx, opts)
	if err != nil {
		return nil, exitVandelayConnect, err
	}
	return tg, 0, nil
}

func runVandelayExport(ctx context.Context, g *globals, args []string, s Streams) int {
	v := views.New(s.Out, s.Err, false)
	fs := flag.NewFlagSet("vandelay export", flag.ContinueOnError)
	fs.SetOutput(s.Err)
	var tf targetFlags
	tf.register(fs)
	objects := fs.String("objects", "mail", "what to export: mail, sieve, identities, vacation, files (the others over the target's JMAP session: RFC 9661, RFC 8621 Identity and VacationResponse, FileNode; each verified after) or all")
	prune := fs.Bool("prune", false, "destroy target emails and non-role mailboxes the archive does not hold")
	yes := fs.Bool("yes", false, "do not ask for confirmation (--prune)")
	dryRun := fs.Bool("dry-run", false, "list what would be created, updated and destroyed; change nothing")
	batch := fs.Int("batch", 0, "emails per Email/import (default: min(maxObjectsInSet, 100))")
	workers := fs.Int("workers", 0, "batches in flight (default: min(maxConcurrentRequests, 4))")
	inline := fs.Bool("inline-blobs", true, "send small messages inside the API request when the server offers Blob/upload (RFC 9404) or Cyrus's Blob/set")
	progress := fs.String("progress", "auto", "progress display: auto, bar, plain or none")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	var prof profileFlags
	prof.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export --url URL (--auth-basic USER | --auth-bearer) [--account-id ID | --account-name NAME] [--prune [--yes]] [--dry-run] ARCHIVE\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseArchiveArgs(fs, args, s); done {
		return code
	}
	exportMail, dataKinds, err := parseObjects(*objects)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	if *prune && !*yes && !*dryRun {
		if !confirm(s, "Prune destroys every email and non-role mailbox on the target that the archive does not hold. Type yes to continue: ") {
			v.Errorf("--prune not confirmed (give --yes when no terminal is attached).")
			return exitVandelayUsage
		}
	}
	log := g.logger(s)
	stopProf, err := prof.start(log)
	if err != nil {
		v.Errorf("%v", err)
		return exitVandelayUsage
	}
	defer stopProf()
	a, err := openExportArchive(ctx, fs.Arg(0), log)
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
	if !exportMail {
		return exportJMAPKinds(ctx, v, a, tg, dataKinds, *dryRun, *jsonOut)
	}
	prog := v.NewExportProgress(*progress, tg.AccountID)
	res, err := vandelay.Export(ctx, a, tg, &vandelay.ExportOptions{Logger: log, DryRun: *dryRun, Prune: *prune,
		BatchSize: *batch, Workers: *workers, NoInlineBlobs: !*inline, Progress: prog.Update})
	prog.Finish()
	if res != nil {
		v.ExportResult(res, *dryRun, *jsonOut)
	}
	if err == nil && len(dataKinds) > 0 {
		if code := exportJMAPKinds(ctx, v, a, tg, dataKinds, *dryRun, *jsonOut); code != exitOK {
			return code
		}
	}
	switch {
	case err == nil && res.Partial():
		v.Errorf("%d item(s) skipped (listed above); everything else was exported.", len(res.Skipped))
		return exitVandelayPartial
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		v.Note("Interrupted; run the same command again to resume (nothing is duplicated).")
		return exitVandelayPartial
	}
	v.Errorf("%v", err)
	if vandelay.IsTargetRefusal(err) {
		return exitVandelayConnect
	}
	return exitVandelayArchive
}

func confirm(s Streams, prompt string) bool {
	f, ok := s.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	fmt.Fprint(s.Err, prompt)
	line, _ := bufio.NewReader(s.In).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

// openExportArchive opens the archive an export reads. archive.Open
// creates a missing archive, which is right for an import and wrong for
// an export: exporting an empty archive would only fail later, at the
// login, or report nothing to do; name the missing file instead.
func openExportArchive(ctx context.Context, path string, log *slog.Logger) (*archive.Archive, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open archive %s: %w", path, archive.ErrNotExist)
	}
	return archive.Open(ctx, path, &archive.Options{Logger: log})
}
