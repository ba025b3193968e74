package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
	"github.com/mailmig/mailmig/vandelay/verify"
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
	fs := flag.NewFlagSet("vandelay export", flag.ContinueOnError)
	fs.SetOutput(s.Err)
	var tf targetFlags
	tf.register(fs)
	objects := fs.String("objects", "mail", "what to export (mail)")
	prune := fs.Bool("prune", false, "destroy target emails and non-role mailboxes the archive does not hold")
	yes := fs.Bool("yes", false, "do not ask for confirmation (--prune)")
	dryRun := fs.Bool("dry-run", false, "list what would be created, updated and destroyed; change nothing")
	batch := fs.Int("batch", 0, "emails per Email/import (default: min(maxObjectsInSet, 100))")
	workers := fs.Int("workers", 0, "batches in flight (default: min(maxConcurrentRequests, 4))")
	inline := fs.Bool("inline-blobs", true, "send small messages inside the API request when the server offers Blob/upload (RFC 9404) or Cyrus's Blob/set")
	progress := fs.String("progress", "auto", "progress display: auto, bar, plain or none")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay export --url URL (--auth-basic USER | --auth-bearer) [--account-id ID | --account-name NAME] [--prune [--yes]] [--dry-run] ARCHIVE\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseArchiveArgs(fs, args, s); done {
		return code
	}
	for _, o := range strings.Split(*objects, ",") {
		if o = strings.TrimSpace(o); o != "mail" && o != "" {
			fmt.Fprintf(s.Err, "Error: --objects %q: this build exports mail only.\n", o)
			return exitVandelayUsage
		}
	}
	if *prune && !*yes && !*dryRun {
		if !confirm(s, "Prune destroys every email and non-role mailbox on the target that the archive does not hold. Type yes to continue: ") {
			fmt.Fprintf(s.Err, "Error: --prune not confirmed (give --yes when no terminal is attached).\n")
			return exitVandelayUsage
		}
	}
	log := g.logger(s)
	if _, err := os.Stat(fs.Arg(0)); err != nil {
		// Open would create an empty archive; exporting one makes no sense.
		fmt.Fprintf(s.Err, "Error: open archive %s: %v\n", fs.Arg(0), archive.ErrNotExist)
		return exitVandelayArchive
	}
	a, err := archive.Open(ctx, fs.Arg(0), &archive.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayArchive
	}
	defer a.Close()
	tg, code, err := tf.open(ctx, g, s)
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return code
	}
	prog := newExportProgress(*progress, s, tg.AccountID)
	res, err := vandelay.Export(ctx, a, tg, &vandelay.ExportOptions{Logger: log, DryRun: *dryRun, Prune: *prune,
		BatchSize: *batch, Workers: *workers, NoInlineBlobs: !*inline, Progress: prog.update})
	prog.finish()
	if res != nil {
		printExportResult(s.Out, res, *dryRun, *jsonOut)
	}
	switch {
	case err == nil && res.Partial():
		fmt.Fprintf(s.Err, "Error: %d item(s) skipped (listed above); everything else was exported.\n", len(res.Skipped))
		return exitVandelayPartial
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(s.Err, "Interrupted; run the same command again to resume (nothing is duplicated).\n")
		return exitVandelayPartial
	}
	fmt.Fprintf(s.Err, "Error: %v\n", err)
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

func printExportResult(w io.Writer, r *vandelay.ExportResult, dry, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		changes := make([]string, len(r.Changes))
		for i, c := range r.Changes {
			changes[i] = c.String()
		}
		enc.Encode(struct {
			*vandelay.ExportResult
			Changes []string
			DryRun  bool
			Partial bool
			Seconds float64
		}{r, changes, dry, r.Partial(), r.Duration.Seconds()})
		return
	}
	if dry {
		for _, c := range r.Changes {
			fmt.Fprintln(w, c)
		}
		fmt.Fprintf(w, "dry run, nothing changed: would have ")
	}
	fmt.Fprintf(w, "emails: %d imported, %d matched, %d updated, %d destroyed, %d unchanged; mailboxes: %d created, %d updated, %d matched, %d destroyed\n",
		r.EmailsImported, r.EmailsMatched, r.EmailsUpdated, r.EmailsDestroyed, r.EmailsUnchanged,
		r.MailboxesCreated, r.MailboxesUpdated, r.MailboxesMatched, r.MailboxesDestroyed)
	secs := r.Duration.Seconds()
	rate := ""
	if secs > 0 && r.Uploads > 0 {
		rate = fmt.Sprintf(", %.0f msg/s, %.1f MB/s", float64(r.Uploads)/secs, float64(r.UploadBytes)/1e6/secs)
	}
	fmt.Fprintf(w, "uploaded %d blobs (%.1f MB) in %.1fs%s\n", r.Uploads, float64(r.UploadBytes)/1e6, secs, rate)
	for _, sk := range r.Skipped {
		fmt.Fprintf(w, "skipped %s %s: %s\n", strings.ToLower(sk.Kind), sk.Name, sk.Reason)
	}
}

// exportProgress shows a bar on a terminal and plain lines every 5 s
// otherwise.
type exportProgress struct {
	mode    string
	w       io.Writer
	account string
	bar     *progressbar.ProgressBar
	last    time.Time
	start   time.Time
}

func newExportProgress(mode string, s Streams, account string) *exportProgress {
	p := &exportProgress{mode: mode, w: s.Err, account: account, start: time.Now(), last: time.Now()}
	if mode == "auto" {
		p.mode = "plain"
		if f, ok := s.Err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			p.mode = "bar"
		}
	}
	if p.mode == "bar" {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(s.Err), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(account), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *exportProgress) update(pr vandelay.ExportProgress) {
	switch p.mode {
	case "bar":
		if pr.TotalBytes > 0 {
			p.bar.ChangeMax64(pr.TotalBytes)
		}
		p.bar.Describe(fmt.Sprintf("%s %s %d/%d msgs", p.account, pr.Phase, pr.Done, pr.Total))
		p.bar.Set64(pr.Bytes)
	case "plain":
		if time.Since(p.last) < 5*time.Second && pr.Phase != "done" {
			return
		}
		p.last = time.Now()
		el := time.Since(p.start).Seconds()
		fmt.Fprintf(p.w, "%s: %s %d/%d messages, %.1f/%.1f MB, %.0f msg/s\n", p.account, pr.Phase, pr.Done, pr.Total,
			float64(pr.Bytes)/1e6, float64(pr.TotalBytes)/1e6, float64(pr.Done)/el)
	}
}

func (p *exportProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func runVandelayVerify(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := flag.NewFlagSet("vandelay verify", flag.ContinueOnError)
	fs.SetOutput(s.Err)
	var tf targetFlags
	tf.register(fs)
	srcKind := fs.String("source-kind", "imap", "the kind of the source to compare (with --source-server): "+strings.Join(sources.Kinds(), ", "))
	srcServer := fs.String("source-server", "", "also compare the source `host:port` with the archive (a dry-run import must find nothing to do)")
	srcUser := fs.String("source-user", "", "the source account (with --source-server)")
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
		fmt.Fprintf(s.Err, "Error: unknown source kind %q (want %s).\n", *srcKind, strings.Join(sources.Kinds(), ", "))
		return exitVandelayUsage
	}
	if *srcServer != "" {
		srcCfg = &sources.Spec{Server: vandelay.Server{Address: *srcServer, TLS: vandelay.TLSMode(*srcTLS), AllowCleartext: *srcClear},
			Login: vandelay.Login{User: *srcUser, MasterUser: *srcMaster}, Logger: log}
		var err error
		if srcCfg.Password, err = readSecret("source password", *srcPassEnv, *srcPassFile, s); err != nil {
			fmt.Fprintf(s.Err, "Error: %v (use --source-password-env or --source-password-file)\n", err)
			return exitVandelayUsage
		}
	}
	// A source comparison is a dry-run import, which needs the write lock.
	a, err := archive.Open(ctx, fs.Arg(0), &archive.Options{Logger: log, ReadOnly: srcCfg == nil})
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayArchive
	}
	defer a.Close()
	tg, code, err := tf.open(ctx, g, s)
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return code
	}
	var srcMismatch []verify.Mismatch
	if srcCfg != nil {
		m, code, err := compareSource(ctx, a, srcEntry, srcCfg)
		if err != nil {
			fmt.Fprintf(s.Err, "Error: source: %v\n", err)
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
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayConnect
	}
	rep.Mismatches = append(srcMismatch, rep.Mismatches...)
	if *jsonOut {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			*verify.Report
			OK bool `json:"ok"`
		}{rep, rep.OK()})
	} else {
		tw := tabwriter.NewWriter(s.Out, 2, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "MAILBOX\tROLE\tARCHIVE\tTARGET\t\n")
		for _, r := range rep.Mailboxes {
			mark := ""
			if !r.OK {
				mark = "MISMATCH"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Path, r.Role, r.Archive, r.Target, mark)
		}
		tw.Flush()
		fmt.Fprintf(s.Out, "\n%d archive emails, %d target emails, %d hashed, %d hash-equal, %.1f MB downloaded\n",
			rep.ArchiveEmails, rep.TargetEmails, rep.Hashed, rep.HashEqual, float64(rep.DownloadedSize)/1e6)
		for _, m := range rep.Mismatches {
			fmt.Fprintf(s.Out, "MISMATCH %s\n", m)
		}
		if rep.OK() && srcCfg != nil {
			fmt.Fprintf(s.Out, "OK: source, archive and target agree\n")
		} else if rep.OK() {
			fmt.Fprintf(s.Out, "OK: archive and target agree\n")
		}
	}
	if !rep.OK() {
		fmt.Fprintf(s.Err, "Error: %d mismatch(es), listed above.\n", len(rep.Mismatches))
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
