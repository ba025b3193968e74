package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes"
)

// applyProxyRouting writes the proxy block's default_backend and domains
// into the route table, as the plan declares them, so that a fresh proxy
// routes unknown accounts and accepts mail for its domains; "mailmig
// routes" changes both afterwards (a restart sets the plan's default
// again; domains are only ever added here). unroutable reports a table
// that routes nothing: no route, no alias and no default backend, which
// it also logs at warn level.
func applyProxyRouting(ctx context.Context, st routes.DB, pb *plan.Proxy, log *slog.Logger) (unroutable bool, err error) {
	t, err := st.Snapshot(ctx)
	if err != nil {
		return false, fmt.Errorf("read the route table: %w", err)
	}
	if pb.DefaultBackend != "" && t.Default != pb.DefaultBackend {
		if err := st.SetDefault(ctx, pb.DefaultBackend); err != nil {
			return false, fmt.Errorf("set the default backend: %w", err)
		}
		log.Info("default backend set from the plan", "backend", pb.DefaultBackend, "previous", t.Default)
	}
	var missing []string
	for _, d := range pb.Domains {
		if !slices.Contains(t.Domains(), d) {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		if err := st.AddDomains(ctx, missing...); err != nil {
			return false, fmt.Errorf("add the plan's domains: %w", err)
		}
		log.Info("domains added from the plan", "domains", strings.Join(missing, ","))
	}
	if t, err = st.Snapshot(ctx); err != nil {
		return false, fmt.Errorf("read the route table: %w", err)
	}
	if t.Default == "" && len(t.Routes()) == 0 && len(t.Aliases()) == 0 {
		log.Warn("route table empty and no default backend: every login is refused and every inbound message bounced",
			"addr", st.Where())
		return true, nil
	}
	return false, nil
}
