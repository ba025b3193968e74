package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
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

// proxiesView is the JSON form of "routes proxies".
type proxiesView struct {
	// Change is the route table's last change number.
	Change int64 `json:"change"`
	// Pending is how many accounts are marked for a cut-over ahead, and
	// PendingChange the change number of the newest mark.
	Pending       int              `json:"pending"`
	PendingChange int64            `json:"pending_change,omitempty"`
	Proxies       []pgroutes.Proxy `json:"proxies"`
}

func listProxies(w io.Writer, ps []pgroutes.Proxy, seq int64, pending int, pendingSeq int64, asJSON bool) int {
	if asJSON {
		if ps == nil {
			ps = []pgroutes.Proxy{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(proxiesView{Change: seq, Pending: pending, PendingChange: pendingSeq, Proxies: ps})
		return exitOK
	}
	fmt.Fprintf(w, "Route table at change %d.\n", seq)
	if pending > 0 {
		fmt.Fprintf(w, "%d account(s) pending a cut-over, the last marked at change %d: a proxy out of contact that had applied it holds none of their cut-overs up.\n", pending, pendingSeq)
	}
	if len(ps) == 0 {
		fmt.Fprintln(w, "No proxies registered.")
		return exitOK
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tSTATUS\tAPPLIED\tLAG\tLAST HEARTBEAT\tADDRESS")
	for _, p := range ps {
		status := "live"
		if !p.Live {
			status = "dead (lease " + p.Lease.String() + " expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", p.ID, status, p.Applied, p.Lag, p.Heartbeat.Format(time.RFC3339), p.Address)
	}
	tw.Flush()
	return exitOK
}
