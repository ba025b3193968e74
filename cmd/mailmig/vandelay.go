package main

// The "mailmig vandelay" commands: argument parsing and output only; the
// work is the vandelay library's (vandelay.Import, vandelay.Export,
// verify.Source/Target) and the output is package views'.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// vandelayCommands is the table of "mailmig vandelay" subcommands. Each
// subcommand lives in its own file and adds one line here.
var vandelayCommands = map[string]command{
	"import":         {synopsis: "Import an account's mail (imap, pop3, jmap, maildir, takeout) into an archive", run: runVandelayImport},
	"inspect":        {synopsis: "Show an archive's mailboxes, messages and runs", run: runVandelayInspect},
	"export":         {synopsis: "Export an archive onto a JMAP server (convergent; --dry-run, --prune)", run: runVandelayExport},
	"export-caldav":  {synopsis: "Export an archive's calendars onto a CalDAV server (convergent; --dry-run)", run: runVandelayExportCalDAV},
	"export-carddav": {synopsis: "Export an archive's address books onto a CardDAV server (convergent; --dry-run)", run: runVandelayExportCardDAV},
	"export-webdav":  {synopsis: "Export an archive's file trees onto a WebDAV folder (convergent; --dry-run, --verify)", run: runVandelayExportWebDAV},
	"export-imap":    {synopsis: "Export an archive's mail onto an IMAP server (convergent; IMAP → IMAP through the archive)", run: runVandelayExportIMAP},
	"export-sieve":   {synopsis: "Export an archive's Sieve scripts onto a ManageSieve server (convergent; --dry-run)", run: runVandelayExportSieve},
	"verify":         {synopsis: "Compare an archive with its JMAP target (counts, hashes, keywords, mailboxes)", run: runVandelayVerify},

	// The JMAP-standard data kinds (vandelay_jmap*.go).
	"export-jmap-contacts": {synopsis: "Export an archive's address books onto a JMAP server as JSContact cards (RFC 9610; convergent; --dry-run, --verify)", run: runVandelayExportJMAPContacts},
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
	v := views.New(s.Out, s.Err, false)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		vandelayUsage(s.Out)
		if len(args) == 0 {
			return exitVandelayUsage
		}
		return exitOK
	}
	c, ok := vandelayCommands[args[0]]
	if !ok {
		v.Errorf("unknown vandelay command %q.\n", args[0])
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
		fmt.Fprintf(w, "  %-12s %s\n", n, vandelayCommands[n].synopsis)
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

// readLoginSecret fills cfg.Token for the OAuth mechanisms, else
// cfg.Password (the master's when cfg.MasterUser is set), from the
// --token-env/--token-file or --password-env/--password-file flags.
func readLoginSecret(cfg *sources.Spec, passEnv, passFile, tokenEnv, tokenFile string, s Streams) error {
	var err error
	if strings.EqualFold(cfg.Auth, vandelay.AuthXOAUTH2) || strings.EqualFold(cfg.Auth, vandelay.AuthOAuthBearer) ||
		strings.EqualFold(cfg.Auth, vandelay.AuthBearer) {
		cfg.Token, err = readSecret("access token", tokenEnv, tokenFile, s)
		return err
	}
	what := "password"
	if cfg.MasterUser != "" {
		what = "master password"
	}
	cfg.Password, err = readSecret(what, passEnv, passFile, s)
	return err
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
	if what == "client secret" {
		return "client-secret"
	}
	if strings.Contains(what, "token") {
		return "token"
	}
	return "password"
}

// parseArchiveArgs parses the flags of a vandelay subcommand that takes
// exactly one ARCHIVE argument; done is true when the command must return
// code at once (help shown, or a usage error reported).
func parseArchiveArgs(fs *flag.FlagSet, args []string, s Streams) (code int, done bool) {
	v := views.New(s.Out, s.Err, false)
	if code, done := parseVandelayFlags(fs, args, s); done {
		return code, true
	}
	if fs.NArg() != 1 {
		v.Errorf("want exactly one ARCHIVE argument after the flags, got %d.", fs.NArg())
		return exitVandelayUsage, true
	}
	return exitOK, false
}

// parseVandelayFlags parses args like parseFlags does for the other
// commands: -h prints the flag set's usage to standard output and exits
// 0; a bad flag is one short error on standard error (exit usage).
func parseVandelayFlags(fs *flag.FlagSet, args []string, s Streams) (code int, done bool) {
	v := views.New(s.Out, s.Err, false)
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
		v.Errorf("%v\n\nRun \"mailmig %s -h\" for its options.", err, fs.Name())
		return exitVandelayUsage, true
	}
	fs.SetOutput(s.Err)
	return exitOK, false
}

// targetLogin holds the flags with which an export command logs in to a
// target server as the account (or as a master user for it), those
// that do not land in the Spec directly.
type targetLogin struct {
	tls, passEnv, passFile, tokenEnv, tokenFile *string
}

// addTargetLogin registers the server and login flags of an export
// command on fs, filling o: proto names the server ("IMAP",
// "ManageSieve"), user describes --user.
func addTargetLogin(fs *flag.FlagSet, o *sources.Spec, proto, user string) *targetLogin {
	t := &targetLogin{}
	fs.StringVar(&o.Address, "server", "", "target "+proto+" server `host:port`")
	t.tls = fs.String("tls", "implicit", "transport: implicit, starttls or none (none needs --allow-cleartext)")
	fs.BoolVar(&o.AllowCleartext, "allow-cleartext", false, "allow credentials over a connection without TLS")
	fs.BoolVar(&o.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the server certificate (test servers only)")
	fs.StringVar(&o.ServerName, "tls-server-name", "", "TLS server name (default: the host of --server)")
	fs.StringVar(&o.User, "user", "", user)
	t.passEnv = fs.String("password-env", "", "read the password from environment variable `VAR`")
	t.passFile = fs.String("password-file", "", "read the password from `FILE`")
	fs.StringVar(&o.MasterUser, "master-user", "", "log in as this master/admin user on --user's behalf (the password is the master's)")
	fs.StringVar(&o.MasterForm, "master-form", "authzid", "master login form: authzid (SASL PLAIN, Cyrus) or star (user*master, Dovecot)")
	t.tokenEnv = fs.String("token-env", "", "read the OAuth access token from environment variable `VAR`")
	t.tokenFile = fs.String("token-file", "", "read the OAuth access token from `FILE`")
	return t
}

// finish completes o after parsing: the TLS mode, the required flags and
// the secret. A usage error is written to v; false means stop with
// exitVandelayUsage.
func (t *targetLogin) finish(o *sources.Spec, v *views.View, s Streams) bool {
	o.TLS = vandelay.TLSMode(*t.tls)
	if o.Address == "" || o.User == "" {
		v.Errorf("--server and --user are required.")
		return false
	}
	if err := readLoginSecret(o, *t.passEnv, *t.passFile, *t.tokenEnv, *t.tokenFile, s); err != nil {
		v.Errorf("%v", err)
		return false
	}
	return true
}

// davLogin is the login flags of an export onto an HTTP DAV server
// (export-caldav, export-carddav, export-webdav): no STARTTLS, master user
// or OAuth there.
type davLogin struct{ tls, passEnv, passFile *string }

// addDAVLogin registers the DAV target's server and login flags on fs.
func addDAVLogin(fs *flag.FlagSet, o *sources.Spec, proto, user string) *davLogin {
	t := &davLogin{}
	fs.StringVar(&o.Address, "server", "", "target "+proto+" server `host:port`")
	t.tls = fs.String("tls", "implicit", "transport: implicit (https) or none (http, needs --allow-cleartext)")
	fs.BoolVar(&o.AllowCleartext, "allow-cleartext", false, "allow credentials over a connection without TLS")
	fs.StringVar(&o.User, "user", "", user)
	t.passEnv = fs.String("password-env", "", "read the password from environment variable `VAR`")
	t.passFile = fs.String("password-file", "", "read the password from `FILE`")
	return t
}

// finish completes o after parsing, like targetLogin.finish.
func (t *davLogin) finish(o *sources.Spec, v *views.View, s Streams) bool {
	o.TLS = vandelay.TLSMode(*t.tls)
	if o.Address == "" || o.User == "" {
		v.Errorf("--server and --user are required.")
		return false
	}
	var err error
	if o.Password, err = readSecret("password", *t.passEnv, *t.passFile, s); err != nil {
		v.Errorf("%v", err)
		return false
	}
	return true
}
