package proxy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type bridgeResult struct {
	up, down int64
	idled    bool
	bye      bool
}

// startBridge bridges client ↔ backend (the proxy's ends) in the
// background; the test talks on the returned far ends.
func startBridge(t *testing.T, ctx context.Context, idle time.Duration) (client, backend net.Conn, done chan bridgeResult) {
	client, pc := tcpPair(t)
	pb, backend := tcpPair(t)
	done = make(chan bridgeResult, 1)
	go func() {
		var r bridgeResult
		r.up, r.down, r.idled = BridgeIdle(ctx, pc, nil, pb, nil, idle, func(idle bool) {
			r.bye = idle
			io.WriteString(pc, "bye\n")
		})
		done <- r
	}()
	return client, backend, done
}

func TestBridgeIdle(t *testing.T) {
	// Long enough that a loaded machine (the whole suite on 2 cores) does
	// not stall the sender or a copy's wake-up for a large part of it.
	const idle = 500 * time.Millisecond
	t.Run("silence", func(t *testing.T) {
		client, _, done := startBridge(t, context.Background(), idle)
		start := time.Now()
		b, _ := io.ReadAll(client)
		r := <-done
		if string(b) != "bye\n" || !r.idled || !r.bye {
			t.Errorf("got %q %+v, want the idle goodbye", b, r)
		}
		if d := time.Since(start); d < idle || d > 3*idle {
			t.Errorf("ended after %v, want between %v and %v", d, idle, 3*idle)
		}
	})
	for _, dir := range []string{"down", "up"} {
		t.Run("traffic "+dir, func(t *testing.T) {
			client, backend, done := startBridge(t, context.Background(), idle)
			from, to := backend, client
			if dir == "up" {
				from, to = client, backend
			}
			go io.Copy(io.Discard, to)
			tick := time.NewTicker(idle / 4) // the sender's rhythm
			defer tick.Stop()
			for end := time.Now().Add(4 * idle); time.Now().Before(end); <-tick.C {
				if _, err := io.WriteString(from, "x"); err != nil {
					t.Fatalf("session ended during traffic: %v", err)
				}
			}
			select {
			case r := <-done:
				t.Fatalf("ended during traffic: %+v", r)
			default:
			}
			r := <-done // then silence ends it
			if !r.idled || r.up+r.down < 4 {
				t.Errorf("%+v", r)
			}
		})
	}
	t.Run("ctx ends a long round", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		_, _, done := startBridge(t, ctx, time.Hour)
		cancel()
		select {
		case r := <-done:
			if r.idled {
				t.Errorf("%+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("bridge still running 5s after its context ended")
		}
	})
}
