package httpproxy

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// idleBody is a request body whose every read must make progress within
// idle: before each read the client connection's read deadline moves to
// now+idle, so a body that stalls fails the read (and the reverse proxy
// ends the request toward the backend) while a slow but moving upload of
// any size goes through. Once the body has been read to its end the
// deadline is cleared: net/http's background read of a finished request
// must not time out, as that would cancel a long response (EventSource).
type idleBody struct {
	rc   io.ReadCloser
	ctl  *http.ResponseController
	idle time.Duration
	done bool
	// err is the first read error other than io.EOF: the client's side
	// failed, not the backend's.
	err atomic.Pointer[error]
}

// failed reports whether reading the client's body failed.
func (b *idleBody) failed() bool { return b.err.Load() != nil }

func (b *idleBody) Read(p []byte) (int, error) {
	if b.done {
		return b.rc.Read(p)
	}
	// An error means the connection cannot take deadlines (HTTP/2 over
	// some transports): the body is read without one, as before.
	_ = b.ctl.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.done = true
		_ = b.ctl.SetReadDeadline(time.Time{})
	case err != nil:
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (b *idleBody) Close() error { return b.rc.Close() }
