package diag

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Severity says whether a diagnostic stops the operation.
type Severity int

const (
	// Error diagnostics stop the operation.
	Error Severity = iota
	// Warning diagnostics are shown but do not stop the operation.
	Warning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// MarshalText encodes the severity as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one problem found by the engine.
type Diagnostic struct {
	// Severity is Error or Warning.
	Severity Severity `json:"severity"`
	// Summary is a short phrase, e.g. "Stale saved changes".
	Summary string `json:"summary"`
	// Detail is one or more full sentences that say what to do.
	Detail string `json:"detail,omitempty"`
	// Subject is the plan-file range the diagnostic is about, if any.
	Subject *hcl.Range `json:"subject,omitempty"`
	// Account names the account the diagnostic is about, if any.
	Account string `json:"account,omitempty"`
}

// Error implements error so a Diagnostic can travel as one.
func (d Diagnostic) Error() string {
	var b strings.Builder
	if d.Account != "" {
		b.WriteString(d.Account)
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// Diagnostics is a list of diagnostics. It is nil when empty.
type Diagnostics []Diagnostic

// Errorf returns an error diagnostic with a formatted detail.
func Errorf(summary, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Summary: summary, Detail: fmt.Sprintf(format, args...)}
}

// Warnf returns a warning diagnostic with a formatted detail.
func Warnf(summary, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Summary: summary, Detail: fmt.Sprintf(format, args...)}
}

// Append adds items and returns the extended list. Items may be error,
// Diagnostic, *Diagnostic, Diagnostics, *hcl.Diagnostic or hcl.Diagnostics;
// nil items are skipped. An error that wraps a Diagnostic keeps it.
func (d Diagnostics) Append(items ...any) Diagnostics {
	for _, it := range items {
		switch v := it.(type) {
		case nil:
		case Diagnostic:
			d = append(d, v)
		case *Diagnostic:
			if v != nil {
				d = append(d, *v)
			}
		case Diagnostics:
			d = append(d, v...)
		case *hcl.Diagnostic:
			if v != nil {
				d = append(d, fromHCL(v))
			}
		case hcl.Diagnostics:
			for _, h := range v {
				d = append(d, fromHCL(h))
			}
		case error:
			var dd Diagnostic
			if errors.As(v, &dd) {
				d = append(d, dd)
				continue
			}
			d = append(d, Diagnostic{Severity: Error, Summary: "Error", Detail: v.Error()})
		default:
			panic(fmt.Sprintf("diag.Append: unsupported type %T", it))
		}
	}
	return d
}

func fromHCL(h *hcl.Diagnostic) Diagnostic {
	sev := Error
	if h.Severity == hcl.DiagWarning {
		sev = Warning
	}
	return Diagnostic{Severity: sev, Summary: h.Summary, Detail: h.Detail, Subject: h.Subject}
}

// HasErrors reports whether any diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if x.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns the errors joined as one error, or nil without errors.
func (d Diagnostics) Err() error {
	var errs []error
	for _, x := range d {
		if x.Severity == Error {
			errs = append(errs, x)
		}
	}
	return errors.Join(errs...)
}

// HCL converts the diagnostics to hcl.Diagnostics, for views that render
// plan diagnostics with source snippets.
func (d Diagnostics) HCL() hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, x := range d {
		sev := hcl.DiagError
		if x.Severity == Warning {
			sev = hcl.DiagWarning
		}
		detail := x.Detail
		if x.Account != "" {
			detail = "Account " + x.Account + ": " + detail
		}
		out = append(out, &hcl.Diagnostic{Severity: sev, Summary: x.Summary, Detail: detail, Subject: x.Subject})
	}
	return out
}
