// Package tcprelay is a loopback TCP relay for tests: put between one
// process and a server, it cuts that process off (and only that one) on
// demand, the way a network partition would, while the server keeps
// serving everybody else.
package tcprelay

import (
	"io"
	"net"
	"sync"
)

// Relay forwards connections from its loopback address to a target.
type Relay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	paused bool
	conns  map[net.Conn]struct{} // both ends of every relayed connection
	held   map[net.Conn]struct{} // accepted while paused: never answered
	wg     sync.WaitGroup
}

// Start listens on a free loopback port and relays to target.
func Start(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}, held: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Pause cuts every relayed connection and leaves new ones unanswered
// (accepted, never forwarded: the client's connect or its first read
// times out, as across a partition) until Resume.
func (r *Relay) Pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = true
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

// Resume forwards new connections again; those held while paused are
// closed (their clients have given up or will retry).
func (r *Relay) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = false
	for c := range r.held {
		c.Close()
	}
	clear(r.held)
}

// Close stops the relay and cuts every connection.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	for c := range r.held {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.paused {
			r.held[c] = struct{}{}
			r.mu.Unlock()
			continue
		}
		r.mu.Unlock()
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.paused { // paused while dialling
			r.mu.Unlock()
			up.Close()
			c.Close()
			continue
		}
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(up, c)
		go r.pipe(c, up)
	}
}

// pipe copies src to dst; when either side ends, both are closed.
func (r *Relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	io.Copy(dst, src) //nolint:errcheck // a cut connection ends the copy
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}
