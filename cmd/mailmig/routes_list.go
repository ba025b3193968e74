package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/mailmig/mailmig/proxy/routes"
)

func listRoutes(w io.Writer, t *routes.Table, asJSON bool) int {
	rs := t.Routes()
	aliases := t.Aliases()
	if asJSON {
		if rs == nil {
			rs = []routes.Route{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(routesView{Routes: rs, Aliases: aliases, Default: t.Default, Domains: t.Domains()})
		return exitOK
	}
	if len(rs) == 0 {
		fmt.Fprintln(w, "No routes.")
	} else {
		byAcct := map[string][]string{}
		for id, acct := range aliases {
			byAcct[acct] = append(byAcct[acct], id)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tBACKEND\tSTATE\tGENERATION\tALIASES")
		for _, r := range rs {
			a := byAcct[r.Account]
			slices.Sort(a)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Account, r.Backend, r.State, r.Generation, strings.Join(a, " "))
		}
		tw.Flush()
	}
	if t.Default != "" {
		fmt.Fprintf(w, "Default backend: %s\n", t.Default)
	}
	if d := t.Domains(); len(d) > 0 {
		fmt.Fprintf(w, "Known domains: %s\n", strings.Join(d, " "))
	}
	return exitOK
}
