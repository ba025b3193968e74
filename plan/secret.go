package plan

import (
	"fmt"
	"log/slog"
)

// Redacted is what a [Secret] prints as, everywhere.
const Redacted = "(sensitive)"

// Secret is a sensitive string (a password or token). It prints as
// "(sensitive)" through fmt (every verb), JSON, text marshalling and slog;
// only [Secret.Reveal] returns the value. The zero Secret is unset.
type Secret struct {
	value string
	set   bool
	// deferred: loaded under WithSecretsDeferred with its variable unset;
	// the value is empty and must not be used to log in.
	deferred bool
}

// deferredSecret is the secret of an unset variable under
// WithSecretsDeferred.
func deferredSecret() Secret { return Secret{set: true, deferred: true} }

// Deferred reports whether the secret's variable was unset when the plan
// was loaded with [WithSecretsDeferred]: the secret has no value.
func (s Secret) Deferred() bool { return s.deferred }

// NewSecret wraps a value as a Secret.
func NewSecret(value string) Secret { return Secret{value: value, set: true} }

// Reveal returns the secret value. Call it only where the value is sent to a
// server, never to build output.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret has a value (possibly empty).
func (s Secret) IsSet() bool { return s.set }

// String returns "(sensitive)".
func (s Secret) String() string { return Redacted }

// GoString returns "(sensitive)", so %#v does not reveal the value.
func (s Secret) GoString() string { return Redacted }

// Format prints "(sensitive)" for every verb and flag.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON returns the JSON string "(sensitive)", or null when the
// secret is unset.
func (s Secret) MarshalJSON() ([]byte, error) {
	if !s.set {
		return []byte("null"), nil
	}
	return []byte(`"` + Redacted + `"`), nil
}

// MarshalText returns "(sensitive)".
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue makes slog print "(sensitive)".
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ fmt.Formatter  = Secret{}
	_ slog.LogValuer = Secret{}
)
