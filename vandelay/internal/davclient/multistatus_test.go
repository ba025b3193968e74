package davclient

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
	f.Add([]byte(apacheListing))
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
				entryOf(&ms.Responses[i])
			}
		}
	})
}

// apacheListing is Apache mod_dav_fs's answer to a files PROPFIND Depth 1
// (shortened): lower-case percent escapes, weak ETags for fresh writes,
// httpd/unix-directory for folders.
const apacheListing = `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:"><D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/"><D:href>/files/a@example.test/</D:href><D:propstat><D:prop><lp1:resourcetype><D:collection/></lp1:resourcetype><lp1:getlastmodified>Mon, 07 Dec 2026 03:15:10 GMT</lp1:getlastmodified><lp1:getetag>W/"1000-66202a225d522"</lp1:getetag><D:getcontenttype>httpd/unix-directory</D:getcontenttype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/"><D:href>/files/a@example.test/a%25b%20c.txt</D:href><D:propstat><D:prop><lp1:resourcetype/><lp1:getcontentlength>5</lp1:getcontentlength><lp1:getlastmodified>Mon, 07 Dec 2026 03:15:10 GMT</lp1:getlastmodified><lp1:getetag>"5-66202a2247d62"</lp1:getetag><D:getcontenttype>text/plain</D:getcontenttype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response xmlns:lp1="DAV:"><D:href>/files/a@example.test/d%c3%a9j%c3%a0/</D:href><D:propstat><D:prop><lp1:resourcetype><D:collection/></lp1:resourcetype><lp1:getetag>W/"1000-1"</lp1:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>`

// TestFilesEntries: a PROPFIND of files gives each entry's href as sent,
// folder or file, size, type, time and the ETag with its weak prefix.
func TestFilesEntries(t *testing.T) {
	ms, err := ParseMultistatus([]byte(apacheListing))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range ms.Responses {
		e, ok := entryOf(&ms.Responses[i])
		if !ok {
			t.Fatalf("response %d: no properties", i)
		}
		got = append(got, fmt.Sprintf("%s dir=%v size=%d type=%s mod=%s etag=%s", e.Href, e.Collection, e.Size, e.MediaType, e.Modified.Format(time.RFC3339), e.ETag))
	}
	want := []string{
		`/files/a@example.test/ dir=true size=0 type=httpd/unix-directory mod=2026-12-07T03:15:10Z etag=W/"1000-66202a225d522"`,
		`/files/a@example.test/a%25b%20c.txt dir=false size=5 type=text/plain mod=2026-12-07T03:15:10Z etag="5-66202a2247d62"`,
		`/files/a@example.test/d%c3%a9j%c3%a0/ dir=true size=0 type= mod=0001-01-01T00:00:00Z etag=W/"1000-1"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if cleanHref("/files/a@example.test/d%c3%a9j%c3%a0/") != cleanHref("/files/a@example.test/d%C3%A9j%C3%A0") {
		t.Errorf("cleanHref: escapes and trailing slash should not matter")
	}
	if EscapePath("a b/100% #1?/é") != "a%20b/100%25%20%231%3F/%C3%A9" {
		t.Errorf("EscapePath: %s", EscapePath("a b/100% #1?/é"))
	}
}
