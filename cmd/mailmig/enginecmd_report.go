package main

import (
	"context"
	"fmt"
	"github.com/mailmig/mailmig/engine/executor"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/diag"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// loadPlanOrReport loads the plan and prints its diagnostics; ok is false
// on errors. Every secret must be set: the command logs in somewhere.
func loadPlanOrReport(g *globals, v *views.View, vars map[string]string) (*plan.Migration, bool) {
	return loadPlan(g, v, vars)
}

// loadPlanReadOnly is loadPlanOrReport for commands that log in nowhere
// (they read the state, the journal or the routes): an unset secret is a
// warning, not an error (plan.WithSecretsDeferred).
func loadPlanReadOnly(g *globals, v *views.View) (*plan.Migration, bool) {
	return loadPlan(g, v, nil, plan.WithSecretsDeferred())
}

func loadPlan(g *globals, v *views.View, vars map[string]string, opts ...plan.Option) (*plan.Migration, bool) {
	m, diags := loadMigration(g, "", vars, opts...)
	if len(diags) > 0 {
		var srcs map[string][]byte
		if m != nil {
			srcs = m.Sources
		}
		v.Diagnostics(diags, srcs)
	}
	return m, m != nil && !diags.HasErrors()
}

// machineOutput keeps standard output for the document alone: with -json
// warnings go into the JSON as "diagnostics", with -markdown (or another
// document that cannot carry them) to standard error.
func machineOutput(v *views.View, jsonDoc, other bool) {
	switch {
	case jsonDoc:
		v.SetWarnings(views.WarningsInJSON)
	case other:
		v.SetWarnings(views.WarningsToErr)
	}
}

// reportDiags prints engine diagnostics through the views.
func reportDiags(v *views.View, m *plan.Migration, d diag.Diagnostics) {
	if len(d) == 0 {
		return
	}
	var srcs map[string][]byte
	if m != nil {
		srcs = m.Sources
	}
	v.Diagnostics(d.HCL(), srcs)
}

// errDiag wraps an error as one diagnostic for the views.
func errDiag(summary string, err error) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: capitalize(err.Error()) + "."}}
}

// capitalize starts an error text with a capital letter when its first
// word is a plain word (not an address, a path or a name).
func capitalize(s string) string {
	word, _, _ := strings.Cut(s, " ")
	if word == "" || strings.IndexFunc(word, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// multiFlag collects a repeatable string flag (-target).
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*m = append(*m, p)
		}
	}
	return nil
}

// observeAndDiff observes the world and computes the changes.
func observeAndDiff(ctx context.Context, m *plan.Migration, st *state.State, w *world, refresh bool, targets []string, planPath string) (*engine.Changes, diag.Diagnostics) {
	oo := &engine.ObserveOptions{Archives: w.Archives}
	if w.Routes != nil {
		oo.Routes = w.Routes
	}
	if refresh && w.Detector != nil {
		oo.Detector = w.Detector
	}
	if len(targets) > 0 {
		oo.Accounts = map[string]bool{}
		for _, t := range targets {
			oo.Accounts[engine.Key(t)] = true
		}
	}
	obs, diags := engine.Observe(ctx, m, st, oo)
	if diags.HasErrors() {
		return nil, diags
	}
	ch, d2 := engine.Diff(m, obs, &engine.DiffOptions{Clock: clock, Targets: targets, PlanPath: planPath})
	if refresh && w.CopyBack != nil {
		// Rollbacks of cut-over accounts say how much mail they return.
		engine.CountCopyBacks(ctx, ch, m, w.CopyBack)
	}
	return ch, diags.Append(d2, unsupportedData(m))
}

// unsupportedData warns once when accounts ask for data kinds that apply's
// executor does not move yet: it moves mail, Sieve scripts when both
// backends have a managesieve endpoint (executor.MovesSieve), contacts and
// calendars when both have a carddav/caldav endpoint and the account a
// password (executor.MovesDAV).
func unsupportedData(m *plan.Migration) diag.Diagnostics {
	kinds := map[plan.DataKind]int{}
	for _, a := range m.Accounts {
		for _, k := range a.Data {
			moved := k == plan.DataMail || k == plan.DataSieve && executor.MovesSieve(m, a) || executor.MovesDAV(m, a, k)
			if !moved {
				kinds[k]++
			}
		}
	}
	if len(kinds) == 0 {
		return nil
	}
	var parts []string
	for _, k := range plan.DataKinds {
		if n := kinds[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d accounts)", k, n))
		}
	}
	return diag.Diagnostics{diag.Warnf("Some data kinds are not migrated",
		"The plan asks for %s; apply moves mail, sieve scripts where both backends have a managesieve endpoint, and contacts and calendars where both have a carddav or caldav endpoint and the account has a password, in this build, and leaves the rest on the source. Remove the other kinds from data to silence this warning.", strings.Join(parts, ", "))}
}

// fmtErr prints "Error: …" for failures outside diagnostics.
func fmtErr(v *views.View, summary string, err error) {
	v.Diagnostics(errDiag(summary, err), nil)
}

// warnDiag is a warning diagnostic without a range.
func warnDiag(summary, detail string) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: summary, Detail: detail}}
}
