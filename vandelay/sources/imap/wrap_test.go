package imap

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
)

// TestDialErrorKeepsCause: a connect error carries both its class
// (vandelay.ErrConnect, for the exit code) and its cause, so that a
// cancelled context is still seen as a cancellation through the wrapping
// ("%w: connect to …: %w", not "%v").
func TestDialErrorKeepsCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	src, err := New(&Options{
		Server: vandelay.Server{Address: ln.Addr().String(), TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: "u", Password: "p"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = src.(*Source).dial(ctx)
	if !errors.Is(err, vandelay.ErrConnect) || !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a cancelled context: %v; errors.Is ErrConnect %v, context.Canceled %v",
			err, errors.Is(err, vandelay.ErrConnect), errors.Is(err, context.Canceled))
	}
}
