package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// vandelayCommands is the table of "mailmig vandelay" subcommands. Each
// subcommand lives in its own file and adds one line here.
var vandelayCommands = map[string]command{
	"import":  {synopsis: "Import an account's mail (imap, pop3, maildir, takeout) into an archive", run: runVandelayImport},
	"inspect": {synopsis: "Show an archive's mailboxes, messages and runs", run: runVandelayInspect},
	"export":  {synopsis: "Export an archive onto a JMAP server (convergent; --dry-run, --prune)", run: runVandelayExport},
	"verify":  {synopsis: "Compare an archive with its JMAP target (counts, hashes, keywords, mailboxes)", run: runVandelayVerify},
}

// Exit codes of "mailmig vandelay import" (docs/import.md).
const (
	exitVandelayUsage        = 2 // bad flags or arguments
	exitVandelayConnect      = 3 // cannot connect or log in to the source
	exitVandelaySourceChange = 4 // archive holds another source; --allow-source-change
	exitVandelayPartial      = 5 // some mailboxes failed; archive consistent, re-run resumes
	exitVandelayArchive      = 6 // local archive or file error (incl. archive in use)
)

func runVandelay(ctx context.Context, g *globals, args []string, s Streams) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		vandelayUsage(s.Out)
		if len(args) == 0 {
			return exitVandelayUsage
		}
		return exitOK
	}
	c, ok := vandelayCommands[args[0]]
	if !ok {
		fmt.Fprintf(s.Err, "Error: unknown vandelay command %q.\n\n", args[0])
		vandelayUsage(s.Err)
		return exitVandelayUsage
	}
	return c.run(ctx, g, args[1:], s)
}

func vandelayUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: mailmig vandelay <command> [flags] ARCHIVE\n\nCommands:\n")
	names := make([]string, 0, len(vandelayCommands))
	for n := range vandelayCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, vandelayCommands[n].synopsis)
	}
}

// regexpList is a repeatable regular-expression flag.
type regexpList []*regexp.Regexp

func (l *regexpList) String() string { return "" }
func (l *regexpList) Set(v string) error {
	re, err := regexp.Compile(v)
	if err != nil {
		return err
	}
	*l = append(*l, re)
	return nil
}

// parseSize reads 123, 10k, 40MiB, 2MB, 1g.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(s, suf.s) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, suf.s)), suf.m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 40MiB)", s)
	}
	return int64(n * float64(mult)), nil
}

// readSecret returns a secret from an environment variable, a file or a
// no-echo prompt on the terminal; never from a flag value.
func readSecret(what, envName, file string, s Streams) (string, error) {
	switch {
	case envName != "":
		v, ok := os.LookupEnv(envName)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s with the %s is not set", envName, what)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s file: %w", what, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	f, ok := s.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("no %s given: use --%s-env VAR or --%s-file FILE (no terminal to prompt on)", what, flagWord(what), flagWord(what))
	}
	fmt.Fprintf(s.Err, "%s: ", strings.ToUpper(what[:1])+what[1:])
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(s.Err)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	return string(b), nil
}

func flagWord(what string) string {
	if strings.Contains(what, "token") {
		return "token"
	}
	return "password"
}

func runVandelayImport(ctx context.Context, g *globals, args []string, s Streams) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage := fmt.Sprintf("Usage: mailmig vandelay import %s [flags] ARCHIVE\n", strings.Join(sources.Kinds(), "|"))
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			io.WriteString(s.Out, usage)
			return exitOK
		}
		io.WriteString(s.Err, usage)
		return exitVandelayUsage
	}
	kind := args[0]
	k, ok := sources.Mail[kind]
	if !ok {
		fmt.Fprintf(s.Err, "Error: unknown source kind %q (want %s).\n", kind, strings.Join(sources.Kinds(), ", "))
		return exitVandelayUsage
	}
	cfg := &sources.Spec{}
	fs := flag.NewFlagSet("vandelay import "+kind, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay import %s [flags] ARCHIVE\n\nImports %s.\n\n", kind, k.Summary)
		printKindDefaults(fs, k)
	}
	fs.StringVar(&cfg.Address, "server", "", "source server `host:port` (imap, pop3)")
	tlsMode := fs.String("tls", "implicit", "transport: implicit, starttls or none (none needs --allow-cleartext)")
	fs.BoolVar(&cfg.AllowCleartext, "allow-cleartext", false, "allow credentials over a connection without TLS")
	fs.BoolVar(&cfg.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the server certificate (test servers only)")
	fs.StringVar(&cfg.ServerName, "tls-server-name", "", "TLS server name (default: the host of --server)")
	fs.StringVar(&cfg.User, "user", "", "the account to import")
	passEnv := fs.String("password-env", "", "read the password from environment variable `VAR`")
	passFile := fs.String("password-file", "", "read the password from `FILE`")
	fs.StringVar(&cfg.MasterUser, "master-user", "", "log in as this master user on --user's behalf (the password is the master's)")
	fs.StringVar(&cfg.MasterForm, "master-form", "star", "master login form: star (user*master) or authzid (SASL PLAIN)")
	fs.StringVar(&cfg.Auth, "auth", "", "mechanism: plain, login, xoauth2 or oauthbearer (default: plain when offered, else login)")
	tokenEnv := fs.String("token-env", "", "read the OAuth access token from environment variable `VAR`")
	tokenFile := fs.String("token-file", "", "read the OAuth access token from `FILE`")
	fs.BoolVar(&cfg.NoCompress, "no-compress", false, "do not use IMAP COMPRESS=DEFLATE even when the server offers it")
	fs.StringVar(&cfg.Path, "path", "", "Maildir root, or Takeout .zip/.tgz/.mbox file or directory")
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
	if code, done := parseArchiveArgs(fs, args[1:], s); done {
		return code
	}
	archivePath := fs.Arg(0)
	cfg.TLS = vandelay.TLSMode(*tlsMode)
	br, err := parseSize(*byteRate)
	if err != nil {
		fmt.Fprintf(s.Err, "Error: --max-bytes-per-second: %v\n", err)
		return exitVandelayUsage
	}
	cfg.Throttle = vandelay.NewThrottle(*maxConns, *msgRate, br)
	cfg.Logger = g.logger(s)
	if k.Reads(sources.SetLogin) {
		if strings.EqualFold(cfg.Auth, vandelay.AuthXOAUTH2) || strings.EqualFold(cfg.Auth, vandelay.AuthOAuthBearer) {
			cfg.Token, err = readSecret("access token", *tokenEnv, *tokenFile, s)
		} else {
			what := "password"
			if cfg.MasterUser != "" {
				what = "master password"
			}
			cfg.Password, err = readSecret(what, *passEnv, *passFile, s)
		}
		if err != nil {
			fmt.Fprintf(s.Err, "Error: %v\n", err)
			return exitVandelayUsage
		}
	}
	src, err := k.New(cfg)
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayUsage
	}
	defer src.Close()

	a, err := archive.Open(ctx, archivePath, &archive.Options{Logger: cfg.Logger})
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayArchive
	}
	defer a.Close()
	prog := newImportProgress(*progress, s, src.Describe().Account)
	res, syncErr := vandelay.Import(ctx, src, a, &vandelay.ImportOptions{AllowSourceChange: *allowChange, DryRun: *dryRun, Progress: prog})
	prog.finish()
	if res == nil {
		// The run did not begin or finish: nothing to report but the error.
		fmt.Fprintf(s.Err, "Error: %v\n", syncErr)
		if errors.Is(syncErr, archive.ErrSourceChanged) {
			return exitVandelaySourceChange
		}
		return exitVandelayArchive
	}
	var partial *vandelay.PartialError
	errors.As(syncErr, &partial)
	printImportResult(s.Out, res, *jsonOut)
	switch {
	case syncErr == nil:
		return exitOK
	case errors.Is(syncErr, vandelay.ErrUsage):
		fmt.Fprintf(s.Err, "Error: %v\n", syncErr)
		return exitVandelayUsage
	case errors.Is(syncErr, vandelay.ErrAuth), errors.Is(syncErr, vandelay.ErrConnect):
		fmt.Fprintf(s.Err, "Error: %v\n", syncErr)
		return exitVandelayConnect
	case partial != nil:
		fmt.Fprintf(s.Err, "Error: %v\nThe archive is consistent; run the same command again to resume.\n", syncErr)
		return exitVandelayPartial
	case errors.Is(syncErr, context.Canceled):
		fmt.Fprintf(s.Err, "Interrupted; the archive is consistent; run the same command again to resume.\n")
		return exitVandelayPartial
	default:
		fmt.Fprintf(s.Err, "Error: %v\n", syncErr)
		return exitVandelayArchive
	}
}

func printImportResult(w io.Writer, r *archive.Result, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			archive.Counts
			Complete bool
			DryRun   bool
			Seconds  float64
		}{r.Counts, r.Complete, r.DryRun, r.Duration.Seconds()})
		return
	}
	prefix := ""
	if r.DryRun {
		prefix = "dry run, nothing written: would have "
	}
	fmt.Fprintf(w, "%smessages: %d added, %d deleted, %d moved, %d reflagged; mailboxes: %d created, %d renamed, %d deleted; %d skipped\n",
		prefix, r.MessagesAdded, r.MessagesDeleted, r.MessagesMoved, r.MessagesReflagged,
		r.MailboxesCreated, r.MailboxesRenamed, r.MailboxesDeleted, r.Skipped)
	secs := r.Duration.Seconds()
	rate := ""
	if secs > 0 && r.Fetched > 0 {
		rate = fmt.Sprintf(", %.0f msg/s, %.1f MB/s", float64(r.Fetched)/secs, float64(r.FetchedBytes)/1e6/secs)
	}
	fmt.Fprintf(w, "fetched %d bodies (%.1f MB), stored %d new blobs, in %.1fs%s\n",
		r.Fetched, float64(r.FetchedBytes)/1e6, r.BlobsStored, secs, rate)
}

// importProgress shows progress as a bar on a terminal and as periodic
// plain lines otherwise.
type importProgress struct {
	mode       string
	w          io.Writer
	account    string
	totalMsgs  atomic.Int64
	totalBytes atomic.Int64
	doneMsgs   atomic.Int64
	doneBytes  atomic.Int64
	start      time.Time

	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	stop chan struct{}
	wg   sync.WaitGroup
}

func newImportProgress(mode string, s Streams, account string) *importProgress {
	p := &importProgress{mode: mode, w: s.Err, account: account, start: time.Now(), stop: make(chan struct{})}
	if mode == "auto" {
		p.mode = "plain"
		if f, ok := s.Err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			p.mode = "bar"
		}
	}
	switch p.mode {
	case "bar":
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(s.Err), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(account), progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	case "plain":
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.line()
				}
			}
		}()
	}
	return p
}

func (p *importProgress) line() {
	el := time.Since(p.start).Seconds()
	dm, db := p.doneMsgs.Load(), p.doneBytes.Load()
	fmt.Fprintf(p.w, "%s: %d/%d messages, %.1f/%.1f MB, %.0f msg/s, %.1f MB/s\n", p.account, dm, p.totalMsgs.Load(),
		float64(db)/1e6, float64(p.totalBytes.Load())/1e6, float64(dm)/el, float64(db)/1e6/el)
}

// Discovered implements vandelay.Progress.
func (p *importProgress) Discovered(n int, b int64) {
	p.totalMsgs.Add(int64(n))
	p.totalBytes.Add(b)
	if p.bar != nil {
		p.mu.Lock()
		p.bar.ChangeMax64(p.totalBytes.Load())
		p.mu.Unlock()
	}
}

// Done implements vandelay.Progress.
func (p *importProgress) Done(n int, b int64) {
	p.doneMsgs.Add(int64(n))
	p.doneBytes.Add(b)
	if p.bar != nil {
		p.mu.Lock()
		p.bar.Describe(fmt.Sprintf("%s %d/%d msgs", p.account, p.doneMsgs.Load(), p.totalMsgs.Load()))
		p.bar.Add64(b)
		p.mu.Unlock()
	}
}

func (p *importProgress) finish() {
	switch p.mode {
	case "bar":
		p.bar.Finish()
	case "plain":
		close(p.stop)
		p.wg.Wait()
	}
}

func runVandelayInspect(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := flag.NewFlagSet("vandelay inspect", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailmig vandelay inspect [flags] ARCHIVE [summary|mailboxes|messages|runs]\n\n")
		fs.PrintDefaults()
	}
	mailboxPath := fs.String("mailbox", "", "with messages: only this mailbox `PATH`")
	limit := fs.Int("limit", 50, "with messages: page size")
	offset := fs.Int("offset", 0, "with messages: skip this many")
	deleted := fs.Bool("deleted", false, "with messages or mailboxes: include tombstones")
	// Flags may come before or after the positional arguments.
	var rest []string
	for {
		if code, done := parseVandelayFlags(fs, args, s); done {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) < 1 || len(rest) > 2 {
		fmt.Fprintf(s.Err, "Usage: mailmig vandelay inspect [flags] ARCHIVE [summary|mailboxes|messages|runs]\n")
		return exitVandelayUsage
	}
	kind := "summary"
	if len(rest) == 2 {
		kind = rest[1]
	}
	a, err := archive.Open(ctx, rest[0], &archive.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayArchive
	}
	defer a.Close()
	switch kind {
	case "summary", "mailboxes":
		err = inspectMailboxes(ctx, a, s.Out, kind == "summary", *deleted)
	case "messages":
		err = inspectMessages(ctx, a, s.Out, *mailboxPath, *limit, *offset, *deleted)
	case "runs":
		err = inspectRuns(ctx, a, s.Out)
	default:
		fmt.Fprintf(s.Err, "Error: unknown kind %q (want summary, mailboxes, messages or runs).\n", kind)
		return exitVandelayUsage
	}
	if err != nil {
		fmt.Fprintf(s.Err, "Error: %v\n", err)
		return exitVandelayArchive
	}
	return exitOK
}

func inspectMailboxes(ctx context.Context, a *archive.Archive, w io.Writer, summary, deleted bool) error {
	if summary {
		st, err := a.Stats(ctx)
		if err != nil {
			return err
		}
		src, err := a.Source(ctx)
		if err != nil {
			return err
		}
		if src != nil {
			last := "never"
			if !src.LastComplete.IsZero() {
				last = src.LastComplete.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "source:     %s %s account %s (login %s), last complete run %s\n", src.Kind, src.Endpoint, src.Account, src.Login, last)
		}
		fmt.Fprintf(w, "messages:   %d (%.1f MB), %d tombstones\nblobs:      %d (%.1f MB)\nmailboxes:  %d\nmodseq:     %d\n\n",
			st.Messages, float64(st.Bytes)/1e6, st.Tombstones, st.Blobs, float64(st.BlobBytes)/1e6, st.Mailboxes, st.ModSeq)
	}
	mbs, err := a.Mailboxes(ctx, &archive.MailboxFilter{IncludeDeleted: deleted})
	if err != nil {
		return err
	}
	counts, err := a.MailboxCounts(ctx)
	if err != nil {
		return err
	}
	// Depth-first tree order.
	children := map[int64][]*archive.Mailbox{}
	for _, m := range mbs {
		children[m.ParentID] = append(children[m.ParentID], m)
	}
	fmt.Fprintf(w, "%8s  %10s  %s\n", "MESSAGES", "SIZE", "MAILBOX")
	var walk func(parent int64, depth int)
	walk = func(parent int64, depth int) {
		for _, m := range children[parent] {
			c := counts[m.ID]
			var notes []string
			if m.Role != "" {
				notes = append(notes, m.Role)
			}
			if m.Subscribed {
				notes = append(notes, "subscribed")
			}
			if !m.Selectable {
				notes = append(notes, "noselect")
			}
			if !m.Deleted.IsZero() {
				notes = append(notes, "deleted "+m.Deleted.Format(time.RFC3339))
			}
			n := ""
			if len(notes) > 0 {
				n = "  (" + strings.Join(notes, ", ") + ")"
			}
			fmt.Fprintf(w, "%8d  %10s  %s%s%s\n", c.Messages, humanBytes(c.Bytes), strings.Repeat("  ", depth), m.Name, n)
			walk(m.ID, depth+1)
		}
	}
	walk(0, 0)
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func inspectMessages(ctx context.Context, a *archive.Archive, w io.Writer, mailboxPath string, limit, offset int, deleted bool) error {
	mbs, err := a.Mailboxes(ctx, &archive.MailboxFilter{IncludeDeleted: true})
	if err != nil {
		return err
	}
	names := map[int64]string{}
	f := &archive.MessageFilter{IncludeDeleted: deleted}
	for _, m := range mbs {
		names[m.ID] = m.Path
		if mailboxPath != "" && m.Path == mailboxPath && m.Deleted.IsZero() {
			f.MailboxID = m.ID
		}
	}
	if mailboxPath != "" && f.MailboxID == 0 {
		return fmt.Errorf("no mailbox %q in the archive", mailboxPath)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tSIZE\tRECEIVED\tKEYWORDS\tMAILBOXES\tSHA-256\n")
	i := 0
	for m, err := range a.Messages(ctx, f) {
		if err != nil {
			return err
		}
		i++
		if i <= offset {
			continue
		}
		if i > offset+limit {
			break
		}
		var mb []string
		for _, id := range m.MailboxIDs {
			mb = append(mb, names[id])
		}
		id := strconv.FormatInt(m.ID, 10)
		if !m.Deleted.IsZero() {
			id += " (deleted)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", id, m.Size, m.ReceivedAt.Format(time.RFC3339), strings.Join(m.Keywords, " "),
			strings.Join(mb, ", "), m.Blob[:16])
	}
	return tw.Flush()
}

func inspectRuns(ctx context.Context, a *archive.Archive, w io.Writer) error {
	runs, err := a.Runs(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RUN\tSTARTED\tSECONDS\tSTATUS\tCOUNTS\n")
	for _, r := range runs {
		secs := "-"
		if !r.Finished.IsZero() {
			secs = strconv.FormatInt(int64(r.Finished.Sub(r.Started).Seconds()), 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, r.Started.Format(time.RFC3339), secs, r.Status, r.Counts)
	}
	return tw.Flush()
}

// parseArchiveArgs parses the flags of a vandelay subcommand that takes
// exactly one ARCHIVE argument; done is true when the command must return
// code at once (help shown, or a usage error reported).
func parseArchiveArgs(fs *flag.FlagSet, args []string, s Streams) (code int, done bool) {
	if code, done := parseVandelayFlags(fs, args, s); done {
		return code, true
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(s.Err, "Error: want exactly one ARCHIVE argument after the flags, got %d.\n", fs.NArg())
		return exitVandelayUsage, true
	}
	return exitOK, false
}

// parseVandelayFlags parses args like parseFlags does for the other
// commands: -h prints the flag set's usage to standard output and exits
// 0; a bad flag is one short error on standard error (exit usage).
func parseVandelayFlags(fs *flag.FlagSet, args []string, s Streams) (code int, done bool) {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(s.Out)
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(s.Out, "Usage: mailmig %s [flags]\n\n", fs.Name())
			fs.PrintDefaults()
		}
		return exitOK, true
	case err != nil:
		fmt.Fprintf(s.Err, "Error: %v\n\nRun \"mailmig %s -h\" for its options.\n", err, fs.Name())
		return exitVandelayUsage, true
	}
	fs.SetOutput(s.Err)
	return exitOK, false
}

// importFlagSettings maps the import flags that belong to a group of
// source settings to that group; the other flags apply to every kind.
var importFlagSettings = map[string]sources.Setting{
	"server": sources.SetServer, "tls": sources.SetServer, "allow-cleartext": sources.SetServer,
	"insecure-skip-verify": sources.SetServer, "tls-server-name": sources.SetServer,
	"password-env": sources.SetLogin, "password-file": sources.SetLogin, "master-user": sources.SetLogin,
	"master-form": sources.SetLogin, "auth": sources.SetLogin, "token-env": sources.SetLogin, "token-file": sources.SetLogin,
	"no-compress": sources.SetCompress, "path": sources.SetPath,
	"include": sources.SetScope, "exclude": sources.SetScope, "subscribed-only": sources.SetScope, "include-deleted": sources.SetScope,
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
