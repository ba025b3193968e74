package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/diag"
	"github.com/mailmig/mailmig/engine/executor"
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
func observeAndDiff(ctx context.Context, m *plan.Migration, st *state.State, w *world, refresh bool, targets, waves []string, planPath string) (*engine.Changes, diag.Diagnostics) {
	return observeAndDiffSkip(ctx, m, st, w, refresh, targets, waves, planPath, nil)
}

// observeAndDiffSkip is observeAndDiff that does not observe the accounts
// in skip (normalised addresses): they are planned from the journal and
// the routes alone. Apply workers skip the accounts they already ran, so
// that a round does not probe every source again.
func observeAndDiffSkip(ctx context.Context, m *plan.Migration, st *state.State, w *world, refresh bool, targets, waves []string, planPath string, skip map[string]bool) (*engine.Changes, diag.Diagnostics) {
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
	} else if len(waves) > 0 {
		// Only the chosen waves' accounts are observed (probes log in).
		oo.Accounts = map[string]bool{}
		for _, a := range m.Accounts {
			if slices.Contains(waves, a.Wave) || (a.Wave == "" && slices.Contains(waves, engine.NoWave)) {
				oo.Accounts[engine.Key(a.Address)] = true
			}
		}
	}
	if len(skip) > 0 {
		if oo.Accounts == nil {
			oo.Accounts = map[string]bool{}
			for _, a := range m.Accounts {
				oo.Accounts[engine.Key(a.Address)] = true
			}
		}
		for k := range skip {
			delete(oo.Accounts, k)
		}
	}
	obs, diags := engine.Observe(ctx, m, st, oo)
	if diags.HasErrors() {
		return nil, diags
	}
	ch, d2 := engine.Diff(m, obs, &engine.DiffOptions{Clock: clock, Targets: targets, Waves: waves, PlanPath: planPath})
	setTransports(m, ch)
	if ch != nil {
		ch.PlanFiles = planFileHashes(m)
	}
	if refresh && w.CopyBack != nil {
		// Rollbacks of cut-over accounts say how much mail they return.
		engine.CountCopyBacks(ctx, ch, m, w.CopyBack)
	}
	return ch, diags.Append(d2, unsupportedData(m))
}

// setTransports fills each change's Data with how the account's data
// kinds move (executor.Transports), for accounts whose data names more
// than mail: plan and apply -dry-run print it per kind.
func setTransports(m *plan.Migration, ch *engine.Changes) {
	if ch == nil {
		return
	}
	for _, w := range ch.Waves {
		for _, c := range w.Changes {
			a := m.Account(c.Account)
			if a == nil || !slices.ContainsFunc(a.Data, func(k plan.DataKind) bool { return k != plan.DataMail }) {
				continue
			}
			c.Data = executor.Transports(m, a)
		}
	}
}

// unsupportedData warns once when accounts ask for data kinds that apply's
// executor does not move yet: it moves mail, Sieve scripts when both
// source can give them and the target has a managesieve or jmap endpoint
// (executor.MovesSieve; over JMAP when the target's session offers RFC
// 9661, decided at the step), contacts and calendars when both have a
// carddav/caldav endpoint (or the source an exchange one) and the account
// a password (executor.MovesDAV), files likewise over webdav or the
// target's FileNode (executor.MovesFiles).
func unsupportedData(m *plan.Migration) diag.Diagnostics {
	kinds := map[plan.DataKind]int{}
	for _, a := range m.Accounts {
		for _, k := range a.Data {
			moved := k == plan.DataMail || k == plan.DataSieve && executor.MovesSieve(m, a) || executor.MovesDAV(m, a, k) ||
				k == plan.DataFiles && executor.MovesFiles(m, a)
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
		"The plan asks for %s; apply moves mail, sieve scripts from a managesieve endpoint (or Exchange, whose inbox rules become Sieve, or a jmap source) onto the target's JMAP session where it offers urn:ietf:params:jmap:sieve or else its managesieve endpoint, contacts and calendars from a carddav or caldav endpoint (or an exchange or jmap source) onto the target's JMAP session where it offers them or else its carddav or caldav endpoint, and files from a webdav endpoint (or a jmap source) onto the target's FileNode or webdav endpoint, when the account has a password, in this build, and leaves the rest on the source. Remove the other kinds from data to silence this warning.", strings.Join(parts, ", "))}
}

// fmtErr prints "Error: …" for failures outside diagnostics.
func fmtErr(v *views.View, summary string, err error) {
	v.Diagnostics(errDiag(summary, err), nil)
}

// warnDiag is a warning diagnostic without a range.
func warnDiag(summary, detail string) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: summary, Detail: detail}}
}

// planFileHashes names each plan file and accounts CSV (relative to the
// plan's directory, as plan.Migration.Hash does) with the SHA-256 of its
// contents, so that a stale saved changes file can say which changed.
func planFileHashes(m *plan.Migration) map[string]string {
	if len(m.Sources) == 0 {
		return nil
	}
	out := make(map[string]string, len(m.Sources))
	for name, src := range m.Sources {
		rel, err := filepath.Rel(m.Dir, name)
		if err != nil {
			rel = filepath.Base(name)
		}
		sum := sha256.Sum256(src)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
	}
	return out
}

// changedPlanFiles says which plan files differ between a saved changes
// file's PlanFiles and the plan now: "migration.hcl changed,
// waves.hcl added". Empty when the saved file has no per-file hashes.
func changedPlanFiles(saved map[string]string, m *plan.Migration) string {
	if len(saved) == 0 {
		return ""
	}
	now := planFileHashes(m)
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(now)) {
		switch h, ok := saved[name]; {
		case !ok:
			parts = append(parts, name+" added")
		case h != now[name]:
			parts = append(parts, name+" changed")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(saved)) {
		if _, ok := now[name]; !ok {
			parts = append(parts, name+" removed")
		}
	}
	return strings.Join(parts, ", ")
}
