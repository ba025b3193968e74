package jscontact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-vcard"
)

// prop is one vCard property as go-vcard decoded it: the name upper
// case, the value with "\n", "\," and "\\" already unescaped (but "\;"
// kept, so that structured values still split).
type prop struct {
	name, group string
	params      vcard.Params
	value       string
}

// Decode parses the first vCard of data with go-vcard.
func Decode(data []byte) (vcard.Card, error) {
	if len(data) > MaxCardSize {
		return nil, ErrTooLarge
	}
	// Unfold first (RFC 6350 3.2): go-vcard joins continuation lines by
	// string concatenation, quadratic in their number — a 500 KB photo
	// folded into 6,800 lines took seconds.
	for _, f := range [][]byte{[]byte("\r\n "), []byte("\r\n\t"), []byte("\n "), []byte("\n\t")} {
		if bytes.Contains(data, f) {
			data = bytes.ReplaceAll(data, f, nil)
		}
	}
	// JSON carries only UTF-8: invalid bytes become U+FFFD here, once,
	// so that both directions see the same text.
	data = bytes.ToValidUTF8(data, []byte("\uFFFD"))
	vc, err := vcard.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return nil, fmt.Errorf("parse vCard: %w", err)
	}
	return vc, nil
}

// props returns the card's properties in a fixed order (go-vcard keeps
// them in a map): by name, then as they came.
func props(vc vcard.Card) []prop {
	names := make([]string, 0, len(vc))
	for k := range vc {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []prop
	for _, n := range names {
		if !validName(n) {
			// Not a property (a line without a name): go-vcard keeps
			// it, vCard has no way to write it back.
			continue
		}
		for _, f := range vc[n] {
			ps := vcard.Params{}
			for k, v := range f.Params {
				if !validName(k) {
					continue // not a parameter vCard can write back
				}
				if singleValued[strings.ToUpper(k)] && len(v) > 1 {
					// go-vcard splits every parameter value at its
					// commas, quoted or not: LABEL="Main St, Town"
					// is one value.
					v = []string{strings.Join(v, ",")}
				}
				for _, x := range v {
					ps[strings.ToUpper(k)] = append(ps[strings.ToUpper(k)], caretDecode(x))
				}
			}
			// vCard 3.0's CHARSET says how the bytes were encoded;
			// go-vcard reads UTF-8 and so does everything after it.
			delete(ps, "CHARSET")
			out = append(out, prop{name: strings.ToUpper(n), group: f.Group, params: ps, value: f.Value})
		}
	}
	return out
}

// textValue undoes the escapes go-vcard leaves in a TEXT value.
// Only "\;" is left: go-vcard turned "\\", "\n" and "\," into their
// characters already ("\N" is read as it stands, as go-vcard does).
func textValue(v string) string {
	return strings.ReplaceAll(v, `\;`, ";")
}

// components splits a structured value (N, ADR, ORG, GENDER) at its
// unescaped semicolons and unescapes each component.
func components(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && v[i+1] == ';':
			cur.WriteByte(';')
			i++
		case v[i] == ';':
			out = append(out, textValue(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, textValue(cur.String()))
}

// take removes a parameter and returns its values.
func take(ps vcard.Params, name string) []string {
	v := ps[name]
	delete(ps, name)
	return v
}

// builder collects a Card and the keys it generates per map.
type builder struct {
	c    Card
	next map[string]int
}

// add puts obj into the property map mapName under the property's
// PROP-ID (RFC 9555 3.3.3) or a generated key.
func (b *builder) add(mapName string, p *prop, obj map[string]any) {
	key := ""
	if ids := take(p.params, "PROP-ID"); len(ids) > 0 && ids[0] != "" {
		key = ids[0]
	}
	m, _ := b.c[mapName].(map[string]any)
	if m == nil {
		m = map[string]any{}
		b.c[mapName] = m
	}
	for key == "" || m[key] != nil {
		b.next[mapName]++
		key = idPrefix[mapName] + strconv.Itoa(b.next[mapName])
	}
	b.finish(p, obj)
	m[key] = obj
}

// finish moves PREF, the contexts of TYPE and the group into obj and the
// parameters left into its vCardParams (RFC 9555 3.3.2).
func (b *builder) finish(p *prop, obj map[string]any) {
	if v := take(p.params, "PREF"); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n >= 1 && n <= 100 {
			obj["pref"] = int64(n)
		} else {
			p.params["PREF"] = v
		}
	}
	if types := take(p.params, "TYPE"); len(types) > 0 {
		var rest []string
		ctx := map[string]any{}
		for _, t := range types {
			switch lt := strings.ToLower(t); lt {
			case "work":
				ctx["work"] = true
			case "home":
				ctx["private"] = true
			case "pref": // vCard 3.0's preference
				if obj["pref"] == nil {
					obj["pref"] = int64(1)
				}
			case "":
			default:
				rest = append(rest, lt)
			}
		}
		if len(ctx) > 0 {
			obj["contexts"] = ctx
		}
		if len(rest) > 0 {
			sort.Strings(rest) // TYPE is a set (RFC 6350 5.6)
			p.params["TYPE"] = rest
		}
	}
	if vp := paramsObject(p); len(vp) > 0 {
		obj["vCardParams"] = vp
	}
}

// paramsObject is the parameters left (and the group) in jCard's form:
// lower-case names, one value as a string, several as an array.
func paramsObject(p *prop) map[string]any {
	out := map[string]any{}
	for k, v := range p.params {
		switch len(v) {
		case 0:
		case 1:
			out[strings.ToLower(k)] = v[0]
		default:
			a := make([]any, len(v))
			for i, s := range v {
				a[i] = s
			}
			out[strings.ToLower(k)] = a
		}
	}
	if p.group != "" {
		out["group"] = p.group
	}
	return out
}

// keepRaw keeps a property JSContact has no place for in vCardProps, as
// jCard does (RFC 7095 3.3: name, parameters, value type, value).
func (b *builder) keepRaw(p *prop) {
	vp, _ := b.c["vCardProps"].([]any)
	b.c["vCardProps"] = append(vp, []any{strings.ToLower(p.name), paramsObject(p), "unknown", p.value})
}

// FromVCard converts one vCard (3.0 or 4.0) into a JSContact Card
// following RFC 9555 section 2. A card without UID gets a stable one
// derived from its bytes ("urn:uuid:" and a SHA-256 based UUID), as RFC
// 9555 2.1.1 asks.
func FromVCard(data []byte) (Card, error) {
	vc, err := Decode(data)
	if err != nil {
		return nil, err
	}
	return fromCard(vc, data)
}

func fromCard(vc vcard.Card, data []byte) (Card, error) {
	b := &builder{c: Card{"@type": "Card", "version": "1.0"}, next: map[string]int{}}
	c := b.c
	name := map[string]any{}
	var comps []any
	var jsprops []*prop
	for _, p := range props(vc) {
		p := p
		switch p.name {
		case "VERSION":
			// The vCard version is not converted (RFC 9555 2.1.3).
		case "UID":
			if c["uid"] == nil && len(p.params) == 0 && p.group == "" && p.value != "" {
				c["uid"] = p.value
			} else {
				b.keepRaw(&p)
			}
		case "KIND", "X-ADDRESSBOOKSERVER-KIND":
			if c["kind"] == nil && len(p.params) == 0 && p.group == "" {
				c["kind"] = strings.ToLower(p.value)
			} else {
				b.keepRaw(&p)
			}
		case "PRODID":
			if c["prodId"] == nil && len(p.params) == 0 && p.group == "" {
				c["prodId"] = textValue(p.value)
			} else {
				b.keepRaw(&p)
			}
		case "REV", "CREATED":
			key := map[string]string{"REV": "updated", "CREATED": "created"}[p.name]
			ts, ok := parseTimestamp(p.value)
			if c[key] == nil && ok && len(p.params) == 0 && p.group == "" {
				c[key] = ts
			} else {
				b.keepRaw(&p)
			}
		case "FN":
			if name["full"] == nil && len(p.params) == 0 && p.group == "" {
				name["full"] = textValue(p.value)
			} else {
				b.keepRaw(&p)
			}
		case "N":
			if comps != nil || len(p.params) != 0 || p.group != "" || len(components(p.value)) > 7 {
				b.keepRaw(&p)
				continue
			}
			comps = []any{}
			kinds := []string{"surname", "given", "given2", "title", "credential", "surname2", "generation"}
			for i, v := range components(p.value) {
				// Several values of one component (RFC 6350 6.2.2:
				// "María,José") are one JSContact component each.
				for _, x := range strings.Split(v, ",") {
					if x != "" {
						comps = append(comps, map[string]any{"kind": kinds[i], "value": x})
					}
				}
			}
		case "NICKNAME":
			b.add("nicknames", &p, map[string]any{"name": textValue(p.value)})
		case "PHOTO", "LOGO", "SOUND":
			b.add("media", &p, mediaObject(&p))
		case "BDAY", "ANNIVERSARY", "DEATHDATE":
			d := parseDate(p.value)
			if d == nil || len(p.params["VALUE"]) > 0 && !strings.EqualFold(p.params["VALUE"][0], "date") &&
				!strings.EqualFold(p.params["VALUE"][0], "date-time") && !strings.EqualFold(p.params["VALUE"][0], "date-and-or-time") {
				b.keepRaw(&p)
				continue
			}
			delete(p.params, "VALUE")
			kind := map[string]string{"BDAY": "birth", "ANNIVERSARY": "wedding", "DEATHDATE": "death"}[p.name]
			b.add("anniversaries", &p, map[string]any{"kind": kind, "date": d})
		case "ADR":
			if len(components(p.value)) > 7 {
				// vCard 4.0's extended ADR components (RFC 9554) are
				// not mapped here: the property is kept as it came.
				b.keepRaw(&p)
				continue
			}
			b.add("addresses", &p, addressObject(&p))
		case "TEL":
			b.add("phones", &p, phoneObject(&p))
		case "EMAIL":
			b.add("emails", &p, map[string]any{"address": textValue(p.value)})
		case "IMPP":
			b.add("onlineServices", &p, map[string]any{"uri": p.value, "vCardName": "impp"})
		case "SOCIALPROFILE":
			o := map[string]any{"uri": p.value}
			if st := take(p.params, "SERVICE-TYPE"); len(st) == 1 {
				o["service"] = st[0]
			}
			b.add("onlineServices", &p, o)
		case "LANG":
			b.add("preferredLanguages", &p, map[string]any{"language": p.value})
		case "TITLE", "ROLE":
			b.add("titles", &p, map[string]any{"name": textValue(p.value), "kind": strings.ToLower(p.name)})
		case "ORG":
			parts := components(p.value)
			o := map[string]any{}
			if parts[0] != "" {
				o["name"] = parts[0]
			}
			var units []any
			for _, u := range parts[1:] {
				units = append(units, map[string]any{"name": u})
			}
			if len(units) > 0 {
				o["units"] = units
			}
			b.add("organizations", &p, o)
		case "MEMBER", "X-ADDRESSBOOKSERVER-MEMBER":
			if len(p.params) != 0 || p.group != "" {
				b.keepRaw(&p)
				continue
			}
			m, _ := c["members"].(map[string]any)
			if m == nil {
				m = map[string]any{}
				c["members"] = m
			}
			m[p.value] = true
		case "RELATED":
			if len(p.params["VALUE"]) > 0 || p.group != "" || len(p.params) > 1 || len(p.params) == 1 && p.params["TYPE"] == nil {
				b.keepRaw(&p)
				continue
			}
			rel := map[string]any{}
			for _, t := range take(p.params, "TYPE") {
				rel[strings.ToLower(t)] = true
			}
			m, _ := c["relatedTo"].(map[string]any)
			if m == nil {
				m = map[string]any{}
				c["relatedTo"] = m
			}
			if m[p.value] != nil {
				b.keepRaw(&p)
				continue
			}
			o := map[string]any{}
			if len(rel) > 0 {
				o["relation"] = rel
			}
			m[p.value] = o
		case "CATEGORIES":
			if len(p.params) != 0 || p.group != "" {
				b.keepRaw(&p)
				continue
			}
			m, _ := c["keywords"].(map[string]any)
			if m == nil {
				m = map[string]any{}
				c["keywords"] = m
			}
			for _, k := range strings.Split(textValue(p.value), ",") {
				if k != "" {
					m[k] = true
				}
			}
		case "NOTE":
			b.add("notes", &p, map[string]any{"note": textValue(p.value)})
		case "URL":
			b.add("links", &p, map[string]any{"uri": p.value})
		case "KEY":
			b.add("cryptoKeys", &p, map[string]any{"uri": p.value})
		case "CALURI", "FBURL":
			b.add("calendars", &p, map[string]any{"kind": map[string]string{"CALURI": "calendar", "FBURL": "freeBusy"}[p.name], "uri": p.value})
		case "CALADRURI":
			b.add("schedulingAddresses", &p, map[string]any{"uri": p.value})
		case "SOURCE", "ORG-DIRECTORY":
			b.add("directories", &p, map[string]any{"kind": map[string]string{"SOURCE": "entry", "ORG-DIRECTORY": "directory"}[p.name], "uri": p.value})
		case "JSPROP":
			jsprops = append(jsprops, &p)
		default:
			// GENDER, TZ, GEO, LABEL (3.0), X-… and every property
			// without a JSContact counterpart, kept as they came.
			b.keepRaw(&p)
		}
	}
	if len(comps) > 0 {
		name["components"] = comps
	}
	if len(name) > 0 {
		c["name"] = name
	}
	if c["uid"] == nil {
		c["uid"] = derivedUID(data)
	}
	for _, p := range jsprops {
		if !applyJSProp(c, p) {
			b.keepRaw(p)
		}
	}
	return normalizeNumbers(c).(Card), nil
}

// derivedUID is a UUID (version 8 layout) from the SHA-256 of the bytes:
// the same vCard always gets the same uid.
func derivedUID(data []byte) string {
	s := sha256.Sum256(data)
	h := hex.EncodeToString(s[:16])
	return "urn:uuid:" + h[0:8] + "-" + h[8:12] + "-8" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// applyJSProp sets the JSContact value a JSPROP property carries (RFC
// 9555 3.2.1) at its JSPTR, a path of up to three segments below the
// card. It reports false when the property is malformed.
func applyJSProp(c Card, p *prop) bool {
	ptr := p.params["JSPTR"]
	if len(ptr) != 1 || len(p.params) != 1 || p.group != "" {
		return false
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(textValue(p.value)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return false
	}
	v = normalizeNumbers(v)
	segs := strings.Split(ptr[0], "/")
	for i, s := range segs {
		segs[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
	}
	if len(segs) > 3 || segs[0] == "" || segs[0] == "uid" || segs[0] == "@type" || segs[0] == "version" || segs[0] == "vCardProps" {
		return false
	}
	var m map[string]any = c
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			if m[s] != nil {
				return false
			}
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[segs[len(segs)-1]] = v
	return true
}

func mediaObject(p *prop) map[string]any {
	o := map[string]any{"kind": strings.ToLower(p.name)}
	enc := take(p.params, "ENCODING")
	types := p.params["TYPE"]
	if len(enc) == 1 && (strings.EqualFold(enc[0], "b") || strings.EqualFold(enc[0], "base64")) {
		// vCard 3.0 inline data: a data: URI (RFC 2397), the form vCard
		// 4.0 and JSContact use.
		mt := ""
		if len(types) == 1 {
			mt = mediaType(p.name, types[0])
			delete(p.params, "TYPE")
		}
		o["uri"] = "data:" + mt + ";base64," + strings.Join(strings.Fields(p.value), "")
		return o
	}
	if len(enc) > 0 {
		p.params["ENCODING"] = enc
	}
	if v := take(p.params, "VALUE"); len(v) > 0 && !strings.EqualFold(v[0], "uri") {
		p.params["VALUE"] = v
	}
	if mt := take(p.params, "MEDIATYPE"); len(mt) == 1 {
		o["mediaType"] = mt[0]
	}
	o["uri"] = p.value
	return o
}

// mediaType turns vCard 3.0's TYPE=JPEG into image/jpeg (audio/… for
// SOUND); a value that already is a media type is kept.
func mediaType(prop, t string) string {
	t = strings.ToLower(t)
	if strings.Contains(t, "/") {
		return t
	}
	if prop == "SOUND" {
		return "audio/" + t
	}
	return "image/" + t
}

func addressObject(p *prop) map[string]any {
	o := map[string]any{}
	kinds := []string{"postOfficeBox", "apartment", "name", "locality", "region", "postcode", "country"}
	var comps []any
	for i, v := range components(p.value) {
		if v != "" {
			comps = append(comps, map[string]any{"kind": kinds[i], "value": v})
		}
	}
	if len(comps) > 0 {
		o["components"] = comps
	}
	if v := take(p.params, "LABEL"); len(v) == 1 {
		o["full"] = v[0]
	}
	if v := take(p.params, "CC"); len(v) == 1 {
		o["countryCode"] = v[0]
	}
	if v := take(p.params, "GEO"); len(v) == 1 {
		o["coordinates"] = v[0]
	}
	if v := take(p.params, "TZ"); len(v) == 1 {
		o["timeZone"] = v[0]
	}
	return o
}

// phoneFeatures maps TEL's TYPE values onto JSContact's phone features
// (RFC 9555 2.3.3).
var phoneFeatures = map[string]string{"voice": "voice", "fax": "fax", "cell": "mobile", "video": "video",
	"pager": "pager", "text": "text", "textphone": "textphone", "main-number": "main-number"}

func phoneObject(p *prop) map[string]any {
	o := map[string]any{"number": p.value}
	var rest []string
	feats := map[string]any{}
	for _, t := range p.params["TYPE"] {
		if f, ok := phoneFeatures[strings.ToLower(t)]; ok {
			feats[f] = true
		} else {
			rest = append(rest, t)
		}
	}
	if len(feats) > 0 {
		o["features"] = feats
		if len(rest) > 0 {
			sort.Strings(rest) // TYPE is a set (RFC 6350 5.6)
			p.params["TYPE"] = rest
		} else {
			delete(p.params, "TYPE")
		}
	}
	return o
}

// parseDate reads a vCard date (RFC 6350 4.3.1, and the extended form
// vCard 3.0 uses) as a JSContact PartialDate, or a date-time as a
// Timestamp; nil when it is neither (a text value such as "circa 1800").
func parseDate(v string) map[string]any {
	if strings.Contains(v, "T") {
		if ts, ok := parseTimestamp(v); ok {
			return map[string]any{"@type": "Timestamp", "utc": ts}
		}
		return nil
	}
	d := map[string]any{"@type": "PartialDate"}
	num := func(s string, lo, hi int) (int64, bool) {
		for _, r := range s {
			if r < '0' || r > '9' {
				return 0, false
			}
		}
		n, err := strconv.Atoi(s)
		return int64(n), err == nil && n >= lo && n <= hi
	}
	var ok1, ok2, ok3 bool
	var y, m, dd int64
	switch {
	case len(v) == 8 && !strings.HasPrefix(v, "-"):
		y, ok1 = num(v[:4], 1, 9999)
		m, ok2 = num(v[4:6], 1, 12)
		dd, ok3 = num(v[6:], 1, 31)
		d["year"], d["month"], d["day"] = y, m, dd
	case len(v) == 10 && v[4] == '-' && v[7] == '-':
		y, ok1 = num(v[:4], 1, 9999)
		m, ok2 = num(v[5:7], 1, 12)
		dd, ok3 = num(v[8:], 1, 31)
		d["year"], d["month"], d["day"] = y, m, dd
	case len(v) == 6 && strings.HasPrefix(v, "--"):
		m, ok1 = num(v[2:4], 1, 12)
		dd, ok2 = num(v[4:], 1, 31)
		ok3 = true
		d["month"], d["day"] = m, dd
	case len(v) == 7 && strings.HasPrefix(v, "--") && v[4] == '-':
		m, ok1 = num(v[2:4], 1, 12)
		dd, ok2 = num(v[5:], 1, 31)
		ok3 = true
		d["month"], d["day"] = m, dd
	case len(v) == 5 && strings.HasPrefix(v, "---"):
		dd, ok1 = num(v[3:], 1, 31)
		ok2, ok3 = true, true
		d["day"] = dd
	case len(v) == 4:
		y, ok1 = num(v, 1, 9999)
		ok2, ok3 = true, true
		d["year"] = y
	case len(v) == 7 && v[4] == '-':
		y, ok1 = num(v[:4], 1, 9999)
		m, ok2 = num(v[5:], 1, 12)
		ok3 = true
		d["year"], d["month"] = y, m
	default:
		return nil
	}
	if !ok1 || !ok2 || !ok3 {
		return nil
	}
	return d
}

// formatDate writes a PartialDate or Timestamp in vCard 4.0's basic
// form; "" when the object is neither.
func formatDate(d map[string]any) string {
	if d["@type"] == "Timestamp" {
		s, _ := d["utc"].(string)
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return ""
		}
		return t.UTC().Format("20060102T150405Z")
	}
	y, hy := intOf(d["year"])
	m, hm := intOf(d["month"])
	dd, hd := intOf(d["day"])
	switch {
	case hy && hm && hd:
		return fmt.Sprintf("%04d%02d%02d", y, m, dd)
	case hm && hd:
		return fmt.Sprintf("--%02d%02d", m, dd)
	case hy && hm:
		return fmt.Sprintf("%04d-%02d", y, m)
	case hy:
		return fmt.Sprintf("%04d", y)
	case hd:
		return fmt.Sprintf("---%02d", dd)
	}
	return ""
}

func intOf(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		return int64(x), x == float64(int64(x))
	case int:
		return int64(x), true
	}
	return 0, false
}

var timestampLayouts = []string{"20060102T150405Z", "2006-01-02T15:04:05Z", "20060102T150405Z0700", "20060102T150405-0700",
	"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00"}

// parseTimestamp reads a vCard timestamp (basic or extended form) as
// UTC in RFC 3339 form, the form of JSContact's UTCDateTime.
func parseTimestamp(v string) (string, bool) {
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05Z"), true
		}
	}
	return "", false
}

// caretDecode undoes RFC 6868's escapes in a parameter value: ^n a line
// break, ^' a double quote, ^^ a caret.
func caretDecode(v string) string {
	if !strings.Contains(v, "^") {
		return v
	}
	return strings.NewReplacer("^n", "\n", "^N", "\n", "^'", `"`, "^^", "^").Replace(v)
}

// validName reports whether s is a vCard property or parameter name
// (RFC 6350 3.3: letters, digits and "-").
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// singleValued are the parameters whose value is one text (RFC 6350 5,
// RFC 9554, RFC 9555), not a list.
var singleValued = map[string]bool{"LABEL": true, "JSPTR": true, "GEO": true, "TZ": true, "MEDIATYPE": true, "LANGUAGE": true,
	"VALUE": true, "ALTID": true, "CALSCALE": true, "PREF": true, "PROP-ID": true, "CC": true, "SERVICE-TYPE": true,
	"USERNAME": true, "AUTHOR": true, "AUTHOR-NAME": true, "CREATED": true, "DERIVED": true, "PHONETIC": true, "SCRIPT": true, "ENCODING": true}
