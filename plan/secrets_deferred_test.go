package plan

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

const deferredSrc = `
backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
  master {
    user     = "admin"
    password = env("MASTER_PW")
  }
  login = "master"
}

backend "target" {
  jmap {
    url = "http://127.0.0.1:20038/.well-known/jmap"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = [
    "alice@example.test",
    { address = "bob@example.test", password_ref = "env:BOB_PW" },
    { address = "carol@example.test", password_ref = "env:BOB_PW" },
  ]
}

wave "all" {
  accounts = accounts.staff
}
`

// TestSecretsDeferred: without WithSecretsDeferred an unset secret is an
// error naming the variable; with it a warning (once per variable), the
// secrets are set but Deferred, and a variable feeding a plain attribute
// stays an error.
func TestSecretsDeferred(t *testing.T) {
	summaries := func(diags hcl.Diagnostics, sev hcl.DiagnosticSeverity) []string {
		var out []string
		for _, d := range diags {
			if d.Severity == sev {
				out = append(out, d.Summary+": "+d.Detail)
			}
		}
		return out
	}

	_, diags := Parse("m.hcl", []byte(deferredSrc), WithEnv(nil))
	errs := strings.Join(summaries(diags, hcl.DiagError), "\n")
	for _, want := range []string{"MASTER_PW is not set", "BOB_PW, named by"} {
		if !strings.Contains(errs, want) {
			t.Errorf("strict load: no error about %q in:\n%s", want, errs)
		}
	}

	m, diags := Parse("m.hcl", []byte(deferredSrc), WithEnv(map[string]string{"BOB_PW": ""}), WithSecretsDeferred())
	if diags.HasErrors() {
		t.Fatalf("deferred load: %v", diags)
	}
	warns := summaries(diags, hcl.DiagWarning)
	if len(warns) != 2 || !strings.Contains(warns[0], "MASTER_PW is not set") || !strings.Contains(warns[1], "BOB_PW is set but empty") {
		t.Fatalf("deferred load: want one warning per variable, got %q", warns)
	}
	pw := m.Backends[0].Master.Password
	if !pw.IsSet() || !pw.Deferred() || pw.Reveal() != "" {
		t.Errorf("master password: set %v deferred %v", pw.IsSet(), pw.Deferred())
	}
	if b := m.Account("bob@example.test"); b == nil || !b.Password.Deferred() {
		t.Errorf("bob's password not deferred: %+v", b)
	}

	m, diags = Parse("m.hcl", []byte(deferredSrc), WithEnv(map[string]string{"BOB_PW": "b", "MASTER_PW": "m"}), WithSecretsDeferred())
	if len(diags) != 0 || m.Backends[0].Master.Password.Deferred() || m.Backends[0].Master.Password.Reveal() != "m" {
		t.Errorf("with the variables set: %v", diags)
	}

	plain := strings.Replace(deferredSrc, `"127.0.0.1:20000"`, `env("LEGACY_ADDR")`, 1)
	_, diags = Parse("m.hcl", []byte(plain), WithEnv(map[string]string{"BOB_PW": "b", "MASTER_PW": "m"}), WithSecretsDeferred())
	errs = strings.Join(summaries(diags, hcl.DiagError), "\n")
	if !strings.Contains(errs, "Unset environment variable: The environment variable LEGACY_ADDR is not set.") {
		t.Errorf("env() in a plain attribute: want the unset error, got:\n%s", errs)
	}
}
