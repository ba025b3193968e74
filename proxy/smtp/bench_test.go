package smtp

import (
	"net"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// BenchmarkLMTP delivers one message per iteration (connect, LHLO, MAIL,
// RCPT, DATA, QUIT) to Dovecot's LMTP, directly and through the proxy's
// LMTP front; compare deliveries/s. `just bench-proxy-smtp` runs it.
func BenchmarkLMTP(b *testing.B) {
	e := newBenchEnv(b)
	acct := e.set.NewAccount(b)
	e.route(acct.Email, "dovecot")
	plain := e.set.NewAccount(b)
	e.route(plain.Email, "dovecot-master") // same Dovecot, no XCLIENT for LMTP
	msg := strings.Repeat("x", 60) + "\r\n"
	body := "From: <s@remote.example>\r\nTo: <" + acct.Email + ">\r\nSubject: bench\r\n\r\n" + strings.Repeat(msg, 40) // ~2.5 KB
	for _, tc := range []struct{ name, addr, rcpt string }{
		{"direct", e.set.Dovecot.LMTP, acct.Email},
		{"proxy", e.lmtp, acct.Email},
		{"proxy-noxclient", e.lmtp, plain.Email},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				conn, err := net.Dial("tcp", tc.addr)
				if err != nil {
					b.Fatal(err)
				}
				c := gosmtp.NewClientLMTP(conn)
				if err := c.SendMail("s@remote.example", []string{tc.rcpt}, strings.NewReader(body)); err != nil {
					b.Fatal(err)
				}
				c.Quit()
				c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkLMTPOverhead measures the proxy's own cost per delivery against
// an in-process LMTP backend (no Dovecot): directly and through the proxy.
func BenchmarkLMTPOverhead(b *testing.B) {
	proxyAddr, _, be := inProcessBackend(b, ModeLMTP)
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 60)+"\r\n", 40)
	for _, tc := range []struct{ name, addr string }{{"direct", be.addr}, {"proxy", proxyAddr}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				conn, err := net.Dial("tcp", tc.addr)
				if err != nil {
					b.Fatal(err)
				}
				c := gosmtp.NewClientLMTP(conn)
				if err := c.SendMail("s@remote.example", []string{"u@example.test"}, strings.NewReader(body)); err != nil {
					b.Fatal(err)
				}
				c.Quit()
				c.Close()
			}
		})
	}
}
