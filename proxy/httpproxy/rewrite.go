package httpproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// jmapWebSocket is the capability whose "url" names the JMAP WebSocket
// endpoint (RFC 8887 4).
const jmapWebSocket = "urn:ietf:params:jmap:websocket"

// sessionURLFields are the JMAP session properties holding URLs or URL
// templates (RFC 8620 2).
var sessionURLFields = []string{"apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	info, _ := resp.Request.Context().Value(reqKey{}).(*reqInfo)
	if info == nil {
		return nil
	}
	if info.cs != nil && info.cs.isMoved() {
		resp.Header.Set("Connection", "close")
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The backend refused the request. Its answer (realm, body,
		// Server header) would tell which backend holds the account, so
		// the client gets the proxy's one 401 instead, after the failure
		// delay.
		ctx := resp.Request.Context()
		if ar, ok := ctx.Value(authKey{}).(*authReq); ok {
			if resp.Request.ContentLength == 0 {
				// Only bodiless requests teach the delay: a client
				// that trickles a body would otherwise make every
				// failure wait as long.
				p.opts.FailureDelay.Observe(time.Since(ar.start))
			}
			p.log.Debug("backend refused credentials", "backend", info.backend, "www_authenticate", resp.Header.Values("WWW-Authenticate"))
			ar.failed(ctx)
		}
		resp.Body.Close()
		resp.Header = http.Header{}
		unauthorized(resp.Header, resp.Request)
		resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp.Header.Set("X-Content-Type-Options", "nosniff")
		body := unauthorizedBody + "\n"
		resp.Body = io.NopCloser(strings.NewReader(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.ContentLength = int64(len(body))
		resp.TransferEncoding = nil
		resp.Uncompressed = false
		if info.cs != nil && info.cs.isMoved() {
			resp.Header.Set("Connection", "close")
		}
		return nil
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", publicURL(loc, info.target, info.public, false))
	}
	if cl := resp.Header.Get("Content-Location"); cl != "" {
		resp.Header.Set("Content-Location", publicURL(cl, info.target, info.public, false))
	}
	if isSessionCandidate(resp) {
		return p.rewriteSession(resp, info)
	}
	if info.cs != nil && isEventStream(resp) {
		s := &stream{ReadCloser: resp.Body, cs: info.cs, cancel: info.cancel}
		resp.Body = s
		info.cs.addStream(s)
	}
	return nil
}

// isEventStream says whether a response is an EventSource stream (JMAP
// push, RFC 8620 7.3): one that only ends when the client goes away.
func isEventStream(resp *http.Response) bool {
	if resp.StatusCode != http.StatusOK {
		return false
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/event-stream"
}

// stream is the body of an EventSource response. When the account's route
// changes, end stops the request to the old backend and the body then
// reads as a clean end of stream (the events sent so far are whole), so
// that the client reconnects and is routed to the new backend.
type stream struct {
	io.ReadCloser
	cs     *connState
	cancel context.CancelFunc
	ended  atomic.Bool
}

// Read implements io.Reader.
func (s *stream) Read(b []byte) (int, error) {
	n, err := s.ReadCloser.Read(b)
	if err != nil && s.ended.Load() {
		return n, io.EOF
	}
	return n, err
}

// Close implements io.Closer.
func (s *stream) Close() error {
	s.cs.removeStream(s)
	return s.ReadCloser.Close()
}

func (s *stream) end() {
	s.ended.Store(true)
	s.cancel()
}

// isSessionCandidate says whether a response may be a JMAP session object:
// a successful GET answered with JSON, not a blob download.
func isSessionCandidate(resp *http.Response) bool {
	if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return false
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" {
		return false
	}
	return !strings.Contains(resp.Request.URL.Path, "/download/")
}

// rewriteSession rewrites the URLs of a JMAP session object to the public
// origin. Anything that turns out not to be a session passes unchanged.
func (p *Proxy) rewriteSession(resp *http.Response, info *reqInfo) error {
	if resp.ContentLength > p.opts.MaxSessionBytes {
		return nil
	}
	enc := strings.ToLower(resp.Header.Get("Content-Encoding"))
	if enc != "" && enc != "identity" && enc != "gzip" {
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, p.opts.MaxSessionBytes+1))
	if err != nil {
		return err
	}
	restore := func() error {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(raw), resp.Body), resp.Body}
		return nil
	}
	if int64(len(raw)) > p.opts.MaxSessionBytes {
		return restore()
	}
	body := raw
	if enc == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return restore()
		}
		body, err = io.ReadAll(io.LimitReader(zr, p.opts.MaxSessionBytes+1))
		if err != nil || int64(len(body)) > p.opts.MaxSessionBytes {
			return restore()
		}
	}
	out, ok := RewriteSession(body, info.target, info.public)
	if !ok {
		return restore()
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Etag") // the representation changed
	return nil
}

// RewriteSession rewrites the URL properties of a JMAP session object
// (apiUrl, downloadUrl, uploadUrl, eventSourceUrl and the WebSocket
// capability's url) so that they point at the public origin instead of the
// backend. ok is false when body is not a JMAP session object. Other
// properties keep their values; key order may change.
func RewriteSession(body []byte, backend, public *url.URL) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var s map[string]any
	if err := dec.Decode(&s); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data: not one JSON object
	}
	if _, ok := s["apiUrl"].(string); !ok {
		return nil, false
	}
	if _, ok := s["capabilities"].(map[string]any); !ok {
		return nil, false
	}
	for _, f := range sessionURLFields {
		if v, ok := s[f].(string); ok {
			s[f] = publicURL(v, backend, public, true)
		}
	}
	caps := s["capabilities"].(map[string]any)
	if ws, ok := caps[jmapWebSocket].(map[string]any); ok {
		if v, ok := ws["url"].(string); ok {
			ws["url"] = toWebSocket(publicURL(v, backend, public, true))
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, false
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), true
}

// publicURL maps a URL (or URL template: RFC 6570 braces are kept as they
// are) that the backend produced to the public origin, keeping path and
// query and removing the backend endpoint's path prefix. Relative
// references only lose the prefix. An absolute URL moves when its host is
// the backend's, or always when force is set (JMAP session URLs: a client
// must come back through the proxy, whatever host name the backend
// believes it has); redirects to other hosts (an identity provider) stay.
// ws/wss URLs get the WebSocket scheme that matches the public scheme.
func publicURL(s string, backend, public *url.URL, force bool) string {
	scheme, rest, abs := strings.Cut(s, "://")
	path := s
	if abs {
		scheme = strings.ToLower(scheme)
		switch scheme {
		case "http", "https", "ws", "wss":
		default:
			return s
		}
		host := rest
		path = ""
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			host, path = rest[:i], rest[i:]
		}
		if !force && !strings.EqualFold(host, backend.Host) && !sameHostDefaultPort(host, backend) {
			return s
		}
	} else if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return s
	}
	if prefix := strings.TrimSuffix(backend.Path, "/"); prefix != "" && strings.HasPrefix(path, prefix) {
		path = path[len(prefix):]
		if path == "" || (path[0] != '/' && path[0] != '?' && path[0] != '#') {
			path = "/" + path
		}
	}
	if !abs && !force {
		return path
	}
	out := public.Scheme
	if scheme == "ws" || scheme == "wss" {
		out = "ws"
		if public.Scheme == "https" {
			out = "wss"
		}
	}
	return out + "://" + public.Host + path
}

// toWebSocket gives an http(s) URL the matching ws(s) scheme.
func toWebSocket(u string) string {
	if r, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + r
	}
	if r, ok := strings.CutPrefix(u, "http://"); ok {
		return "ws://" + r
	}
	return u
}

// sameHostDefaultPort matches "host" against a backend "host:80" (http) or
// "host:443" (https) and the reverse.
func sameHostDefaultPort(host string, backend *url.URL) bool {
	def := "80"
	if backend.Scheme == "https" {
		def = "443"
	}
	h, p := backend.Hostname(), backend.Port()
	if p == "" {
		return strings.EqualFold(host, h+":"+def)
	}
	return p == def && strings.EqualFold(host, h)
}
