package main

// The quickstart's calendars, contacts and Sieve scripts: seed-data puts
// them on the source (the legacy backend's caldav/carddav endpoint,
// Radicale in the demo, and its managesieve endpoint, Dovecot), check
// compares them with the target (Cyrus), and reset empties both sides.
//
// DAV is spoken here with net/http and encoding/xml (discovery from the
// endpoint's URL: current-user-principal, the home sets, PROPFIND of the
// home, GET of each item), never through mailmig's DAV code. Items are
// compared by UID and by the SHA-256 of their bytes after
// vandelay.Normalize, the documented list of what Cyrus rewrites on store
// (docs/export.md: line folding, RRULE part order, VALUE parameter first,
// TYPE lists): what Radicale serves and what Cyrus serves are otherwise
// compared byte for byte. Sieve scripts are read over ManageSieve with
// the account's own login (the managesieve package is used only as a
// protocol client: LISTSCRIPTS and GETSCRIPT) and compared byte for byte,
// the active script included.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/targets/managesieve"
)

// davKinds are the DAV data kinds the demo moves, in print order.
var davKinds = []struct {
	data     plan.DataKind
	proto    plan.Protocol
	homeProp string // the home-set property (namespace, local name)
	ns       string
	coll     string // resourcetype of a collection of this kind
	kind     string // vandelay.Normalize's kind
	noun     string
	media    string
}{
	{plan.DataCalendars, plan.ProtoCalDAV, "calendar-home-set", "urn:ietf:params:xml:ns:caldav", "calendar", "calendar", "events", "text/calendar; charset=utf-8"},
	{plan.DataContacts, plan.ProtoCardDAV, "addressbook-home-set", "urn:ietf:params:xml:ns:carddav", "addressbook", "addressbook", "contacts", "text/vcard; charset=utf-8"},
}

// The seeded data, the same for every account but its UIDs: a weekly
// meeting with an exception and a moved occurrence (one object, two
// components), an all-day event, one in floating time with an alarm, and
// a task, and a meeting the account organizes with the next demo
// account and an outside address as attendees (Cyrus 3.6 would schedule
// it on store — mail invitations, add SCHEDULE-STATUS — unless the
// export's PUT says Scheduling-Enabled: F; the check would find the
// changed event, and the cut-over's verify would roll it back); a vCard 3.0 with non-ASCII names and a folded line, one 4.0,
// and a 4.0 group; two Sieve scripts, the active one including the
// other, with a vacation reply and fileinto.
func seedEvents(user string) map[string]string {
	u := strings.SplitN(user, "@", 2)[0]
	next := map[string]string{"alice": "bob", "bob": "carol", "carol": "alice"}[u]
	if next == "" {
		next = "alice"
	}
	head := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailmig//quickstart demo//EN\r\n"
	tz := "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n" +
		"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\n" +
		"TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
	return map[string]string{
		"weekly.ics": head + tz + "BEGIN:VEVENT\r\nUID:weekly-" + u + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261207T090000\r\nDTEND;TZID=Europe/Berlin:20261207T093000\r\n" +
			"RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nEXDATE;TZID=Europe/Berlin:20261214T090000\r\nSUMMARY:Wochenbesprechung\r\nEND:VEVENT\r\n" +
			"BEGIN:VEVENT\r\nUID:weekly-" + u + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261221T090000\r\nDTSTART;TZID=Europe/Berlin:20261222T100000\r\n" +
			"DTEND;TZID=Europe/Berlin:20261222T103000\r\nSUMMARY:Wochenbesprechung (verschoben)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		"allday.ics": head + "BEGIN:VEVENT\r\nUID:allday-" + u + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261225\r\nSUMMARY:Heiligabend\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		"floating.ics": head + "BEGIN:VEVENT\r\nUID:floating-" + u + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261230T180000\r\nDTEND:20261230T200000\r\nSUMMARY:Essen – schwebende Zeit\r\n" +
			"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Erinnerung\r\nTRIGGER:-PT30M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		"meeting.ics": head + "BEGIN:VEVENT\r\nUID:meeting-" + u + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20270105T130000Z\r\nDTEND:20270105T140000Z\r\n" +
			"SUMMARY:Planung 2027\r\nORGANIZER;CN=" + u + ":mailto:" + user + "\r\nATTENDEE;CN=" + u + ";PARTSTAT=ACCEPTED:mailto:" + user + "\r\n" +
			"ATTENDEE;CN=" + next + ";PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:" + next + "@example.test\r\n" +
			"ATTENDEE;CN=Extern;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:partner@elsewhere.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		"todo.ics": head + "BEGIN:VTODO\r\nUID:todo-" + u + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nSUMMARY:Geschenke kaufen\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
	}
}

func seedContacts(user string) map[string]string {
	u := strings.SplitN(user, "@", 2)[0]
	return map[string]string{
		"juergen.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:juergen-" + u + "\r\nFN:Jürgen Müller\r\nN:Müller;Jürgen;;;\r\nEMAIL;TYPE=INTERNET,HOME:juergen@example.test\r\n" +
			"NOTE:Ein langer Hinweis\\, der gefaltet werden muss\\, weil er länger ist als fünfundsiebzig \r\n Oktette.\r\nEND:VCARD\r\n",
		"zoe.vcf":    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:zoe-" + u + "\r\nFN:Zoë Ñúñez\r\nN:Ñúñez;Zoë;;;\r\nTEL;TYPE=cell:+34 600 000 000\r\nEND:VCARD\r\n",
		"family.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:family-" + u + "\r\nKIND:group\r\nFN:Familie\r\nMEMBER:urn:uuid:zoe-" + u + "\r\nEND:VCARD\r\n",
	}
}

// seedScripts returns the scripts and the name of the active one.
func seedScripts() (map[string]string, string) {
	return map[string]string{
		"main": "require [\"include\", \"fileinto\", \"vacation\"];\r\n# the demo's filter: lists first, then the holiday reply\r\ninclude :personal \"lists\";\r\n" +
			"if header :contains \"subject\" \"invoice\" {\r\n  fileinto \"Invoices\";\r\n  stop;\r\n}\r\n" +
			"vacation :days 7 :subject \"Away until January\" \"I am away until 4 January; your mail is kept for then.\";\r\n",
		"lists": "require [\"fileinto\"];\r\nif exists \"list-id\" {\r\n  fileinto \"Lists\";\r\n  stop;\r\n}\r\n",
	}, "main"
}

// davSide is one account's DAV endpoint of one kind on one backend.
type davSide struct {
	backend, base, user, password string
	client                        *http.Client
}

func davSideOf(m *plan.Migration, a *plan.Account, backend string, proto plan.Protocol, login string) (*davSide, error) {
	b := m.Backend(backend)
	ep := b.Endpoint(proto)
	if ep == nil {
		return nil, fmt.Errorf("backend %s has no %s endpoint", backend, proto)
	}
	u, err := url.Parse(ep.URL)
	if err != nil || u.Hostname() != "127.0.0.1" {
		return nil, fmt.Errorf("backend %s %s is at %q: democheck only touches test servers on 127.0.0.1", backend, proto, ep.URL)
	}
	if login == "" {
		login = a.Address
	}
	return &davSide{backend: backend, base: ep.URL, user: login, password: a.Password.Reveal(), client: &http.Client{}}, nil
}

// multistatus is the part of a 207 answer democheck reads.
type multistatus struct {
	Responses []struct {
		Href     string `xml:"DAV: href"`
		Propstat []struct {
			Status string `xml:"DAV: status"`
			Prop   struct {
				Inner []byte `xml:",innerxml"`
				Type  struct {
					Inner []byte `xml:",innerxml"`
				} `xml:"DAV: resourcetype"`
				ETag string `xml:"DAV: getetag"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
}

func (d *davSide) do(ctx context.Context, method, ref, depth, body string) (*http.Response, []byte, error) {
	u, err := url.Parse(d.base)
	if err != nil {
		return nil, nil, err
	}
	if u, err = u.Parse(ref); err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.SetBasicAuth(d.user, d.password)
	if depth != "" {
		req.Header.Set("Depth", depth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s %s: %w", d.backend, method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s %s: %w", d.backend, method, u, err)
	}
	return resp, b, nil
}

func (d *davSide) propfind(ctx context.Context, ref, depth, props string) (*multistatus, error) {
	resp, b, err := d.do(ctx, "PROPFIND", ref, depth,
		`<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="urn:ietf:params:xml:ns:carddav"><prop>`+props+`</prop></propfind>`)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusMultiStatus {
		return nil, fmt.Errorf("%s: PROPFIND %s: %s", d.backend, ref, resp.Status)
	}
	var ms multistatus
	if err := xml.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("%s: PROPFIND %s: %w", d.backend, ref, err)
	}
	return &ms, nil
}

// hrefIn returns the first <href> inside the XML fragment that follows
// the element named local.
func hrefIn(inner []byte, local string) string {
	dec := xml.NewDecoder(bytes.NewReader(inner))
	in := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local == local {
				in = true
			} else if in && se.Name.Local == "href" {
				var s string
				if dec.DecodeElement(&s, &se) == nil {
					return strings.TrimSpace(s)
				}
				return ""
			}
		}
	}
}

// home discovers the home collection of the kind: the endpoint URL's
// current-user-principal, then its home set.
func (d *davSide) home(ctx context.Context, homeProp string) (string, error) {
	ms, err := d.propfind(ctx, d.base, "0", "<current-user-principal/>")
	if err != nil {
		return "", err
	}
	principal := ""
	for _, r := range ms.Responses {
		for _, ps := range r.Propstat {
			if p := hrefIn(ps.Prop.Inner, "current-user-principal"); p != "" {
				principal = p
			}
		}
	}
	if principal == "" {
		return "", fmt.Errorf("%s: no current-user-principal at %s", d.backend, d.base)
	}
	prefix := "C:"
	if homeProp == "addressbook-home-set" {
		prefix = "A:"
	}
	if ms, err = d.propfind(ctx, principal, "0", "<"+prefix+homeProp+"/>"); err != nil {
		return "", err
	}
	for _, r := range ms.Responses {
		for _, ps := range r.Propstat {
			if h := hrefIn(ps.Prop.Inner, homeProp); h != "" {
				return h, nil
			}
		}
	}
	return "", fmt.Errorf("%s: principal %s has no %s", d.backend, principal, homeProp)
}

// collections returns the hrefs of the home's collections of type coll.
func (d *davSide) collections(ctx context.Context, home, coll string) ([]string, error) {
	ms, err := d.propfind(ctx, home, "1", "<resourcetype/>")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range ms.Responses {
		for _, ps := range r.Propstat {
			if hasElement(ps.Prop.Type.Inner, coll) {
				out = append(out, r.Href)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func hasElement(inner []byte, local string) bool {
	dec := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == local {
			return true
		}
	}
}

// items returns the hrefs of a collection's members.
func (d *davSide) items(ctx context.Context, coll string) ([]string, error) {
	ms, err := d.propfind(ctx, coll, "1", "<getetag/><resourcetype/>")
	if err != nil {
		return nil, err
	}
	var out []string
	cu, _ := url.Parse(coll)
	for _, r := range ms.Responses {
		ru, err := url.Parse(r.Href)
		if err != nil || strings.TrimSuffix(ru.Path, "/") == strings.TrimSuffix(cu.Path, "/") || strings.HasSuffix(ru.Path, "/") {
			continue // the collection itself, or a sub-collection
		}
		out = append(out, r.Href)
	}
	sort.Strings(out)
	return out, nil
}

// davItem is one item by UID.
type davItem struct {
	href, hash string
	v4         bool // a vCard 4.0
}

// contents returns the items of every collection of the kind by UID.
func (d *davSide) contents(ctx context.Context, homeProp, coll, kind string) (map[string]davItem, error) {
	home, err := d.home(ctx, homeProp)
	if err != nil {
		return nil, err
	}
	colls, err := d.collections(ctx, home, coll)
	if err != nil {
		return nil, err
	}
	out := map[string]davItem{}
	for _, c := range colls {
		hrefs, err := d.items(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, h := range hrefs {
			it, uid, err := d.get(ctx, h, kind, "")
			if err != nil {
				return nil, err
			}
			if prev, dup := out[uid]; dup {
				return nil, fmt.Errorf("%s: UID %s is in %s and in %s", d.backend, uid, prev.href, h)
			}
			out[uid] = it
		}
	}
	return out, nil
}

// get reads one item (with accept as the Accept header when not "").
func (d *davSide) get(ctx context.Context, href, kind, accept string) (davItem, string, error) {
	u, _ := url.Parse(d.base)
	u, err := u.Parse(href)
	if err != nil {
		return davItem{}, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return davItem{}, "", err
	}
	req.SetBasicAuth(d.user, d.password)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return davItem{}, "", fmt.Errorf("%s: GET %s: %w", d.backend, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return davItem{}, "", fmt.Errorf("%s: GET %s: %s %v", d.backend, u, resp.Status, err)
	}
	uid := uidOf(b)
	if uid == "" {
		return davItem{}, "", fmt.Errorf("%s: %s has no UID", d.backend, href)
	}
	sum := sha256.Sum256([]byte(vandelay.Normalize(kind, b)))
	return davItem{href: href, hash: hex.EncodeToString(sum[:]), v4: bytes.Contains(b, []byte("\nVERSION:4.0"))}, uid, nil
}

// uidOf returns the first UID property of an iCalendar object or vCard.
func uidOf(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "UID:"); ok {
			return v
		}
	}
	return ""
}

// digest is a short hash over a side's items (UID and hash, sorted): two
// sides with the same digest hold the same items.
func digest(items map[string]davItem) string {
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s %s\n", k, items[k].hash)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// sieveSide opens a ManageSieve session as the account on a backend.
func sieveSide(ctx context.Context, m *plan.Migration, a *plan.Account, backend, login string) (*managesieve.Target, error) {
	b := m.Backend(backend)
	ep := b.Endpoint(plan.ProtoManageSieve)
	if ep == nil {
		return nil, fmt.Errorf("backend %s has no managesieve endpoint", backend)
	}
	if host, _, err := net.SplitHostPort(ep.Address); err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("backend %s managesieve is at %s: democheck only touches test servers on 127.0.0.1", backend, ep.Address)
	}
	if login == "" {
		login = a.Address
	}
	t, err := managesieve.Open(ctx, &managesieve.Options{
		Server: vandelay.Server{Address: ep.Address, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: login, Password: a.Password.Reveal()},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: managesieve login as %s: %w", backend, login, err)
	}
	return t, nil
}

// scripts returns name → SHA-256 of the bytes, and the active script.
func scripts(ctx context.Context, t *managesieve.Target) (map[string]string, string, error) {
	list, err := t.List(ctx)
	if err != nil {
		return nil, "", err
	}
	out, active := map[string]string{}, ""
	for _, s := range list {
		b, err := t.Get(ctx, s.Name)
		if err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256(b)
		out[s.Name] = hex.EncodeToString(sum[:])
		if s.Active {
			active = s.Name
		}
	}
	return out, active, nil
}

func sieveDigest(s map[string]string, active string) string {
	h := sha256.New()
	for _, k := range sortedKeys(s, nil) {
		fmt.Fprintf(h, "%s %s\n", k, s[k])
	}
	fmt.Fprintf(h, "active %s\n", active)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// moves reports whether the account's data includes k.
func moves(a *plan.Account, k plan.DataKind) bool {
	for _, d := range a.Data {
		if d == k {
			return true
		}
	}
	return false
}

// seedData puts the demo's events, contacts and scripts on each account's
// source: into the first calendar and address book of its home, and over
// ManageSieve (the active script last, after what it includes).
func seedData(ctx context.Context, m *plan.Migration, w io.Writer) error {
	for _, a := range m.Accounts {
		var parts []string
		for _, k := range davKinds {
			if !moves(a, k.data) {
				continue
			}
			d, err := davSideOf(m, a, a.From, k.proto, a.SourceLogin)
			if err != nil {
				return err
			}
			home, err := d.home(ctx, k.homeProp)
			if err != nil {
				return err
			}
			colls, err := d.collections(ctx, home, k.coll)
			if err != nil {
				return err
			}
			if len(colls) == 0 {
				return fmt.Errorf("%s: %s has no %s collection in %s", d.backend, a.Address, k.coll, home)
			}
			items := seedEvents(a.Address)
			if k.data == plan.DataContacts {
				items = seedContacts(a.Address)
			}
			for _, name := range sortedKeys(items, nil) {
				resp, b, err := d.put(ctx, colls[0]+name, k.media, items[name])
				if err != nil {
					return err
				}
				if resp.StatusCode/100 != 2 {
					return fmt.Errorf("%s: PUT %s%s: %s %s", d.backend, colls[0], name, resp.Status, b)
				}
			}
			parts = append(parts, fmt.Sprintf("%d %s in %s", len(items), k.noun, colls[0]))
		}
		if moves(a, plan.DataSieve) {
			t, err := sieveSide(ctx, m, a, a.From, a.SourceLogin)
			if err != nil {
				return err
			}
			all, active := seedScripts()
			for _, name := range sortedKeys(all, nil) {
				if name == active {
					continue
				}
				if err := t.Put(ctx, name, []byte(all[name])); err != nil {
					t.Close()
					return fmt.Errorf("%s: PUTSCRIPT %s: %w", a.From, name, err)
				}
			}
			if err := t.Put(ctx, active, []byte(all[active])); err != nil {
				t.Close()
				return fmt.Errorf("%s: PUTSCRIPT %s: %w", a.From, active, err)
			}
			err = t.SetActive(ctx, active)
			t.Close()
			if err != nil {
				return fmt.Errorf("%s: SETACTIVE %s: %w", a.From, active, err)
			}
			parts = append(parts, fmt.Sprintf("%d Sieve scripts (%q active)", len(all), active))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "seeded %s on %s: %s\n", a.Address, a.From, strings.Join(parts, ", "))
		}
	}
	return nil
}

func (d *davSide) put(ctx context.Context, ref, media, body string) (*http.Response, []byte, error) {
	u, _ := url.Parse(d.base)
	u, err := u.Parse(ref)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.SetBasicAuth(d.user, d.password)
	req.Header.Set("Content-Type", media)
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: PUT %s: %w", d.backend, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

// resetData deletes every item of every calendar and address book and
// every Sieve script of the plan's accounts on both sides (the
// collections stay).
func resetData(ctx context.Context, m *plan.Migration, w io.Writer) error {
	for _, a := range m.Accounts {
		for _, s := range []struct{ backend, login string }{{a.From, a.SourceLogin}, {a.To, a.TargetLogin}} {
			n := 0
			for _, k := range davKinds {
				if !moves(a, k.data) {
					continue
				}
				d, err := davSideOf(m, a, s.backend, k.proto, s.login)
				if err != nil {
					return err
				}
				home, err := d.home(ctx, k.homeProp)
				if err != nil {
					return err
				}
				colls, err := d.collections(ctx, home, k.coll)
				if err != nil {
					return err
				}
				for _, c := range colls {
					hrefs, err := d.items(ctx, c)
					if err != nil {
						return err
					}
					for _, h := range hrefs {
						resp, b, err := d.do(ctx, http.MethodDelete, h, "", "")
						if err != nil {
							return err
						}
						if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
							return fmt.Errorf("%s: DELETE %s: %s %s", d.backend, h, resp.Status, b)
						}
						n++
					}
				}
			}
			if moves(a, plan.DataSieve) {
				t, err := sieveSide(ctx, m, a, s.backend, s.login)
				if err != nil {
					return err
				}
				list, err := t.List(ctx)
				if err == nil && len(list) > 0 {
					err = t.SetActive(ctx, "")
				}
				for _, sc := range list {
					if err == nil {
						err = t.Delete(ctx, sc.Name)
						n++
					}
				}
				t.Close()
				if err != nil {
					return fmt.Errorf("%s: emptying the Sieve scripts of %s: %w", s.backend, a.Address, err)
				}
			}
			if n > 0 {
				fmt.Fprintf(w, "emptied %s on %s (%d events, contacts and scripts from an earlier run)\n", a.Address, s.backend, n)
			}
		}
	}
	return nil
}

// checkData compares the account's calendars, contacts and scripts on
// source and target; it writes one row per kind and returns the
// differences.
func checkData(ctx context.Context, m *plan.Migration, a *plan.Account, row func(kind, src, dst, result string)) ([]string, error) {
	var problems []string
	for _, k := range davKinds {
		if !moves(a, k.data) {
			continue
		}
		var got [2]map[string]davItem
		var target *davSide
		for i, s := range []struct{ backend, login string }{{a.From, a.SourceLogin}, {a.To, a.TargetLogin}} {
			d, err := davSideOf(m, a, s.backend, k.proto, s.login)
			if err != nil {
				return nil, err
			}
			if got[i], err = d.contents(ctx, k.homeProp, k.coll, k.kind); err != nil {
				return nil, err
			}
			target = d
		}
		src, dst := got[0], got[1]
		// Cyrus keeps a vCard 4.0 as it was put but serves it as 3.0
		// unless the client asks for 4.0 (as a CardDAV client that
		// wrote 4.0 does): ask for what the source serves.
		for uid, it := range dst {
			if src[uid].v4 && !it.v4 {
				again, _, err := target.get(ctx, it.href, k.kind, "text/vcard; version=4.0")
				if err != nil {
					return nil, err
				}
				dst[uid] = again
			}
		}
		var diffs []string
		for _, uid := range sortedKeys(src, dst) {
			s, inSrc := src[uid]
			t, inDst := dst[uid]
			switch {
			case !inDst:
				diffs = append(diffs, fmt.Sprintf("%s: %s %s (%s) is not on %s", a.Address, k.noun, uid, s.href, a.To))
			case !inSrc:
				diffs = append(diffs, fmt.Sprintf("%s: %s %s (%s) is on %s only", a.Address, k.noun, uid, t.href, a.To))
			case s.hash != t.hash:
				diffs = append(diffs, fmt.Sprintf("%s: %s %s differs: %s on %s, %s on %s", a.Address, k.noun, uid, s.hash[:12], a.From, t.hash[:12], a.To))
			}
		}
		result := "ok: same UIDs, equal by SHA-256 after the documented normalisation"
		if len(src) == 0 {
			diffs = append(diffs, fmt.Sprintf("%s: no %s on %s (the demo seeds some)", a.Address, k.noun, a.From))
		}
		if len(diffs) > 0 {
			result = fmt.Sprintf("%d DIFFERENCES", len(diffs))
			problems = append(problems, diffs...)
		}
		row(string(k.data), fmt.Sprintf("%d %s, sha256 %s", len(src), k.noun, digest(src)),
			fmt.Sprintf("%d %s, sha256 %s", len(dst), k.noun, digest(dst)), result)
	}
	if moves(a, plan.DataSieve) {
		var got [2]map[string]string
		var active [2]string
		for i, s := range []struct{ backend, login string }{{a.From, a.SourceLogin}, {a.To, a.TargetLogin}} {
			t, err := sieveSide(ctx, m, a, s.backend, s.login)
			if err != nil {
				return nil, err
			}
			got[i], active[i], err = scripts(ctx, t)
			t.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: Sieve scripts of %s: %w", s.backend, a.Address, err)
			}
		}
		var diffs []string
		for _, name := range sortedKeys(got[0], got[1]) {
			if got[0][name] != got[1][name] {
				diffs = append(diffs, fmt.Sprintf("%s: Sieve script %q: sha256 %.12s on %s, %.12s on %s", a.Address, name, got[0][name], a.From, got[1][name], a.To))
			}
		}
		if active[0] != active[1] {
			diffs = append(diffs, fmt.Sprintf("%s: active Sieve script %q on %s, %q on %s", a.Address, active[0], a.From, active[1], a.To))
		}
		if len(got[0]) == 0 {
			diffs = append(diffs, fmt.Sprintf("%s: no Sieve scripts on %s (the demo seeds some)", a.Address, a.From))
		}
		result := "ok: byte-equal, same active script"
		if len(diffs) > 0 {
			result = fmt.Sprintf("%d DIFFERENCES", len(diffs))
			problems = append(problems, diffs...)
		}
		desc := func(i int) string {
			return fmt.Sprintf("%d scripts, %q active, sha256 %s", len(got[i]), active[i], sieveDigest(got[i], active[i]))
		}
		row("sieve", desc(0), desc(1), result)
	}
	return problems, nil
}
