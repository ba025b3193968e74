package davclient

import (
	"testing"
)

const radicaleMultiget = "<?xml version='1.0' encoding='utf-8'?>\n<multistatus xmlns=\"DAV:\" xmlns:CR=\"urn:ietf:params:xml:ns:carddav\"><response><href>/u%40example.test/contacts/a.vcf</href><propstat><prop><getetag>\"e1\"</getetag><CR:address-data>BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A &amp; B\r\nEND:VCARD\r\n</CR:address-data></prop><status>HTTP/1.1 200 OK</status></propstat></response>" +
	"<response><href>http://127.0.0.1/u%40example.test/contacts/gone.vcf</href><status>HTTP/1.1 404 Not Found</status></response><sync-token>http://radicale.org/ns/sync/abc</sync-token></multistatus>"

// TestParseMultistatusKeepsCRLF: an XML parser turns CRLF in text into
// LF; the multiget must return the vCard's bytes as served.
func TestParseMultistatusKeepsCRLF(t *testing.T) {
	ms, err := ParseMultistatus([]byte(radicaleMultiget))
	if err != nil {
		t.Fatal(err)
	}
	cy, err := ParseMultistatus([]byte(`<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:response><D:href>/a.vcf</D:href><D:propstat><D:prop><C:address-data><![CDATA[BEGIN:VCARD` + "\r\n" + `END:VCARD` + "\r\n" + `]]></C:address-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>`))
	if err != nil || *cy.Responses[0].okProp().AddressData != "BEGIN:VCARD\r\nEND:VCARD\r\n" {
		t.Errorf("CDATA (Cyrus): %v %+v", err, cy)
	}
	if len(ms.Responses) != 2 || ms.SyncToken != "http://radicale.org/ns/sync/abc" {
		t.Fatalf("%+v", ms)
	}
	p := ms.Responses[0].okProp()
	if p == nil || p.AddressData == nil || *p.AddressData != "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A & B\r\nEND:VCARD\r\n" || p.ETag != `"e1"` {
		t.Errorf("address-data: %+v", p)
	}
	if h := ms.Responses[1].Href; h != "/u%40example.test/contacts/gone.vcf" || ms.Responses[1].Status.code() != 404 {
		t.Errorf("second response: %q %q", h, ms.Responses[1].Status)
	}
	for in, want := range map[string]string{
		"<a\r\nb='x\r>'>t\r\n</a>": "<a\r\nb='x\r>'>t&#13;\n</a>",
		"<![CDATA[x\r\n]]>\r":      "<![CDATA[x]]>&#13;<![CDATA[\n]]>&#13;",
		"<!-- c\r -->\r<a/>":       "<!-- c\r -->&#13;<a/>",
		"no cr":                    "no cr",
		"<unterminated \r":         "<unterminated \r",
	} {
		if got := string(keepCR([]byte(in))); got != want {
			t.Errorf("keepCR(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseMultistatus: any answer a server sends parses or fails, never
// panics, and keepCR never loses a byte outside the CRs it escapes.
func FuzzParseMultistatus(f *testing.F) {
	f.Add([]byte(radicaleMultiget))
	f.Add([]byte("<multistatus xmlns=\"DAV:\"><response><href>/a/</href><propstat><prop><resourcetype><collection/></resourcetype></prop></propstat></response></multistatus>"))
	f.Add([]byte("<![CDATA[\r"))
	f.Add([]byte("<a><![CDATA[BEGIN:VCARD\r\nEND:VCARD\r\n]]></a>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := keepCR(b)
		n := 0
		for _, c := range b {
			if c == '\r' {
				n++
			}
		}
		if len(k) < len(b) || len(k) > len(b)+17*n {
			t.Fatalf("keepCR changed %d bytes into %d", len(b), len(k))
		}
		if ms, err := ParseMultistatus(b); err == nil {
			for i := range ms.Responses {
				ms.Responses[i].okProp()
				ms.Responses[i].Status.code()
			}
		}
	})
}
