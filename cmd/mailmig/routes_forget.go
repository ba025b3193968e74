package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// forgetProxy is "routes proxies -forget ID": a proxy that lost the route
// table before it saw an account's pending mark holds that account's
// cut-over at the barrier, because it may still be serving the account
// from its source. When the proxy is gone for good (a machine retired
// without a clean stop), the operator says so here; the edit is journaled
// like every route edit. A proxy that comes back registers again once it
// has caught up.
func forgetProxy(ctx context.Context, g *globals, v *views.View, s Streams, m *plan.Migration, pg *pgroutes.Store, id string) int {
	p, err := pg.ForgetProxy(ctx, id)
	if err != nil {
		fmtErr(v, "Cannot forget the proxy", err)
		return exitError
	}
	note := fmt.Sprintf("proxy %s, last heartbeat %s, applied change %d", p.ID, p.Heartbeat.Format(time.RFC3339), p.Applied)
	fmt.Fprintf(s.Out, "Forgot %s; cut-overs no longer wait for it.\n", note)
	return journalRouteEdit(g, v, s, m, state.Record{Action: "proxies -forget", Note: note})
}
