package ews_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/Azure/go-ntlmssp"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/ews"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// MS-NLMP 4.2.4 (NTLMv2 authentication) test values.
var (
	specNTHash          = mustHex("a4f49c406510bdcab6824ee7c30fd852") // NTOWFv1("Password"), 4.2.2.1.2
	specResponseKeyNT   = mustHex("0c868a403bfd7a93a3001ef22ef02e3f") // NTOWFv2, 4.2.4.1.1
	specServerChallenge = mustHex("0123456789abcdef")
	specClientChallenge = mustHex("aaaaaaaaaaaaaaaa")
	specNTProofStr      = mustHex("68cd0ab851e51c96aabc927bebef6a1c") // 4.2.4.2.2
	// AV pairs of the CHALLENGE: NbDomainName "Domain", NbComputerName
	// "Server", EOL.
	specTargetInfo = mustHex("02000c0044006f006d00610069006e0001000c005300650072007600650072000000" + "0000")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, r)
	}
	return b
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// ntowfv2 is MS-NLMP 3.3.2's NTOWFv2 from the NT hash (MD4 of the
// password, given: no MD4 is needed in the test).
func ntowfv2(ntHash []byte, user, domain string) []byte {
	return hmacMD5(ntHash, utf16le(strings.ToUpper(user)+domain))
}

// TestNTLMv2Verifier checks the server-side check the recorded NTLM test
// makes against MS-NLMP 4.2.4's published values, so that a passing
// TestEWSNTLM means the AUTHENTICATE message is right by the spec, not
// only by the library that made it.
func TestNTLMv2Verifier(t *testing.T) {
	key := ntowfv2(specNTHash, "User", "Domain")
	if !bytes.Equal(key, specResponseKeyNT) {
		t.Fatalf("NTOWFv2 %x, want %x", key, specResponseKeyNT)
	}
	temp := slices.Concat([]byte{1, 1, 0, 0, 0, 0, 0, 0}, make([]byte, 8), specClientChallenge, make([]byte, 4), specTargetInfo, make([]byte, 4))
	if got := hmacMD5(key, specServerChallenge, temp); !bytes.Equal(got, specNTProofStr) {
		t.Fatalf("NTProofStr %x, want %x", got, specNTProofStr)
	}
}

// field reads an AUTHENTICATE message's payload field at off (len,
// maxlen, offset).
func field(t *testing.T, m []byte, off int) []byte {
	t.Helper()
	if len(m) < off+8 {
		t.Fatalf("AUTHENTICATE message of %d bytes", len(m))
	}
	l, o := int(binary.LittleEndian.Uint16(m[off:])), int(binary.LittleEndian.Uint32(m[off+4:]))
	if o+l > len(m) {
		t.Fatalf("field at %d out of range", off)
	}
	return m[o : o+l]
}

// TestEWSNTLM imports from a server offering Windows authentication only:
// the scheme comes from its WWW-Authenticate, the NTLM handshake runs on
// the first request, the AUTHENTICATE message's NTLMv2 response is valid
// for the password, and every request of the run rides one kept-alive
// connection. The archive is the same as over Basic.
func TestEWSNTLM(t *testing.T) {
	script := "testdata/ews-ntlm.txtar"
	srv := recorded.New(t, script)
	var sl sleeps
	o := options(srv, &sl)
	o.MasterUser, o.Password = `Domain\User`, "Password"
	src, err := ews.New(o)
	if err != nil {
		t.Fatal(err)
	}
	a := vandelaytest.OpenArchive(t)
	res := vandelaytest.Import(t, a, src, nil)
	if res.MessagesAdded != 4 || res.Fetched != 5 {
		t.Errorf("%d added, %d fetched; want 4 distinct messages from 5 fetches", res.MessagesAdded, res.Fetched)
	}
	if !slices.Equal(sl.d, []time.Duration{1500 * time.Millisecond}) {
		t.Errorf("waits %v, want the server's 1500 ms back-off", sl.d)
	}
	vandelaytest.Check(t, a, run1Want(served(t, script)))

	got := srv.Requests("ntlm-authenticate")
	if len(got) != 1 {
		t.Fatalf("%d AUTHENTICATE messages", len(got))
	}
	auth := got[0].Header.Get("Authorization")
	msg, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "NTLM "))
	if err != nil {
		t.Fatal(err)
	}
	nt := field(t, msg, 20)
	domain, user := field(t, msg, 28), field(t, msg, 36)
	if !bytes.Equal(domain, utf16le("Domain")) || !bytes.Equal(user, utf16le("User")) {
		t.Errorf("AUTHENTICATE for %q\\%q", domain, user)
	}
	if len(nt) < 16+28 {
		t.Fatalf("NTLMv2 response of %d bytes", len(nt))
	}
	temp := nt[16:]
	if !bytes.Contains(temp, specTargetInfo[:len(specTargetInfo)-4]) {
		t.Errorf("the response does not carry the server's target info")
	}
	proof := hmacMD5(ntowfv2(specNTHash, "User", "Domain"), specServerChallenge, temp)
	if !bytes.Equal(proof, nt[:16]) {
		t.Errorf("NTProofStr %x, want %x for the password", nt[:16], proof)
	}

	// One connection for the whole run.
	ex, err := recorded.ParseFile(script)
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]bool{}
	for _, e := range ex {
		for _, r := range srv.Requests(e.Name) {
			addrs[r.RemoteAddr] = true
			if e.Name != "ntlm-negotiate" && e.Name != "ntlm-authenticate" && r.Header.Get("Authorization") != "" {
				t.Errorf("%s carried an Authorization header", e.Name)
			}
		}
	}
	if len(addrs) != 1 {
		t.Errorf("requests came on %d connections, want one kept alive: %v", len(addrs), addrs)
	}
}

// TestEWSAuthForced: --auth ntlm against a server that offers Basic only
// fails as an authentication error naming the scheme; Basic is never
// sent. An unknown scheme is a usage error (TestEWSOptions).
func TestEWSAuthForced(t *testing.T) {
	srv := recorded.New(t, "testdata/ews-basic-only.txtar")
	var sl sleeps
	o := options(srv, &sl)
	o.Auth = ews.AuthNTLM
	src, err := ews.New(o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Folders(context.Background())
	if !errors.Is(err, vandelay.ErrAuth) || !strings.Contains(err.Error(), "ntlm") {
		t.Errorf("forced NTLM against Basic only: %v, want an ErrAuth naming ntlm", err)
	}
}

// TestOffered reads WWW-Authenticate values.
func TestOffered(t *testing.T) {
	for _, tc := range []struct {
		in          []string
		ntlm, basic bool
	}{
		{[]string{"Negotiate", "NTLM"}, true, false},
		{[]string{`Basic realm="x"`}, false, true},
		{[]string{`Basic realm="x", NTLM`}, true, true},
		{[]string{"negotiate TlRMTVNTUAACAAAA"}, true, false},
		{[]string{"Bearer", `Digest realm="x"`}, false, false},
		{nil, false, false},
	} {
		if n, b := ews.Offered(tc.in); n != tc.ntlm || b != tc.basic {
			t.Errorf("Offered(%q) = %v %v, want %v %v", tc.in, n, b, tc.ntlm, tc.basic)
		}
	}
}

// FuzzChallenge feeds the NTLM CHALLENGE parser (go-ntlmssp's, which
// reads what the server sends in its 401) and the WWW-Authenticate reader
// arbitrary input, seeded with the recorded challenge: neither may panic.
func FuzzChallenge(f *testing.F) {
	ex, err := recorded.ParseFile("testdata/ews-ntlm.txtar")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ex {
		if v := e.RespHeader.Get("WWW-Authenticate"); strings.HasPrefix(v, "NTLM ") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "NTLM "))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("NTLMSSP\x00\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ews.Offered([]string{string(b)})
		ntlmssp.NewAuthenticateMessage(b, `Domain\User`, "Password", nil)
	})
}
