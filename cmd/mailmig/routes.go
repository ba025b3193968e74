package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

const routesHelp = `Usage: mailmig [global options] routes [options] <subcommand> [args]

  Shows and edits the proxy's route table (the plan's routes block). Every
  running proxy follows a change within a second; a flip or freeze ends the
  account's open sessions so that clients reconnect and follow. So does
  re-pointing an alias ("alias add" of an existing alias), removing one, or
  a new default backend, for the sessions it moves.

Subcommands:
  list                          Every route, with aliases, default and domains.
  set ACCOUNT BACKEND           Route ACCOUNT to BACKEND (creates the route).
  freeze ACCOUNT                Freeze: deliveries get 4xx, logins are held.
  unfreeze ACCOUNT              Make the route active again.
  delete ACCOUNT                Remove the route and its aliases.
  alias add IDENTIFIER ACCOUNT  Let another login form follow ACCOUNT's route
                                (an existing alias is re-pointed).
  alias rm IDENTIFIER           Remove a login alias.
  default [BACKEND]             Show or set the backend for unknown accounts
                                ("-" removes it).
  domain add|rm DOMAIN...       Accept mail for DOMAIN (SMTP relay control).
  import FILE                   Load a Stalwart proxy map (identifier<TAB>backend).
  export [FILE]                 Write the table as a Stalwart proxy map.
  proxies                       The proxies following a route table in
                                PostgreSQL: live or not, the last change
                                each applied and how far behind it is.
  proxies -forget ID            Remove a proxy that is gone for good (not
                                live) from the registry, so that cut-overs
                                stop waiting for it.

Options:
  -db FILE   Route table file; overrides the plan (no plan is read then).
  -json      list: print JSON.
  -forget ID proxies: remove proxy ID from the registry (journaled).

Edits with a plan take the state lock, like apply, so they never interleave
with a running apply, and each is recorded in the journal (who, what, when);
with -db only SQLite's own locking applies and nothing is journaled.
`

// routesView is the JSON form of "routes list".
type routesView struct {
	Routes  []routes.Route    `json:"routes"`
	Aliases map[string]string `json:"aliases"`
	Default string            `json:"default,omitempty"`
	Domains []string          `json:"domains"`
}

func runRoutes(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("routes", routesHelp, s)
	db := fs.String("db", "", "")
	jsonOut := fs.Bool("json", false, "")
	forget := fs.String("forget", "", "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintf(s.Err, "Error: routes needs a subcommand.\n\nRun \"mailmig routes -h\" for help.\n")
		return exitError
	}
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	sub := rest[0]
	// Options may also follow the subcommand ("routes list -json").
	if code, done := parseFlags(fs, rest[1:], s); done {
		return code
	}
	subArgs := fs.Args()
	// routes list -json and routes export write documents that carry no
	// warnings.
	machineOutput(v, false, *jsonOut || sub == "export")
	want := map[string][2]int{ // subcommand → min, max arguments
		"list": {0, 0}, "set": {2, 2}, "freeze": {1, 1}, "unfreeze": {1, 1}, "delete": {1, 1},
		"alias": {2, 3}, "default": {0, 1}, "domain": {2, 1 << 20}, "import": {1, 1}, "export": {0, 1},
		"proxies": {0, 0},
	}
	n, ok := want[sub]
	if !ok {
		fmt.Fprintf(s.Err, "Error: unknown routes subcommand %q.\n\nRun \"mailmig routes -h\" for help.\n", sub)
		return exitError
	}
	if len(subArgs) < n[0] || len(subArgs) > n[1] {
		fmt.Fprintf(s.Err, "Error: wrong number of arguments for routes %s.\n\nRun \"mailmig routes -h\" for help.\n", sub)
		return exitError
	}
	write := sub != "list" && sub != "export" && (sub != "proxies" || *forget != "") && !(sub == "default" && len(subArgs) == 0)

	// The table: -db, else the plan's routes block.
	var m *plan.Migration
	var st routes.DB
	if path := *db; path != "" {
		if sub == "proxies" {
			fmtErr(v, "No fleet", errors.New("a SQLite route table has no registered proxies; proxies register in a route table in PostgreSQL (routes { postgres = \"…\" })"))
			return exitError
		}
		if !write {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				fmtErr(v, "No route table", fmt.Errorf("%s does not exist yet; \"mailmig routes set\" or \"mailmig apply\" creates it", path))
				return exitError
			}
		}
		lite, err := routes.Open(ctx, path)
		if err != nil {
			fmtErr(v, "Cannot open the route table", err)
			return exitError
		}
		st = lite
	} else {
		var ok bool
		m, ok = loadPlanReadOnly(g, v)
		if !ok {
			return exitError
		}
		if write {
			release, ok := lockState(v, m, "routes "+sub)
			if !ok {
				return exitError
			}
			defer release()
		}
		var err error
		if st, err = openRouteDB(ctx, m, write); err != nil {
			fmtErr(v, "Cannot open the route table", err)
			return exitError
		}
		if st == nil {
			what := "does not exist yet"
			if m.Routes.Postgres != nil {
				what = "has no mailmig schema yet"
			}
			fmtErr(v, "No route table", fmt.Errorf("%s %s; \"mailmig routes set\" or \"mailmig apply\" creates it", routeTableName(m), what))
			return exitError
		}
	}
	defer st.Close()

	checkBackend := func(name string) bool {
		if m == nil || m.Backend(name) != nil {
			return true
		}
		var names []string
		for _, b := range m.Backends {
			names = append(names, b.Name)
		}
		fmtErr(v, "Unknown backend", fmt.Errorf("the plan has no backend %q (it has: %s)", name, strings.Join(names, ", ")))
		return false
	}
	printRoute := func(r routes.Route) {
		fmt.Fprintf(s.Out, "%s → %s (%s, generation %d)\n", r.Account, r.Backend, r.State, r.Generation)
	}
	fail := func(summary string, err error) int {
		fmtErr(v, summary, err)
		return exitError
	}

	switch sub {
	case "list":
		t, err := st.Snapshot(ctx)
		if err != nil {
			return fail("Cannot read the route table", err)
		}
		return listRoutes(s.Out, t, *jsonOut)
	case "proxies":
		pg, ok := st.(*pgroutes.Store)
		if !ok {
			return fail("No fleet", errors.New("a SQLite route table has no registered proxies; proxies register in a route table in PostgreSQL (routes { postgres = \"…\" })"))
		}
		if *forget != "" {
			return forgetProxy(ctx, g, v, s, m, pg, *forget)
		}
		ps, seq, err := pg.Proxies(ctx)
		if err != nil {
			return fail("Cannot read the proxies", err)
		}
		n, last, err := pg.PendingSummary(ctx)
		if err != nil {
			return fail("Cannot read the proxies", err)
		}
		return listProxies(s.Out, ps, seq, n, last, *jsonOut)
	case "set":
		if !checkBackend(subArgs[1]) {
			return exitError
		}
		r, err := st.Set(ctx, subArgs[0], subArgs[1])
		if err != nil {
			return fail("Cannot set the route", err)
		}
		printRoute(r)
		return journalRouteEdit(g, v, s, m, state.Record{Action: sub, Account: r.Account, Backend: r.Backend})
	case "freeze", "unfreeze":
		f := st.Freeze
		if sub == "unfreeze" {
			f = st.Unfreeze
		}
		r, err := f(ctx, subArgs[0])
		if err != nil {
			return fail("Cannot "+sub+" the route", err)
		}
		printRoute(r)
		return journalRouteEdit(g, v, s, m, state.Record{Action: sub, Account: r.Account, Backend: r.Backend})
	case "delete":
		if err := st.Delete(ctx, subArgs[0]); err != nil {
			return fail("Cannot delete the route", err)
		}
		fmt.Fprintf(s.Out, "Deleted the route of %s.\n", routes.Normalize(subArgs[0]))
		return journalRouteEdit(g, v, s, m, state.Record{Action: sub, Account: routes.Normalize(subArgs[0])})
	case "alias":
		switch {
		case subArgs[0] == "add" && len(subArgs) == 3:
			if err := st.AddAlias(ctx, subArgs[1], subArgs[2]); err != nil {
				return fail("Cannot add the alias", err)
			}
			fmt.Fprintf(s.Out, "%s now follows the route of %s.\n", routes.Normalize(subArgs[1]), routes.Normalize(subArgs[2]))
			return journalRouteEdit(g, v, s, m, state.Record{Action: "alias add", Account: routes.Normalize(subArgs[2]), Note: "alias " + routes.Normalize(subArgs[1])})
		case subArgs[0] == "rm" && len(subArgs) == 2:
			if err := st.RemoveAlias(ctx, subArgs[1]); err != nil {
				return fail("Cannot remove the alias", err)
			}
			fmt.Fprintf(s.Out, "Removed the alias %s.\n", routes.Normalize(subArgs[1]))
			return journalRouteEdit(g, v, s, m, state.Record{Action: "alias rm", Note: "alias " + routes.Normalize(subArgs[1])})
		default:
			fmt.Fprintf(s.Err, "Error: use \"routes alias add IDENTIFIER ACCOUNT\" or \"routes alias rm IDENTIFIER\".\n")
			return exitError
		}
	case "default":
		if len(subArgs) == 0 {
			t, err := st.Snapshot(ctx)
			if err != nil {
				return fail("Cannot read the route table", err)
			}
			if t.Default == "" {
				fmt.Fprintln(s.Out, "No default backend: logins of unknown accounts are refused.")
			} else {
				fmt.Fprintf(s.Out, "Default backend: %s\n", t.Default)
			}
			return exitOK
		}
		b := subArgs[0]
		if b == "-" {
			b = ""
		} else if !checkBackend(b) {
			return exitError
		}
		if err := st.SetDefault(ctx, b); err != nil {
			return fail("Cannot set the default backend", err)
		}
		if b == "" {
			fmt.Fprintln(s.Out, "Removed the default backend.")
			return journalRouteEdit(g, v, s, m, state.Record{Action: "default", Note: "removed"})
		}
		fmt.Fprintf(s.Out, "Default backend: %s\n", b)
		return journalRouteEdit(g, v, s, m, state.Record{Action: "default", Backend: b})
	case "domain":
		switch subArgs[0] {
		case "add":
			if err := st.AddDomains(ctx, subArgs[1:]...); err != nil {
				return fail("Cannot add the domains", err)
			}
		case "rm":
			for i, d := range subArgs[1:] {
				if err := st.RemoveDomain(ctx, d); err != nil {
					// The domains before d are gone: the journal says so
					// before the error is reported.
					if i > 0 {
						journalRouteEdit(g, v, s, m, state.Record{Action: "domain rm", Note: strings.Join(subArgs[1:1+i], " ")})
					}
					return fail("Cannot remove the domain", err)
				}
			}
		default:
			fmt.Fprintf(s.Err, "Error: use \"routes domain add DOMAIN...\" or \"routes domain rm DOMAIN...\".\n")
			return exitError
		}
		fmt.Fprintf(s.Out, "Domains updated.\n")
		return journalRouteEdit(g, v, s, m, state.Record{Action: "domain " + subArgs[0], Note: strings.Join(subArgs[1:], " ")})
	case "import":
		f, err := os.Open(subArgs[0])
		if err != nil {
			return fail("Cannot read the map", err)
		}
		ms, err := routes.ReadMapping(f)
		f.Close()
		if err != nil {
			return fail("Cannot read the map", fmt.Errorf("%s: %w", subArgs[0], err))
		}
		for _, mp := range ms {
			if !checkBackend(mp.Destination) {
				return exitError
			}
		}
		n, err := st.ImportMapping(ctx, ms)
		if err != nil {
			return fail("Cannot import the map", err)
		}
		fmt.Fprintf(s.Out, "Imported %d routes.\n", n)
		return journalRouteEdit(g, v, s, m, state.Record{Action: "import", Note: fmt.Sprintf("%s: %d routes", subArgs[0], n)})
	case "export":
		ms, err := st.ExportMapping(ctx)
		if err != nil {
			return fail("Cannot export the map", err)
		}
		out := s.Out
		if len(subArgs) == 1 {
			f, err := os.Create(subArgs[0])
			if err != nil {
				return fail("Cannot write the map", err)
			}
			defer f.Close()
			out = f
		}
		if err := routes.WriteMapping(out, ms); err != nil {
			return fail("Cannot write the map", err)
		}
	}
	return exitOK
}
