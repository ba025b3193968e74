package tcprelay

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// TestRelay: bytes go through; Pause cuts the open connection and leaves
// a new one unanswered; after Resume new connections go through again.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	r, err := Start(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// within bounds each exchange: generous where it must succeed, short
	// where it must not (a held connection never answers).
	echo := func(c net.Conn, within time.Duration) error {
		c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err := bufio.NewReader(c).ReadString('\n')
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	open := dial()
	if err := echo(open, 10*time.Second); err != nil {
		t.Fatalf("through the relay: %v", err)
	}
	r.Pause()
	if err := echo(open, 10*time.Second); err == nil {
		t.Fatal("an open connection still echoes after Pause")
	}
	if err := echo(dial(), 300*time.Millisecond); err == nil {
		t.Fatal("a new connection is answered while paused")
	}
	r.Resume()
	if err := echo(dial(), 10*time.Second); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
}
