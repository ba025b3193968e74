package davclient

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// multistatus is the part of a 207 answer (RFC 4918 13) this client
// reads. Unknown elements are skipped by encoding/xml.
type multistatus struct {
	Responses []response `xml:"DAV: response"`
	SyncToken string     `xml:"DAV: sync-token"`
}

type response struct {
	Href      string     `xml:"DAV: href"`
	Status    status     `xml:"DAV: status"`
	Propstats []propstat `xml:"DAV: propstat"`
}

type propstat struct {
	Prop   prop   `xml:"DAV: prop"`
	Status status `xml:"DAV: status"`
}

type status string

// code returns the status line's code ("HTTP/1.1 404 Not Found" → 404),
// 0 when absent or malformed.
func (s status) code() int {
	f := strings.Fields(string(s))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

type resourceType struct {
	Types []xml.Name `xml:",any"`
}

type anyName struct {
	XMLName xml.Name
}

func (r *resourceType) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var v struct {
		Any []anyName `xml:",any"`
	}
	if err := d.DecodeElement(&v, &start); err != nil {
		return err
	}
	for _, a := range v.Any {
		r.Types = append(r.Types, a.XMLName)
	}
	return nil
}

func (r resourceType) has(n xml.Name) bool {
	for _, t := range r.Types {
		if t == n {
			return true
		}
	}
	return false
}

type comp struct {
	Name string `xml:"name,attr"`
}

type prop struct {
	ResourceType           resourceType `xml:"DAV: resourcetype"`
	DisplayName            string       `xml:"DAV: displayname"`
	ETag                   string       `xml:"DAV: getetag"`
	SyncToken              string       `xml:"DAV: sync-token"`
	CTag                   string       `xml:"http://calendarserver.org/ns/ getctag"`
	Color                  string       `xml:"http://apple.com/ns/ical/ calendar-color"`
	AddressBookDescription string       `xml:"urn:ietf:params:xml:ns:carddav addressbook-description"`
	CalendarDescription    string       `xml:"urn:ietf:params:xml:ns:caldav calendar-description"`
	Comps                  []comp       `xml:"urn:ietf:params:xml:ns:caldav supported-calendar-component-set>comp"`
	// WebDAV files (RFC 4918 15): size, media type and modified time.
	ContentLength string `xml:"DAV: getcontentlength"`
	ContentType   string `xml:"DAV: getcontenttype"`
	LastModified  string `xml:"DAV: getlastmodified"`
	// Pointers: an absent element (not found) differs from an empty item.
	AddressData  *string `xml:"urn:ietf:params:xml:ns:carddav address-data"`
	CalendarData *string `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
}

// okProp returns the merged properties of the response's 200 propstats
// (nil when there is none).
func (r *response) okProp() *prop {
	var out *prop
	for i := range r.Propstats {
		ps := &r.Propstats[i]
		if c := ps.Status.code(); c != 0 && c/100 != 2 {
			continue
		}
		if out == nil {
			p := ps.Prop
			out = &p
			continue
		}
		merge(out, &ps.Prop)
	}
	return out
}

func merge(dst, src *prop) {
	if len(src.ResourceType.Types) > 0 {
		dst.ResourceType = src.ResourceType
	}
	for _, f := range []struct{ d, s *string }{{&dst.DisplayName, &src.DisplayName}, {&dst.ETag, &src.ETag}, {&dst.SyncToken, &src.SyncToken},
		{&dst.CTag, &src.CTag}, {&dst.Color, &src.Color}, {&dst.AddressBookDescription, &src.AddressBookDescription}, {&dst.CalendarDescription, &src.CalendarDescription},
		{&dst.ContentLength, &src.ContentLength}, {&dst.ContentType, &src.ContentType}, {&dst.LastModified, &src.LastModified}} {
		if *f.s != "" {
			*f.d = *f.s
		}
	}
	if len(src.Comps) > 0 {
		dst.Comps = src.Comps
	}
	if src.AddressData != nil {
		dst.AddressData = src.AddressData
	}
	if src.CalendarData != nil {
		dst.CalendarData = src.CalendarData
	}
}

// ParseMultistatus decodes a 207 Multi-Status body. Hrefs are returned as
// paths, percent-encoding as the server sent it: servers answer with
// absolute URLs or paths (RFC 4918 8.3), the client needs the path.
func ParseMultistatus(b []byte) (*multistatus, error) {
	var ms multistatus
	d := xml.NewDecoder(bytes.NewReader(keepCR(b)))
	if err := d.Decode(&ms); err != nil {
		return nil, fmt.Errorf("parse multistatus: %w", err)
	}
	for i := range ms.Responses {
		h := strings.TrimSpace(ms.Responses[i].Href)
		if u, err := url.Parse(h); err == nil && u.Host != "" {
			h = u.EscapedPath()
		}
		ms.Responses[i].Href = h
	}
	ms.SyncToken = strings.TrimSpace(ms.SyncToken)
	return &ms, nil
}

// keepCR escapes every carriage return in character data as "&#13;".
// XML parsers turn a raw CRLF in text into LF (XML 1.0 2.11), which would
// change every vCard and iCalendar object (CRLF-terminated lines) that a
// multiget returns; escaped, the CR survives and the archive keeps the
// bytes the server meant. CRs inside markup (tags, comments, processing
// instructions) stay as they are; inside a CDATA section, where a
// character reference is not one, the section is closed and reopened
// around it.
func keepCR(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); {
		switch {
		case bytes.HasPrefix(b[i:], []byte("<![CDATA[")):
			end := bytes.Index(b[i:], []byte("]]>"))
			if end < 0 {
				return append(out, b[i:]...)
			}
			// Cyrus sends address-data in CDATA: a CR there is kept by
			// closing the section around a character reference.
			out = append(out, bytes.ReplaceAll(b[i:i+end+3], []byte("\r"), []byte("]]>&#13;<![CDATA["))...)
			i += end + 3
		case bytes.HasPrefix(b[i:], []byte("<!--")):
			end := bytes.Index(b[i+4:], []byte("-->"))
			if end < 0 {
				return append(out, b[i:]...)
			}
			out = append(out, b[i:i+4+end+3]...)
			i += 4 + end + 3
		case b[i] == '<':
			end := tagEnd(b[i:])
			if end < 0 {
				return append(out, b[i:]...)
			}
			out = append(out, b[i:i+end+1]...)
			i += end + 1
		case b[i] == '\r':
			out = append(out, "&#13;"...)
			i++
		default:
			out = append(out, b[i])
			i++
		}
	}
	return out
}

// tagEnd returns the index of the '>' closing the tag that b starts
// with, skipping quoted attribute values; -1 when there is none.
func tagEnd(b []byte) int {
	var quote byte
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i
		}
	}
	return -1
}
