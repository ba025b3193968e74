package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/internal/wire"
)

// UIDLMaps gives the POP3 UIDL map a cut-over wrote for an account
// (*routes.Store): target UIDL → the UIDL the source gave the same
// message, and the backend the map was made for. backend is "" when the
// account has none. It must be safe for concurrent use.
type UIDLMaps interface {
	UIDLMap(ctx context.Context, account string) (backend string, m map[string]string, err error)
}

// MaxUIDL is the longest UIDL RFC 1939 7 allows (1 to 70 characters in
// 0x21–0x7E).
const MaxUIDL = 70

// uidlMapper answers UIDL for a migrated account: a message the source
// knew keeps the source's UIDL; any other (arrived after the cut-over)
// gets the target's UIDL behind a "~", so that it can never equal a UIDL
// the client remembers from the source (none of the formats the map is
// made from starts with "~"; a collision with a mapped one is prefixed
// again). The result depends only on the target UIDL and the fixed map,
// so it is stable across sessions.
type uidlMapper struct {
	m    map[string]string
	used map[string]bool // the mapped (source) UIDLs
}

func newUIDLMapper(m map[string]string) *uidlMapper {
	u := &uidlMapper{m: m, used: make(map[string]bool, len(m))}
	for _, v := range m {
		u.used[v] = true
	}
	return u
}

func (u *uidlMapper) uidl(target string) string {
	if v, ok := u.m[target]; ok {
		return v
	}
	id := "~" + target
	for u.used[id] || len(id) > MaxUIDL {
		if len(id) > MaxUIDL {
			sum := sha256.Sum256([]byte(id))
			id = "~" + hex.EncodeToString(sum[:])[:40]
			continue
		}
		id = "~" + id
	}
	return id
}

// uidlMap reads the account's map; ok is false when the session can be
// bridged as it is (no map, or one made for another backend).
func (h *Handler) uidlMap(ctx context.Context, d proxy.Decision) (*uidlMapper, bool, error) {
	if h.uidls == nil {
		return nil, false, nil
	}
	backend, m, err := h.uidls.UIDLMap(ctx, d.Account())
	if err != nil {
		return nil, false, err
	}
	if backend == "" || backend != d.Route.Backend || len(m) == 0 {
		return nil, false, nil
	}
	return newUIDLMapper(m), true, nil
}

// bridgeUIDL is bridge for an account with a UIDL map: the session goes
// through the same BridgeSession (route changes, idle timeout, metrics)
// but its "backend" is one end of a pipe, and a relay between the pipe
// and the real backend reads the TRANSACTION state command by command and
// rewrites the UIDL answers. Everything else passes unchanged; message
// numbers, LIST, RETR, TOP and DELE are the backend's.
func (s *session) bridgeUIDL(ctx context.Context, log interface{ Info(string, ...any) }, d proxy.Decision, b *backend, okLine string, u *uidlMapper) error {
	front, back := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		relayUIDL(back, b, u)
	}()
	up, down, idled, err := s.Bridge(ctx, d, proxy.POP3, front, nil, okLine, nil)
	front.Close()
	b.nc.Close()
	<-done
	if err != nil {
		return err
	}
	log.Info("session ended", "up", up, "down", down, "idle_timeout", idled, "uidl_map", len(u.m))
	return errClose
}

// multiLine reports whether a positive answer to the command has a body
// ending in "." (RFC 1939, RFC 2449 CAPA).
func multiLine(cmd string, hasArg bool) bool {
	switch cmd {
	case "CAPA", "RETR", "TOP":
		return true
	case "LIST", "UIDL":
		return !hasArg
	}
	return false
}

// relayUIDL serves the client side of the pipe until either side ends.
// Commands are handled one at a time, so pipelining clients work (their
// commands wait in the pipe).
func relayUIDL(client net.Conn, b *backend, u *uidlMapper) {
	defer client.Close()
	defer b.nc.Close()
	cr := bufio.NewReaderSize(client, 1024)
	cw := bufio.NewWriterSize(client, 32*1024)
	for {
		line, err := wire.ReadLine(cr, wire.MaxLine)
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(b.nc, "%s\r\n", line); err != nil {
			return
		}
		name, arg, _ := strings.Cut(string(line), " ")
		name = strings.ToUpper(name)
		arg = strings.TrimSpace(arg)
		status, err := b.line()
		if err != nil {
			return
		}
		ok := strings.HasPrefix(status, "+OK")
		switch {
		case name == "UIDL" && ok && arg != "":
			// "+OK n uidl"
			f := strings.Fields(status)
			if len(f) == 3 {
				status = f[0] + " " + f[1] + " " + u.uidl(f[2])
			}
			fmt.Fprintf(cw, "%s\r\n", status)
		case name == "UIDL" && ok:
			fmt.Fprintf(cw, "%s\r\n", status)
			for {
				l, err := b.line()
				if err != nil {
					return
				}
				if l == "." {
					break
				}
				if n, id, found := strings.Cut(l, " "); found {
					l = n + " " + u.uidl(strings.TrimSpace(id))
				}
				fmt.Fprintf(cw, "%s\r\n", l)
			}
			cw.WriteString(".\r\n")
		case ok && multiLine(name, arg != ""):
			fmt.Fprintf(cw, "%s\r\n", status)
			if err := copyBody(cw, b.br); err != nil {
				return
			}
		default:
			fmt.Fprintf(cw, "%s\r\n", status)
		}
		if err := cw.Flush(); err != nil {
			return
		}
		if name == "QUIT" {
			return
		}
	}
}

// copyBody copies a multi-line body, up to and including its "." line,
// line by line without a limit on the line length.
func copyBody(w io.Writer, br *bufio.Reader) error {
	start := true
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 {
			if start && (bytes.Equal(frag, []byte(".\r\n")) || bytes.Equal(frag, []byte(".\n"))) {
				_, werr := w.Write(frag)
				return werr
			}
			if _, werr := w.Write(frag); werr != nil {
				return werr
			}
			start = frag[len(frag)-1] == '\n'
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		default:
			return err
		}
	}
}
