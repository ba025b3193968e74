// Command mailmig moves a populated mail system onto a JMAP server one account
// at a time: vandelay moves the data, the proxy moves the traffic, and the
// engine runs the migration from a declarative HCL plan.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
)

// Streams are the standard streams a command writes to. Tests substitute
// buffers; nothing below main touches os.Stdout directly.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// command is one entry of the subcommand table.
type command struct {
	// synopsis is the one-line help shown by "mailmig -h".
	synopsis string
	// run executes the command with the arguments after its name and
	// returns the process exit code.
	run func(ctx context.Context, g *globals, args []string, s Streams) int
}

// commands is the subcommand table. Every entry does real work; commands
// arrive here with the issue that implements them.
var commands = map[string]command{
	"version":  {synopsis: "Print the mailmig version", run: runVersion},
	"vandelay": {synopsis: "Import, export and inspect one account's data (archive)", run: runVandelay},
	"validate": {synopsis: "Check the plan for errors", run: runValidate},
	"fmt":      {synopsis: "Rewrite plan files in the canonical format", run: runFmt},
	"plan":     {synopsis: "Show what apply would do now (changes per wave, with reasons)", run: runPlan},
	"apply":    {synopsis: "Carry out the changes: import, catch up, cut over, in waves", run: runApply},
	"show":     {synopsis: "Show saved changes, or the state of every account", run: runShow},
	"state":    {synopsis: "Inspect the state: list, show, lock, force-unlock, release", run: runState},
	"journal":  {synopsis: "Show the journal's history, or verify its hash chain", run: runJournal},
	"rollback": {synopsis: "Route a cut-over account back to its source", run: runRollback},
	"routes":   {synopsis: "Show and edit the proxy's route table: set, freeze, aliases", run: runRoutes},
	"proxy":    {synopsis: "Run the protocol proxy from the plan's proxy block", run: runProxy},
	"report":   {synopsis: "Write the migration's report (Markdown with timelines, CSV, JSON)", run: runReport},
}

// Exit codes shared by every subcommand.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // only "plan -detailed-exitcode"
	// exitAttention: "plan -detailed-exitcode" found a halted wave, a
	// drifted route or an open circuit breaker.
	exitAttention = 3
)

// exitAborted is the exit code after a second Ctrl-C (128 + SIGINT).
const exitAborted = 130

func main() {
	// Two-phase stop (STYLE.md): the first signal cancels stop — nothing
	// new starts, running actions finish, state is persisted; the second
	// cancels abort, the context that running actions use, so that they
	// end now and the deferred clean-up (journal records, lock release)
	// still runs before the process exits 130. A command that does not use
	// the abort context, and a third signal, exit at once.
	stop, cancelStop := context.WithCancel(context.Background())
	abort := &aborter{}
	abort.ctx, abort.cancel = context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		stopSignal.Store(sig.String())
		cancelStop()
		<-sigs
		abort.cancel()
		if !abort.used.Load() {
			os.Exit(exitAborted)
		}
		<-sigs
		os.Exit(exitAborted)
	}()
	code := runAbortable(stop, abort, os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	if abort.ctx.Err() != nil {
		code = exitAborted
	}
	os.Exit(code)
}

// stopSignal names the signal that stopped the run ("interrupt",
// "terminated"), for the closing line.
var stopSignal atomic.Value

// stopName words what stopped a run: "Ctrl-C" for SIGINT, "SIGTERM", or
// "a stop request" when the signal is unknown (tests cancel the context).
func stopName() string {
	switch v, _ := stopSignal.Load().(string); v {
	case os.Interrupt.String():
		return "Ctrl-C"
	case syscall.SIGTERM.String():
		return "SIGTERM"
	}
	return "a stop request"
}

// aborter is the second Ctrl-C's context, handed to the commands that
// honour it (apply, rollback) through globals.Abort.
type aborter struct {
	ctx    context.Context
	cancel context.CancelFunc
	used   atomic.Bool // a command runs its actions under ctx
}

// run parses the global flags, dispatches to a subcommand and returns the
// exit code. Nothing aborts the actions of apply but ctx's end.
func run(ctx context.Context, args []string, s Streams) int {
	return runAbortable(ctx, nil, args, s)
}

// runAbortable is run with the second Ctrl-C's context (nil: none).
func runAbortable(ctx context.Context, abort *aborter, args []string, s Streams) int {
	var flush func()
	g, rest, err := parseGlobals(args, s)
	if err != nil {
		if err == errHelp {
			usage(s.Out)
			return exitOK
		}
		fmt.Fprintf(s.Err, "Error: %v\n\n", err)
		usage(s.Err)
		return exitError
	}
	if len(rest) == 0 {
		usage(s.Err)
		return exitError
	}
	name := rest[0]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(s.Err, "Error: unknown command %q.\n\n", name)
		usage(s.Err)
		return exitError
	}
	g.abort = abort
	// Once a command loads the plan (loadMigration), nothing it writes
	// shows the values the plan read from env() or file().
	s, g.hideInputs, flush = scrubStreams(s)
	defer flush()
	return cmd.run(ctx, g, rest[1:], s)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: mailmig [global options] <command> [args]\n\n")
	fmt.Fprintf(w, "mailmig moves mail accounts onto a JMAP server without downtime.\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].synopsis)
	}
	fmt.Fprintf(w, "\nGlobal options:\n%s\nRun \"mailmig <command> -h\" for a command's options.\n", strings.TrimRight(globalHelp, "\n"))
}
