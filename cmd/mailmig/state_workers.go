package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine/state"
)

// workerView is one worker as "state workers -json" prints it.
type workerView struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"` // live, dead, stopped
	Live          bool      `json:"live"`
	Host          string    `json:"host"`
	PID           int       `json:"pid"`
	Started       time.Time `json:"started"`
	Heartbeat     time.Time `json:"heartbeat"`
	HeartbeatAgeS float64   `json:"heartbeat_age_seconds"`
	LeaseS        float64   `json:"lease_seconds"`
	Claims        []string  `json:"claims"`
	Archives      int       `json:"archives"`
}

// stateWorkers is "state workers": the apply workers registered in the
// state database, whether each is live, the accounts it holds and how
// many archives it keeps.
func stateWorkers(g *globals, v *views.View, s Streams, jsonOut bool) int {
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	if m.State.Postgres == nil {
		fmt.Fprintln(s.Out, "The state is in a directory: there are no apply workers (they need state { postgres }).")
		return exitOK
	}
	ctx := context.Background()
	b, err := openState(ctx, m, false)
	if err != nil {
		fmtErr(v, "Cannot read the workers", err)
		return exitError
	}
	defer b.Close()
	ref, ok := b.(state.Remote).Store.(*pgRef)
	if !ok {
		fmtErr(v, "Cannot read the workers", fmt.Errorf("the state in %s keeps no workers", b.Where()))
		return exitError
	}
	ws, err := ref.Store.ListWorkers(ctx)
	if err != nil {
		fmtErr(v, "Cannot read the workers", err)
		return exitError
	}
	out := make([]workerView, 0, len(ws))
	for _, w := range ws {
		st := "dead"
		switch {
		case w.Live:
			st = "live"
		case w.Stopped:
			st = "stopped"
		}
		out = append(out, workerView{ID: w.ID, Status: st, Live: w.Live, Host: w.Host, PID: w.PID, Started: w.Started.UTC(),
			Heartbeat: w.Heartbeat.UTC(), HeartbeatAgeS: w.HeartbeatAge.Seconds(), LeaseS: w.Lease.Seconds(),
			Claims: append([]string{}, w.Claims...), Archives: w.Archives})
	}
	if jsonOut {
		if err := v.JSON(map[string]any{"workers": out}); err != nil {
			return exitError
		}
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintln(s.Out, "No apply worker has registered (mailmig apply -worker NAME).")
		return exitOK
	}
	tw := tabwriter.NewWriter(s.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tSTATUS\tHOST\tPID\tLAST HEARTBEAT\tARCHIVES\tCLAIMS")
	for _, w := range out {
		status := w.Status
		if w.Status == "dead" {
			status = fmt.Sprintf("dead (lease %s expired)", time.Duration(w.LeaseS*float64(time.Second)))
		}
		claims := strings.Join(w.Claims, ", ")
		if claims == "" {
			claims = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", w.ID, status, w.Host, w.PID, w.Heartbeat.Format(time.RFC3339), w.Archives, claims)
	}
	tw.Flush()
	return exitOK
}
