// Command democheck is the quickstart demo's independent check (demo.sh,
// docs/demo.md). It reads the plan like mailmig does and talks plain IMAP to
// each account's source and target backends with the account's own
// password, never through mailmig.
//
//	democheck -f DIR reset            empty the plan's accounts on both sides
//	democheck -f DIR seed-data        events, contacts, Sieve scripts on the sources
//	democheck -f DIR check -delivered FILE
//
// reset deletes every message and user folder of the plan's accounts on the
// source and the target, so that the demo can run again on a kept set of
// test servers (and, where the account's data has them, every event,
// contact and Sieve script, data.go); it refuses backends that are not on
// 127.0.0.1. seed-data puts a few events, contacts and two Sieve scripts
// (one active) on each account's source, for the kinds its data names.
//
// check compares the accounts message by message (Message-ID per folder):
// everything still on the source must be on the target exactly as often,
// every message of FILE (lines "PHASE ACCOUNT MESSAGE-ID", written by the
// demo for each delivery through the proxy that was accepted) must be on
// the target exactly once, and the target must hold nothing else. Then,
// for each kind of the account's data besides mail, the events, contacts
// and Sieve scripts on the target must be those on the source (data.go
// says how they are compared). It prints one line per account (and per
// kind) and exits 1 on any difference.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/plan"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("democheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	planPath := fs.String("f", ".", "the plan: a file or a directory of *.hcl files")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: democheck [-f PLAN] reset | seed-data | check -delivered FILE")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	m, diags := plan.Load(*planPath)
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "democheck: the plan does not load: %v\n", diags)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	switch cmd, rest := fs.Arg(0), fs.Args()[1:]; cmd {
	case "reset":
		err = reset(ctx, m, stdout)
		if err == nil {
			err = resetData(ctx, m, stdout)
		}
	case "seed-data":
		err = seedData(ctx, m, stdout)
	case "check":
		cf := flag.NewFlagSet("check", flag.ContinueOnError)
		cf.SetOutput(stderr)
		delivered := cf.String("delivered", "", "file of accepted deliveries: PHASE ACCOUNT MESSAGE-ID per line")
		if err := cf.Parse(rest); err != nil {
			return 2
		}
		err = check(ctx, m, *delivered, stdout)
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "democheck:", err)
		return 1
	}
	return 0
}

// side is one account on one backend, reached over plain IMAP.
type side struct {
	backend, addr, login, password string
}

// sides returns the account's source and target.
func sides(m *plan.Migration, a *plan.Account) (src, dst side, err error) {
	if !a.Password.IsSet() {
		return src, dst, fmt.Errorf("%s has no password_ref: democheck logs in as the user", a.Address)
	}
	mk := func(name, login string) (side, error) {
		b := m.Backend(name)
		if b == nil {
			return side{}, fmt.Errorf("backend %s is not in the plan", name)
		}
		ep := b.Endpoint(plan.ProtoIMAP)
		if ep == nil {
			return side{}, fmt.Errorf("backend %s has no imap endpoint", name)
		}
		if host, _, err := net.SplitHostPort(ep.Address); err != nil || host != "127.0.0.1" {
			return side{}, fmt.Errorf("backend %s is at %s: democheck only touches test servers on 127.0.0.1", name, ep.Address)
		}
		if login == "" {
			login = a.Address
		}
		return side{backend: name, addr: ep.Address, login: login, password: a.Password.Reveal()}, nil
	}
	if src, err = mk(a.From, a.SourceLogin); err != nil {
		return
	}
	dst, err = mk(a.To, a.TargetLogin)
	return
}

func (s side) dial(ctx context.Context) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(s.addr, nil)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", s.backend, s.addr, err)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	if err := c.Login(s.login, s.password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: login as %s: %w", s.backend, s.login, err)
	}
	return c, nil
}

// folder is a mailbox as LIST reports it.
type folder struct {
	name  string // as the server spells it
	path  string // components joined with "/"
	depth int
}

func listFolders(c *imapclient.Client) ([]folder, error) {
	data, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	var out []folder
	for _, d := range data {
		noselect := false
		for _, a := range d.Attrs {
			noselect = noselect || a == imap.MailboxAttrNoSelect || a == imap.MailboxAttrNonExistent
		}
		if noselect {
			continue
		}
		parts := []string{d.Mailbox}
		if d.Delim != 0 {
			parts = strings.Split(d.Mailbox, string(d.Delim))
		}
		if strings.EqualFold(parts[0], "INBOX") && len(parts) > 1 {
			parts = parts[1:] // Cyrus: INBOX.Sent is Sent
		}
		out = append(out, folder{name: d.Mailbox, path: strings.Join(parts, "/"), depth: len(parts)})
	}
	return out, nil
}

// contents maps folder path → Message-ID → how many messages carry it
// (\Deleted ones left out).
type contents map[string]map[string]int

func (s side) contents(ctx context.Context) (contents, error) {
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	folders, err := listFolders(c)
	if err != nil {
		return nil, err
	}
	out := contents{}
	for _, f := range folders {
		sel, err := c.Select(f.name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("%s: SELECT %s: %w", s.backend, f.name, err)
		}
		ids := map[string]int{}
		out[f.path] = ids
		if sel.NumMessages == 0 {
			continue
		}
		var set imap.SeqSet
		set.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(set, &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
		if err != nil {
			return nil, fmt.Errorf("%s: FETCH in %s: %w", s.backend, f.name, err)
		}
		for _, m := range msgs {
			deleted := false
			for _, fl := range m.Flags {
				deleted = deleted || fl == imap.FlagDeleted
			}
			if !deleted && m.Envelope != nil {
				ids[m.Envelope.MessageID]++
			}
		}
	}
	_ = c.Logout().Wait()
	return out, nil
}

func (c contents) total() int {
	n := 0
	for _, ids := range c {
		for _, k := range ids {
			n += k
		}
	}
	return n
}

// empty deletes every user folder and expunges every message that is left.
func (s side) empty(ctx context.Context) (int, error) {
	c, err := s.dial(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	folders, err := listFolders(c)
	if err != nil {
		return 0, err
	}
	sort.Slice(folders, func(i, j int) bool { return folders[i].depth > folders[j].depth }) // children first
	n := 0
	for _, f := range folders {
		sel, err := c.Select(f.name, nil).Wait()
		if err != nil {
			return n, fmt.Errorf("%s: SELECT %s: %w", s.backend, f.name, err)
		}
		n += int(sel.NumMessages)
		if sel.NumMessages > 0 {
			var set imap.SeqSet
			set.AddRange(1, sel.NumMessages)
			if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return n, fmt.Errorf("%s: STORE in %s: %w", s.backend, f.name, err)
			}
			if err := c.Expunge().Close(); err != nil {
				return n, fmt.Errorf("%s: EXPUNGE in %s: %w", s.backend, f.name, err)
			}
		}
		if err := c.Unselect().Wait(); err != nil {
			return n, fmt.Errorf("%s: UNSELECT: %w", s.backend, err)
		}
		if strings.EqualFold(f.name, "INBOX") {
			continue
		}
		// Special-use folders may refuse deletion; their messages are gone.
		_ = c.Delete(f.name).Wait()
	}
	// DELETE keeps a folder's subscription (RFC 3501), and a mailbox created
	// again under that name would come back subscribed: drop subscriptions
	// of folders that no longer exist.
	left, err := c.List("", "*", nil).Collect()
	if err != nil {
		return n, fmt.Errorf("%s: LIST: %w", s.backend, err)
	}
	exists := map[string]bool{}
	for _, d := range left {
		exists[d.Mailbox] = true
	}
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		return n, fmt.Errorf("%s: LIST (SUBSCRIBED): %w", s.backend, err)
	}
	for _, d := range subs {
		if !exists[d.Mailbox] {
			if err := c.Unsubscribe(d.Mailbox).Wait(); err != nil {
				return n, fmt.Errorf("%s: UNSUBSCRIBE %s: %w", s.backend, d.Mailbox, err)
			}
		}
	}
	_ = c.Logout().Wait()
	return n, nil
}

func reset(ctx context.Context, m *plan.Migration, w io.Writer) error {
	for _, a := range m.Accounts {
		src, dst, err := sides(m, a)
		if err != nil {
			return err
		}
		for _, s := range []side{src, dst} {
			n, err := s.empty(ctx)
			if err != nil {
				return err
			}
			if n > 0 {
				fmt.Fprintf(w, "emptied %s on %s (%d messages from an earlier run)\n", a.Address, s.backend, n)
			}
		}
	}
	return nil
}

// delivery is one accepted delivery through the proxy.
type delivery struct{ phase, account, id string }

func readDelivered(path string) ([]delivery, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []delivery
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s: malformed line %q (want PHASE ACCOUNT MESSAGE-ID)", path, sc.Text())
		}
		out = append(out, delivery{fields[0], strings.ToLower(fields[1]), strings.Trim(fields[2], "<>")})
	}
	return out, sc.Err()
}

func check(ctx context.Context, m *plan.Migration, deliveredPath string, w io.Writer) error {
	delivered, err := readDelivered(deliveredPath)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tON SOURCE\tDELIVERED THROUGH THE PROXY\tON TARGET\tRESULT")
	var problems []string
	for _, a := range m.Accounts {
		src, dst, err := sides(m, a)
		if err != nil {
			return err
		}
		onSrc, err := src.contents(ctx)
		if err != nil {
			return err
		}
		onDst, err := dst.contents(ctx)
		if err != nil {
			return err
		}
		want := contents{}
		for p, ids := range onSrc {
			want[p] = map[string]int{}
			for id, n := range ids {
				want[p][id] = n
			}
		}
		// A delivery accepted before the flip is on the source (and must be
		// on the target once); one after the flip is only on the target.
		perPhase := map[string]int{}
		var phases []string
		for _, d := range delivered {
			if d.account != strings.ToLower(a.Address) {
				continue
			}
			if perPhase[d.phase] == 0 {
				phases = append(phases, d.phase)
			}
			perPhase[d.phase]++
			if want["INBOX"] == nil {
				want["INBOX"] = map[string]int{}
			}
			switch n := want["INBOX"][d.id]; {
			case n == 0:
				want["INBOX"][d.id] = 1
			case n > 1:
				problems = append(problems, fmt.Sprintf("%s: %s is %d times in the source INBOX", a.Address, d.id, n))
			}
		}
		var diffs []string
		for _, p := range sortedKeys(want, onDst) {
			for _, id := range sortedKeys(want[p], onDst[p]) {
				if got, exp := onDst[p][id], want[p][id]; got != exp {
					diffs = append(diffs, fmt.Sprintf("%s: %s/<%s> is %d times on %s, want %d", a.Address, p, id, got, dst.backend, exp))
				}
			}
		}
		var byPhase []string
		for _, p := range phases {
			byPhase = append(byPhase, fmt.Sprintf("%s %d", p, perPhase[p]))
		}
		result := "ok: every message on the target exactly once, nothing left behind"
		if len(diffs) > 0 {
			result = fmt.Sprintf("%d DIFFERENCES", len(diffs))
			problems = append(problems, diffs...)
		}
		nDel := 0
		for _, n := range perPhase {
			nDel += n
		}
		fmt.Fprintf(tw, "%s\t%d in %d folders\t%d (%s)\t%d\t%s\n", a.Address, onSrc.total(), len(onSrc), nDel, strings.Join(byPhase, ", "), onDst.total(), result)
	}
	tw.Flush()
	// Calendars, contacts and Sieve scripts, where the accounts' data has them.
	dw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, a := range m.Accounts {
		diffs, err := checkData(ctx, m, a, func(kind, src, dst, result string) {
			if !header {
				fmt.Fprintln(dw, "\nACCOUNT\tKIND\tON SOURCE\tON TARGET\tRESULT")
				header = true
			}
			fmt.Fprintf(dw, "%s\t%s\t%s\t%s\t%s\n", a.Address, kind, src, dst, result)
		})
		if err != nil {
			return err
		}
		problems = append(problems, diffs...)
	}
	dw.Flush()
	if len(problems) > 0 {
		for i, p := range problems {
			if i == 20 {
				fmt.Fprintf(w, "… and %d more\n", len(problems)-20)
				break
			}
			fmt.Fprintln(w, "  "+p)
		}
		return errors.New("the target does not hold exactly the migrated and delivered mail, events, contacts and scripts")
	}
	return nil
}

// sortedKeys returns the union of the maps' keys, sorted.
func sortedKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
