package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/routes"
)

// fakeRouter is a fixed in-memory proxy.Router for in-process tests.
type fakeRouter struct {
	routes   map[string]routes.Route
	backends map[string]*proxy.Backend
}

var _ proxy.Router = (*fakeRouter)(nil)

func (f *fakeRouter) Lookup(_ context.Context, id string) (proxy.Decision, error) {
	r, ok := f.routes[routes.Normalize(id)]
	if !ok {
		return proxy.Decision{Identifier: id}, proxy.ErrUnknown
	}
	b, ok := f.backends[r.Backend]
	if !ok {
		return proxy.Decision{Identifier: id, Route: r}, proxy.ErrBackend
	}
	return proxy.Decision{Identifier: id, Route: r, Backend: b}, nil
}

func (f *fakeRouter) Await(ctx context.Context, id string) (proxy.Decision, error) {
	d, err := f.Lookup(ctx, id)
	if err == nil && d.Frozen() {
		return d, proxy.ErrFrozen
	}
	return d, err
}

func (f *fakeRouter) KnownDomain(d string) bool { return routes.Domain(d) == "example.test" }

func (f *fakeRouter) Track(proxy.Decision, proxy.Protocol, func(string)) func() { return func() {} }

// acceptAll is an in-process LMTP/SMTP backend that accepts everything
// except recipients starting with "bad", and counts deliveries.
type acceptAll struct {
	addr      string
	mu        sync.Mutex
	delivered int
}

type acceptSession struct{ be *acceptAll }

func (a *acceptAll) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &acceptSession{a}, nil }
func (s *acceptSession) Reset()                                      {}
func (s *acceptSession) Logout() error                               { return nil }
func (s *acceptSession) Mail(string, *gosmtp.MailOptions) error      { return nil }
func (s *acceptSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if strings.HasPrefix(to, "bad") {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	return nil
}
func (s *acceptSession) Data(r io.Reader) error {
	// An incomplete message (connection closed before the final dot) is
	// not delivered, as on every real server.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.be.mu.Lock()
	s.be.delivered++
	s.be.mu.Unlock()
	return nil
}

// inProcess starts a fake LMTP backend and a proxy front of the given mode
// routing every example.test recipient to it.
func inProcess(t testing.TB, mode Mode) (addr string, srv *Server) {
	addr, srv, _ = inProcessBackend(t, mode)
	return addr, srv
}

// inProcessBackend is inProcess that also returns the fake backend.
func inProcessBackend(t testing.TB, mode Mode) (addr string, srv *Server, be *acceptAll) {
	t.Helper()
	be = &acceptAll{}
	bs := gosmtp.NewServer(be)
	bs.LMTP = true
	bs.Network = "tcp"
	bs.ErrorLog = errorLogDiscard{}
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be.addr = bln.Addr().String()
	go bs.Serve(bln)
	t.Cleanup(func() { bs.Close() })
	ep := proxy.Endpoint{Address: bln.Addr().String(), AllowPlaintext: true}
	fr := &fakeRouter{
		routes: map[string]routes.Route{},
		backends: map[string]*proxy.Backend{"fake": {Name: "fake", Endpoints: map[proxy.Protocol]proxy.Endpoint{
			proxy.LMTP: ep, proxy.Submission: ep,
		}}},
	}
	for _, u := range []string{"u@example.test", "v@example.test", "bad@example.test"} {
		fr.routes[u] = routes.Route{Account: u, Backend: "fake", State: routes.Active, Generation: 1}
	}
	fr.routes["frozen@example.test"] = routes.Route{Account: "frozen@example.test", Backend: "fake", State: routes.Frozen}
	srv, err = NewServer(&Options{Mode: mode, Router: fr, AllowInsecureAuth: true, BackendTimeout: 2 * time.Second, IdleTimeout: 5 * time.Second, MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv, be
}

type errorLogDiscard struct{}

func (errorLogDiscard) Printf(string, ...any) {}
func (errorLogDiscard) Println(...any)        {}

// transcript sends input (then half-closes) and returns everything the
// server wrote until it closed the connection.
func transcript(t testing.TB, addr string, input []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write(input)
		c.(*net.TCPConn).CloseWrite()
	}()
	out, _ := io.ReadAll(c)
	return string(out)
}

// TestDeliveryTranscripts checks the proxy's own replies in-process.
func TestDeliveryTranscripts(t *testing.T) {
	big := strings.Repeat(strings.Repeat("y", 998)+"\r\n", 1100) // > MaxMessageBytes (1 MiB)
	tests := map[string]struct {
		mode      Mode
		input     string
		want      []string
		delivered int
	}{
		"smtp happy path": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
			[]string{"220 ", "250 2.0.0 Roger", "250 2.0.0 I'll make sure", "354 ", "250 2.0.0 ", "221 "}, 1},
		"smtp bdat": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\nBDAT 16 LAST\r\nSubject: x\r\n\r\nhiQUIT\r\n",
			[]string{"250 2.0.0 ", "221 "}, 1},
		"lmtp bdat": {ModeLMTP, "LHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\nRCPT TO:<v@example.test>\r\nBDAT 5\r\nSubjeBDAT 10 LAST\r\nct: x\r\n\r\nhiQUIT\r\n",
			[]string{"250 2.0.0 <u@example.test> ", "250 2.0.0 <v@example.test> "}, 1},
		"too large": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n" + big + ".\r\nQUIT\r\n",
			[]string{"552 5.3.4 "}, 0},
		"size declared too large": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example> SIZE=99999999\r\nQUIT\r\n",
			[]string{"552 5.3.4 "}, 0},
		"relay denied": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<x@elsewhere.example>\r\nQUIT\r\n",
			[]string{"550 5.7.1 Relaying denied"}, 0},
		"frozen": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<frozen@example.test>\r\nQUIT\r\n",
			[]string{"451 4.2.0 "}, 0},
		"unknown": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<who@example.test>\r\nQUIT\r\n",
			[]string{"550 5.1.1 "}, 0},
		"backend refusal passes through": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<bad@example.test>\r\nQUIT\r\n",
			[]string{"550 5.1.1 no such user"}, 0},
		"lmtp per recipient": {ModeLMTP, "LHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\nRCPT TO:<bad@example.test>\r\nRCPT TO:<v@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
			[]string{"550 5.1.1 no such user", "250 2.0.0 <u@example.test> ", "250 2.0.0 <v@example.test> "}, 1},
		"submission needs auth": {ModeSubmission, "EHLO c\r\nMAIL FROM:<s@example.test>\r\nQUIT\r\n",
			[]string{"AUTH PLAIN LOGIN", "502 5.7.0 "}, 0},
		"data without rcpt": {ModeSMTP, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nDATA\r\nQUIT\r\n",
			[]string{"502 5.5.1 Missing RCPT"}, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			addr, srv, be := inProcessBackend(t, tc.mode)
			out := transcript(t, addr, []byte(tc.input))
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			be.mu.Lock()
			delivered := be.delivered
			be.mu.Unlock()
			if delivered != tc.delivered {
				t.Errorf("backend got %d messages, want %d", delivered, tc.delivered)
			}
			if srv.Panics() != 0 {
				t.Errorf("%d panics", srv.Panics())
			}
		})
	}
}

func TestXCLIENTCommand(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4444}
	v6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 25}
	tests := map[string]struct {
		adv  string
		ci   clientInfo
		want string
	}{
		"dovecot":      {"ADDR PORT PROTO HELO LOGIN SESSION TTL TIMEOUT", clientInfo{addr: tcp, helo: "mx.example", proto: "ESMTP"}, "XCLIENT ADDR=192.0.2.7 PORT=4444 HELO=mx.example PROTO=ESMTP"},
		"ipv6":         {"ADDR", clientInfo{addr: v6}, "XCLIENT ADDR=IPV6:2001:db8::1"},
		"xtext":        {"HELO LOGIN", clientInfo{helo: "a b=c+d", login: "ü@x"}, "XCLIENT HELO=a+20b+3Dc+2Bd LOGIN=+C3+BC@x"},
		"nothing":      {"NAME", clientInfo{addr: tcp}, ""},
		"lower-case":   {"addr", clientInfo{addr: tcp}, "XCLIENT ADDR=192.0.2.7"},
		"not tcp addr": {"ADDR PORT", clientInfo{addr: &net.UnixAddr{Name: "/x"}}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, xclientCommand(tc.adv, tc.ci)); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestSplitStatus(t *testing.T) {
	tests := map[string]struct {
		code int
		text string
		want gosmtp.SMTPError
	}{
		"enhanced":    {250, "2.0.0 <a@b> Saved", gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0}, Message: "<a@b> Saved"}},
		"no enhanced": {250, "Ok", gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.NoEnhancedCode, Message: "Ok"}},
		"wrong class": {250, "5.0.0 odd", gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.NoEnhancedCode, Message: "5.0.0 odd"}},
		"empty":       {250, "", gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.NoEnhancedCode, Message: "OK"}},
		"only code":   {250, "2.1.5", gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 1, 5}, Message: "OK"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, *splitStatus(tc.code, tc.text)); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestReadReply(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Reply
		wantErr bool
	}{
		"single":      {"250 ok\r\n", Reply{Code: 250, Lines: []string{"ok"}}, false},
		"multi":       {"250-a\r\n250-B C\r\n250 d\r\n", Reply{Code: 250, Lines: []string{"a", "B C", "d"}}, false},
		"bare code":   {"220\r\n", Reply{Code: 220, Lines: []string{""}}, false},
		"code change": {"250-a\r\n251 b\r\n", Reply{}, true},
		"garbage":     {"hello\r\n", Reply{}, true},
		"eof":         {"250-a\r\n", Reply{}, true},
		"bad sep":     {"250xok\r\n", Reply{}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Error(diff)
				}
			}
		})
	}
}

func TestLoginServer(t *testing.T) {
	var gotUser, gotPass string
	auth := func(u, p string) error {
		gotUser, gotPass = u, p
		if p != "pw" {
			return errors.New("bad")
		}
		return nil
	}
	// Without an initial response.
	l := &loginServer{auth: auth}
	ch, done, err := l.Next(nil)
	if string(ch) != "Username:" || done || err != nil {
		t.Fatalf("step 1: %q %v %v", ch, done, err)
	}
	ch, done, err = l.Next([]byte("user"))
	if string(ch) != "Password:" || done || err != nil {
		t.Fatalf("step 2: %q %v %v", ch, done, err)
	}
	if _, done, err = l.Next([]byte("pw")); !done || err != nil || gotUser != "user" || gotPass != "pw" {
		t.Fatalf("step 3: %v %v %q %q", done, err, gotUser, gotPass)
	}
	// With the user name as initial response.
	l = &loginServer{auth: auth}
	if ch, _, _ := l.Next([]byte("u2")); string(ch) != "Password:" {
		t.Fatalf("initial response: %q", ch)
	}
	if _, done, err := l.Next([]byte("nope")); !done || err == nil {
		t.Fatalf("wrong password accepted")
	}
	if _, _, err := l.Next([]byte("more")); err == nil {
		t.Fatal("extra step accepted")
	}
}

func TestStripRcpt(t *testing.T) {
	for in, want := range map[string]string{
		"2.0.0 <a@b> abc Saved": "2.0.0 abc Saved",
		"<a@b> Saved":           "Saved",
		"2.0.0 Ok":              "2.0.0 Ok",
		"Ok":                    "Ok",
	} {
		if got := stripRcpt(in, "a@b"); got != want {
			t.Errorf("stripRcpt(%q) = %q, want %q", in, got, want)
		}
	}
}

// statePrefixes put a session into each protocol state before a fuzz
// input is replayed (mox imapserver/fuzz_test.go).
var statePrefixes = []string{
	"",
	"EHLO fuzz.example\r\n",
	"EHLO fuzz.example\r\nMAIL FROM:<s@remote.example>\r\n",
	"EHLO fuzz.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\n",
}

// FuzzSMTP replays arbitrary command lines, MAIL/RCPT parameters included,
// against the SMTP, LMTP and submission fronts in every protocol state,
// routed to an in-process backend; the proxy must answer without panicking
// and close the connection when the client does.
func FuzzSMTP(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\n",
		"MAIL FROM:<> AUTH=<>\r\n",
		"MAIL FROM:<a@b> SIZE=x\r\n",
		"RCPT TO:<u@example.test> NOTIFY=SUCCESS ORCPT=rfc822;u@example.test\r\n",
		"RCPT TO:<postmaster>\r\n",
		"RCPT TO:<\"q u\"@example.test>\r\n",
		"RCPT TO:<x@[127.0.0.1]>\r\n",
		"RCPT TO:<@route:u@example.test>\r\n",
		"DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\n",
		"BDAT 5 LAST\r\nhello",
		"BDAT 3\r\nabcBDAT 0 LAST\r\n",
		"AUTH PLAIN AHVAZXhhbXBsZS50ZXN0AHB3\r\n",
		"AUTH LOGIN\r\ndXNlcg==\r\ncHc=\r\n",
		"AUTH PLAIN\r\n*\r\n",
		"RSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nSTARTTLS\r\n",
		"LHLO x\r\nHELO x\r\n",
		"XCLIENT ADDR=1.2.3.4\r\n",
		strings.Repeat("A", 3000) + "\r\n",
		"\x00\xff\r\n\r\n",
	} {
		f.Add(s)
	}
	addrs := map[Mode]string{}
	var servers []*Server
	for _, m := range []Mode{ModeSMTP, ModeLMTP, ModeSubmission} {
		a, s := inProcess(f, m)
		addrs[m] = a
		servers = append(servers, s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		for _, m := range []Mode{ModeSMTP, ModeLMTP, ModeSubmission} {
			for _, p := range statePrefixes {
				if m == ModeLMTP {
					p = strings.Replace(p, "EHLO", "LHLO", 1)
				}
				transcript(t, addrs[m], []byte(p+input))
			}
		}
		for _, s := range servers {
			if n := s.Panics(); n != 0 {
				t.Fatalf("%d panics", n)
			}
		}
	})
}

// FuzzReply feeds arbitrary backend replies to the reply reader.
func FuzzReply(f *testing.F) {
	for _, s := range []string{"250-a\r\n250 b\r\n", "220 x\r\n", "999 x\r\n", "25", "250-" + strings.Repeat("x", 5000) + "\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := readReply(bufio.NewReader(strings.NewReader(in)))
		if err == nil && (rep.Code < 100 || rep.Code > 599 || len(rep.Lines) == 0) {
			t.Fatalf("accepted bad reply %q: %+v", in, rep)
		}
		_ = extensions(rep)
		_ = fmt.Sprint(splitStatus(250, strings.Join(rep.Lines, " ")))
	})
}

// TestShutdownDrains: a connection that never said EHLO and an idle
// session get 421 at once; a transaction in progress finishes first.
func TestShutdownDrains(t *testing.T) {
	addr, srv, be := inProcessBackend(t, ModeSMTP)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "220 ") {
			t.Fatalf("greeting %q", l)
		}
		return c, br
	}
	expect := func(br *bufio.Reader, prefix string) {
		t.Helper()
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("want %q: %v", prefix, err)
			}
			if strings.HasPrefix(l, prefix) {
				return
			}
			if len(l) > 3 && l[3] == '-' {
				continue
			}
			t.Fatalf("got %q, want %q", l, prefix)
		}
	}
	_, br1 := dial() // never says EHLO
	c2, br2 := dial()
	fmt.Fprint(c2, "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@example.test>\r\n")
	expect(br2, "250 ")
	expect(br2, "250 ")
	expect(br2, "250 ")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()

	expect(br1, "421 ")
	fmt.Fprint(c2, "DATA\r\nSubject: x\r\n\r\nlast one\r\n.\r\n")
	expect(br2, "354 ")
	expect(br2, "250 ")
	expect(br2, "421 ")
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.delivered != 1 {
		t.Errorf("delivered %d, want the transaction in progress", be.delivered)
	}
}
