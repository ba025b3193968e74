package plan

import "os"

// Option configures loading. The zero set of options reads the process
// environment and resolves paths against the plan's directory.
type Option func(*config)

type config struct {
	lookupEnv func(string) (string, bool)
	baseDir   string
	vars      map[string]string
	// checkCerts reads the proxy's certificate and key files.
	checkCerts bool
	// deferSecrets makes an unset or empty variable behind a secret a
	// warning (see WithSecretsDeferred).
	deferSecrets bool
}

func newConfig(opts []Option) *config {
	c := &config{lookupEnv: os.LookupEnv}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

// WithLookupEnv replaces os.LookupEnv for env(), "env:" password references
// and MAILMIG_VAR_<name> variable values. Tests use it so that they do not
// depend on the process environment.
func WithLookupEnv(lookup func(name string) (string, bool)) Option {
	return func(c *config) {
		if lookup != nil {
			c.lookupEnv = lookup
		}
	}
}

// WithEnv is WithLookupEnv over a fixed map.
func WithEnv(env map[string]string) Option {
	return WithLookupEnv(func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
}

// WithBaseDir sets the directory against which file(), csv() and relative
// paths in the plan are resolved. Default: the plan's directory (for
// [Parse], the directory of the file name).
func WithBaseDir(dir string) Option {
	return func(c *config) { c.baseDir = dir }
}

// WithVariables sets variable values (like -var name=value), overriding
// MAILMIG_VAR_<name> from the environment and the defaults. Values are
// strings; numbers and booleans are converted to the variable's default's
// type.
func WithVariables(vars map[string]string) Option {
	return func(c *config) { c.vars = vars }
}

// WithSecretsDeferred is for commands that do not log in anywhere (validate,
// show, state, journal, routes): an unset or empty environment variable
// that only feeds a secret — password, client_secret, an env:NAME
// password_ref — is a warning ("needed by the commands that log in")
// instead of an error, and the secret is left unset. A variable that feeds
// any other attribute is still an error: the plan cannot be checked
// without it. Commands that log in load without this option, so a missing
// secret stops them at load with the variable's name.
func WithSecretsDeferred() Option {
	return func(c *config) { c.deferSecrets = true }
}

// WithCertificateCheck makes loading read the cert and key files of every
// tls block of the proxy and report, at the attribute, a file that cannot
// be read, a cert file without a PEM certificate, a key file without a PEM
// private key, and a key that does not belong to its certificate.
// `mailmig proxy` loads with it. Other commands do not: the machine that
// plans and applies a migration need not hold the proxy's private keys.
func WithCertificateCheck() Option {
	return func(c *config) { c.checkCerts = true }
}
