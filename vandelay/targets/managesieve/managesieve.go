// Package managesieve exports Sieve scripts onto a target's ManageSieve
// endpoint (RFC 5804). It is the fallback for targets whose JMAP session
// lacks urn:ietf:params:jmap:sieve (RFC 9661): Cyrus 3.6 offers Sieve over
// JMAP only in its own namespace. PUTSCRIPT carries the original bytes, so
// what the target stores is byte-equal to what the source served.
//
// The convergence rules (what is put, activated, deleted) are
// vandelay.ExportSieve's; this package only speaks the protocol.
package managesieve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/internal/sieveclient"
)

// Options configure [Open].
type Options struct {
	vandelay.Server
	vandelay.Login
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Target is one logged-in ManageSieve session at the target.
type Target struct {
	c    *sieveclient.Client
	name string
	// asciiNames: the server cannot store non-ASCII script names.
	asciiNames bool
}

// cyrusNames is the refusal text for a non-ASCII name on Cyrus. Cyrus
// 3.6's timsieved stores such a script but lists it MIME-encoded
// ("=?UTF-8?Q?…?=") and cannot find it again under its real name
// (GETSCRIPT, SETACTIVE and DELETESCRIPT answer NONEXISTENT), so putting
// it would leave a script nobody can manage and an `include` that fails.
const cyrusNames = "Cyrus timsieved cannot store non-ASCII script names (it lists them MIME-encoded and cannot address them again); rename the script at the source to ASCII"

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var _ vandelay.SieveTarget = (*Target)(nil)

// Open connects and logs in.
func Open(ctx context.Context, o *Options) (*Target, error) {
	if o == nil || o.Address == "" || o.User == "" {
		return nil, fmt.Errorf("%w: a ManageSieve target needs a server address and a user", vandelay.ErrUsage)
	}
	c, err := sieveclient.Dial(ctx, &sieveclient.Options{Server: o.Server, Login: o.Login})
	if err != nil {
		return nil, err
	}
	return &Target{c: c, name: "managesieve " + o.Address + " " + o.User,
		asciiNames: strings.Contains(c.Capabilities()["IMPLEMENTATION"], "Cyrus")}, nil
}

// Name returns "managesieve host:port user".
func (t *Target) Name() string { return t.name }

// List runs LISTSCRIPTS.
func (t *Target) List(ctx context.Context) ([]vandelay.RemoteScript, error) {
	l, err := t.c.ListScripts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]vandelay.RemoteScript, len(l))
	for i, s := range l {
		out[i] = vandelay.RemoteScript{Name: s.Name, Active: s.Active}
	}
	return out, nil
}

// Get runs GETSCRIPT.
func (t *Target) Get(ctx context.Context, name string) ([]byte, error) {
	return t.c.GetScript(ctx, name)
}

// Put runs PUTSCRIPT; a NO answer is the target refusing the script
// (a compile error or a quota), reported with the target's text.
func (t *Target) Put(ctx context.Context, name string, body []byte) error {
	if t.asciiNames && !isASCII(name) {
		return &vandelay.ScriptRefusedError{Name: name, Text: cyrusNames}
	}
	err := t.c.PutScript(ctx, name, body)
	var se *sieveclient.Error
	if errors.As(err, &se) && se.Status == "NO" {
		text := se.Text
		if se.Code != "" {
			text = "(" + se.Code + ") " + text
		}
		return &vandelay.ScriptRefusedError{Name: name, Text: text}
	}
	return err
}

// SetActive runs SETACTIVE.
func (t *Target) SetActive(ctx context.Context, name string) error { return t.c.SetActive(ctx, name) }

// Delete runs DELETESCRIPT.
func (t *Target) Delete(ctx context.Context, name string) error { return t.c.DeleteScript(ctx, name) }

// Close logs out.
func (t *Target) Close() error { return t.c.Logout(context.Background()) }
