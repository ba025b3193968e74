package pop3

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestUIDLMapper(t *testing.T) {
	u := newUIDLMapper(map[string]string{"t1": "s1", "t2": "~t3", "t4": "~~t5"})
	long := strings.Repeat("x", 70)
	for _, tc := range []struct{ target, want string }{
		{"t1", "s1"},     // migrated: the source's UIDL
		{"t9", "~t9"},    // new
		{"t3", "~~t3"},   // "~t3" is a source UIDL: prefixed again
		{"~t5", "~~~t5"}, // "~~t5" is taken too
		{"s1", "~s1"},    // a target UIDL equal to a source one is still new
	} {
		if got := u.uidl(tc.target); got != tc.want {
			t.Errorf("uidl(%q) = %q, want %q", tc.target, got, tc.want)
		}
	}
	if got := u.uidl(long); len(got) > MaxUIDL || !strings.HasPrefix(got, "~") || got != u.uidl(long) {
		t.Errorf("long UIDL %q", got)
	}
}

// relayPair runs relayUIDL between a client pipe and a scripted backend
// pipe and returns both test ends.
func relayPair(t testing.TB, m map[string]string) (client, server net.Conn, done chan struct{}) {
	c1, c2 := net.Pipe()
	b1, b2 := net.Pipe()
	done = make(chan struct{})
	go func() {
		defer close(done)
		relayUIDL(c2, &backend{nc: b1, br: bufio.NewReader(b1)}, newUIDLMapper(m))
	}()
	return c1, b2, done
}

// TestRelayUIDL: UIDL answers (all and one) are rewritten, other answers
// and multi-line bodies (a RETR whose line starts with a stuffed dot, a
// line longer than the reader's buffer) pass unchanged, QUIT ends it.
func TestRelayUIDL(t *testing.T) {
	client, server, done := relayPair(t, map[string]string{"100.1": "00000001aaaa"})
	defer client.Close()
	defer server.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	cr, sr := bufio.NewReader(client), bufio.NewReader(server)
	long := strings.Repeat("y", 100_000)
	script := []struct{ cmd, reply, want string }{
		{"UIDL", "+OK\r\n1 100.1\r\n2 100.2\r\n.\r\n", "+OK\r\n1 00000001aaaa\r\n2 ~100.2\r\n.\r\n"},
		{"UIDL 2", "+OK 2 100.2\r\n", "+OK 2 ~100.2\r\n"},
		{"uidl 1", "+OK 1 100.1\r\n", "+OK 1 00000001aaaa\r\n"},
		{"UIDL 3", "-ERR no such message\r\n", "-ERR no such message\r\n"},
		{"LIST", "+OK\r\n1 10\r\n.\r\n", "+OK\r\n1 10\r\n.\r\n"},
		{"RETR 1", "+OK\r\nSubject: a\r\n\r\n..stuffed\r\n" + long + "\r\n.\r\n", "+OK\r\nSubject: a\r\n\r\n..stuffed\r\n" + long + "\r\n.\r\n"},
		{"STAT", "+OK 2 20\r\n", "+OK 2 20\r\n"},
		{"QUIT", "+OK bye\r\n", "+OK bye\r\n"},
	}
	for _, s := range script {
		go client.Write([]byte(s.cmd + "\r\n"))
		line, err := sr.ReadString('\n')
		if err != nil || line != s.cmd+"\r\n" {
			t.Fatalf("backend got %q %v, want %q", line, err, s.cmd)
		}
		go server.Write([]byte(s.reply))
		got := make([]byte, len(s.want))
		if _, err := io.ReadFull(cr, got); err != nil || string(got) != s.want {
			t.Fatalf("%s: client got %.200q %v, want %.200q", s.cmd, got, err, s.want)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end after QUIT")
	}
}

// FuzzRelayUIDL: whatever the backend answers, the relay neither panics
// nor hangs once both sides are closed.
func FuzzRelayUIDL(f *testing.F) {
	f.Add([]byte("+OK\r\n1 a\r\n.\r\n+OK 1 a\r\n+OK\r\nx\r\n.\r\n"))
	f.Add([]byte("+OK 1\r\n+OK\r\n1\r\n"))
	f.Add([]byte("-ERR\r\n+OK\r\n"))
	f.Fuzz(func(t *testing.T, backendBytes []byte) {
		client, server, done := relayPair(t, map[string]string{"a": "b"})
		go func() {
			server.Write(backendBytes)
			server.Close()
		}()
		go io.Copy(io.Discard, server)
		go func() {
			for _, c := range []string{"UIDL", "UIDL 1", "RETR 1", "CAPA", "QUIT"} {
				if _, err := client.Write([]byte(c + "\r\n")); err != nil {
					return
				}
			}
		}()
		go io.Copy(io.Discard, client)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("relay hangs")
		}
		client.Close()
	})
}

// BenchmarkRelayRETR: one RETR of a 2 KB message through the UIDL relay
// (both ends in-process), the per-command cost of a mapped session.
func BenchmarkRelayRETR(b *testing.B) {
	client, server, done := relayPair(b, map[string]string{"a": "b"})
	defer func() { client.Close(); server.Close(); <-done }()
	body := "+OK\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 25) + ".\r\n"
	cr, sr := bufio.NewReader(client), bufio.NewReader(server)
	go func() {
		for {
			if _, err := sr.ReadString('\n'); err != nil {
				return
			}
			if _, err := server.Write([]byte(body)); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, len(body))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.Write([]byte("RETR 1\r\n")); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(cr, buf); err != nil {
			b.Fatal(err)
		}
	}
}
