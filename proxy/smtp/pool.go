package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Pool limits. Delivery sessions to a backend are reused across client
// sessions (after RSET), which saves the connect, greeting and hello, and
// on Dovecot the start of an LMTP session, per delivery.
const (
	poolMaxIdle     = 16               // idle sessions kept per backend address
	poolIdleTimeout = 30 * time.Second // an idle session older than this is closed
)

// pool keeps idle delivery sessions per backend address.
type pool struct {
	mu     sync.Mutex
	idle   map[string][]idleConn
	closed bool
}

type idleConn struct {
	bc    *backendConn
	since time.Time
}

// get returns an idle session for key, or nil.
func (p *pool) get(key string) *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	for len(list) > 0 {
		ic := list[len(list)-1]
		list = list[:len(list)-1]
		if time.Since(ic.since) < poolIdleTimeout {
			p.idle[key] = list
			return ic.bc
		}
		go ic.bc.close()
	}
	delete(p.idle, key)
	return nil
}

// put keeps a healthy session with no open transaction; it closes it when
// the pool is full or closed.
func (p *pool) put(key string, bc *backendConn) {
	if bc.broken || bc.inTx {
		bc.close()
		return
	}
	p.mu.Lock()
	if p.closed || len(p.idle[key]) >= poolMaxIdle {
		p.mu.Unlock()
		bc.close()
		return
	}
	if p.idle == nil {
		p.idle = make(map[string][]idleConn)
	}
	p.idle[key] = append(p.idle[key], idleConn{bc: bc, since: time.Now()})
	p.mu.Unlock()
}

// close closes every idle session and keeps the pool closed.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, list := range idle {
		for _, ic := range list {
			ic.bc.close()
		}
	}
}

// rebind prepares a pooled session for a new client: when the backend
// takes XCLIENT, it gets the new client's attributes, answers with a new
// greeting, and a fresh go-smtp client says hello on the same connection.
// (A completed reply cycle leaves nothing buffered in the old client.)
func (bc *backendConn) rebind(dc dialConfig) error {
	if !dc.xclient || bc.xclientAdv == "" {
		return nil
	}
	line := xclientCommand(bc.xclientAdv, dc.client)
	if line == "" {
		return nil
	}
	bc.conn.SetDeadline(time.Now().Add(dc.timeout))
	defer bc.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(bc.conn, line+"\r\n"); err != nil {
		return fmt.Errorf("write to backend %s: %w", bc.name, err)
	}
	br := bufio.NewReader(bc.conn)
	rep, err := readReply(br)
	if err != nil {
		return fmt.Errorf("read reply of backend %s: %w", bc.name, err)
	}
	if rep.Code != 220 {
		return fmt.Errorf("backend %s refused XCLIENT on a reused session: %d", bc.name, rep.Code)
	}
	var b bytes.Buffer
	for i, l := range rep.Lines {
		sep := "-"
		if i == len(rep.Lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "220%s%s\r\n", sep, l)
	}
	rc := &replayConn{Conn: bc.conn, r: io.MultiReader(bytes.NewReader(b.Bytes()), br)}
	var c *gosmtp.Client
	if bc.lmtp {
		c = gosmtp.NewClientLMTP(rc)
	} else {
		c = gosmtp.NewClient(rc)
	}
	c.CommandTimeout = dc.timeout
	name := dc.localName
	if dc.client.helo != "" && validHelo(dc.client.helo) {
		name = dc.client.helo
	}
	if err := c.Hello(name); err != nil {
		return fmt.Errorf("backend %s hello: %w", bc.name, err)
	}
	bc.client = c
	return nil
}
