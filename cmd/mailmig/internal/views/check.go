package views

import (
	"fmt"
	"io"
	"strings"

	"github.com/mailmig/mailmig/engine"
)

// CheckHuman prints the pre-flight report of "plan -check": one line per
// account, its findings indented below it, what could not be checked,
// and a summary line.
func (v *View) CheckHuman(r *engine.CheckReport) {
	w := v.Out
	for _, a := range r.Accounts {
		switch {
		case a.Skipped != "":
			fmt.Fprintf(w, "  - %s: skipped (%s)\n", a.Account, a.Skipped)
			continue
		case a.Failed():
			fmt.Fprintf(w, "%s %s\n", v.paint(colorBold+colorRed, "✗"), a.Account)
		default:
			fmt.Fprintf(w, "%s %s: %s\n", v.paint(colorGreen, "✓"), a.Account, okLine(a))
		}
		for _, f := range a.Findings {
			fmt.Fprintf(w, "    %s\n", FindingText(f))
			if f.Error != "" {
				fmt.Fprintf(w, "      (%s)\n", f.Error)
			}
		}
		if ref := refusedBoth(a); ref != "" {
			fmt.Fprintf(w, "    Both sides refused the secret %s: it is most likely wrong (or names the wrong variable or file).\n", ref)
		}
		if a.Failed() {
			for _, u := range unknowns(a) {
				fmt.Fprintf(w, "    not checked: %s\n", u)
			}
		}
	}
	fmt.Fprintln(w)
	line := CheckSummary(r)
	if r.Failed > 0 {
		io.WriteString(w, v.paint(colorBold+colorRed, line)+"\n")
	} else {
		v.Success(line)
	}
}

// okLine summarises a passing account: sizes and quota when known.
func okLine(a *engine.AccountCheck) string {
	parts := []string{"logins work at " + a.Source.Backend + " and " + a.Target.Backend}
	if a.Source.Size >= 0 {
		parts = append(parts, "source "+humanBytes(a.Source.Size))
	}
	if q := a.Target.Quota; q != nil {
		parts = append(parts, fmt.Sprintf("target quota %s of %s used", humanBytes(q.Used), humanBytes(q.Limit)))
	} else {
		parts = append(parts, "no quota limit at the target")
	}
	return strings.Join(parts, "; ")
}

func unknowns(a *engine.AccountCheck) []string {
	var out []string
	for _, u := range a.Source.Unknown {
		out = append(out, "source "+a.Source.Backend+": "+u)
	}
	for _, u := range a.Target.Unknown {
		out = append(out, "target "+a.Target.Backend+": "+u)
	}
	return out
}

// CheckSummary is the last line of the report.
func CheckSummary(r *engine.CheckReport) string {
	s := fmt.Sprintf("Pre-flight: %s checked, %d failed", countNoun(r.Checked, "account"), r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	if r.Failed == 0 {
		return s + ". Nothing was imported or written."
	}
	return s + ". Nothing was imported or written; fix these before apply."
}

// FindingText words one finding. It names the login and the secret's
// reference, never the secret.
func FindingText(f engine.Finding) string {
	who := fmt.Sprintf("login %q", f.Login)
	switch {
	case strings.HasPrefix(f.SecretRef, "env:") || strings.HasPrefix(f.SecretRef, "file:"):
		who += fmt.Sprintf(" with password_ref = %q", f.SecretRef)
	case f.SecretRef != "":
		who += " with the secret " + f.SecretRef
	}
	switch f.Problem {
	case engine.CheckLoginRefused:
		return fmt.Sprintf("%s %s refused %s: wrong password, or no such account there (the server does not say which).", f.Side, f.Backend, who)
	case engine.CheckAccountMissing:
		if f.Inferred {
			return fmt.Sprintf("%s %s: account probably missing: it refused %s, which the source accepted (a JMAP server answers a missing account and a wrong password alike; the password may also differ there).", f.Side, f.Backend, who)
		}
		return fmt.Sprintf("%s %s: account missing: %s works, but its session does not list the account.", f.Side, f.Backend, who)
	case engine.CheckQuota:
		return fmt.Sprintf("%s %s: quota too small: the source holds %s, the target has %s free.", f.Side, f.Backend, humanBytes(f.Need), humanBytes(f.Free))
	case engine.CheckProtocolMissing:
		return fmt.Sprintf("%s %s: %s needs %s, which it does not offer.", f.Side, f.Backend, f.Data, f.Protocol)
	case engine.CheckUnreachable:
		return fmt.Sprintf("%s %s: unreachable (for %s).", f.Side, f.Backend, who)
	}
	return fmt.Sprintf("%s %s: check failed for %s.", f.Side, f.Backend, who)
}

// CheckJSON writes the report as JSON (format_version 1.0).
func (v *View) CheckJSON(r *engine.CheckReport) error { return v.JSON(r) }

// CheckMarkdown writes the report as a pull-request comment: a table of
// the failed accounts and a count of the others.
func (v *View) CheckMarkdown(r *engine.CheckReport) error {
	var b strings.Builder
	b.WriteString("### mailmig pre-flight\n\n")
	if r.Failed > 0 {
		b.WriteString("| account | side | backend | problem |\n| --- | --- | --- | --- |\n")
		for _, a := range r.Accounts {
			for _, f := range a.Findings {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdCell(a.Account), f.Side, mdCell(f.Backend), mdCell(FindingText(f)))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(mdInline(CheckSummary(r)) + "\n")
	_, err := io.WriteString(v.Out, b.String())
	return err
}

// refusedBoth returns the secret reference that both sides refused, or "".
func refusedBoth(a *engine.AccountCheck) string {
	refs := map[string]string{}
	for _, f := range a.Findings {
		if f.Problem == engine.CheckLoginRefused && f.SecretRef != "" {
			refs[f.Side] = f.SecretRef
		}
	}
	if r := refs[engine.SideSource]; r != "" && r == refs[engine.SideTarget] {
		return r
	}
	return ""
}
