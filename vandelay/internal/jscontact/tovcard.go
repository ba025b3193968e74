package jscontact

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"
)

// writer builds a vCard 4.0: one content line per property, folded at 75
// octets (RFC 6350 3.2) on character boundaries.
type writer struct {
	buf bytes.Buffer
	// forceIDs names the property maps whose keys are all written as
	// PROP-ID.
	forceIDs map[string]bool
}

type param struct {
	name   string
	values []string
}

func (w *writer) line(group, name string, params []param, value string) {
	var l strings.Builder
	if group != "" {
		l.WriteString(group + ".")
	}
	l.WriteString(name)
	sort.SliceStable(params, func(i, j int) bool { return params[i].name < params[j].name })
	for _, p := range params {
		if len(p.values) == 0 {
			continue
		}
		quote := false
		for _, v := range p.values {
			quote = quote || strings.ContainsAny(v, ":;,\"\n^")
		}
		if !quote {
			l.WriteString(";" + p.name + "=" + strings.Join(p.values, ","))
			continue
		}
		// One quoted value per parameter: go-vcard (and some servers)
		// read a quoted value only as the whole list.
		for _, v := range p.values {
			l.WriteString(";" + p.name + `="` + caretEncode(v) + `"`)
		}
	}
	l.WriteString(":" + value)
	fold(&w.buf, l.String())
}

// caretEncode applies RFC 6868 to a quoted parameter value.
func caretEncode(v string) string {
	return strings.NewReplacer("^", "^^", "\n", "^n", `"`, "^'").Replace(v)
}

func fold(b *bytes.Buffer, l string) {
	n := 0
	for len(l) > 0 {
		_, size := utf8.DecodeRuneInString(l)
		if n+size > 75 {
			b.WriteString("\r\n ")
			n = 1
		}
		b.WriteString(l[:size])
		n += size
		l = l[size:]
	}
	b.WriteString("\r\n")
}

// escText escapes a TEXT value or component (RFC 6350 3.4).
func escText(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, ",", `\,`, ";", `\;`).Replace(s)
}

// escURI escapes a URI value: only line breaks (a data: URI keeps its
// comma and semicolons).
func escURI(s string) string {
	return strings.NewReplacer("\r\n", `\n`, "\n", `\n`).Replace(s)
}

// escRaw writes back a value kept from go-vcard (vCardProps), which
// still holds the "\;" escapes of its structured parts.
func escRaw(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == ';':
			b.WriteString(`\;`)
			i++
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == ',':
			b.WriteString(`\,`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// jsprop writes a JSContact value vCard has no property for (RFC 9555
// 3.2.1): JSPROP;JSPTR=path:json.
func (w *writer) jsprop(path []string, v any) {
	for i, s := range path {
		path[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
	}
	b, _ := json.Marshal(v)
	w.line("", "JSPROP", []param{{"JSPTR", []string{strings.Join(path, "/")}}}, strings.NewReplacer(`\`, `\\`, ",", `\,`, ";", `\;`).Replace(string(b)))
}

// entry is one object of a property map with what the conversion used.
type entry struct {
	w       *writer
	mapName string
	key     string
	obj     map[string]any
	used    map[string]bool
}

func (e *entry) str(k string) (string, bool) {
	s, ok := e.obj[k].(string)
	if ok {
		e.used[k] = true
	}
	return s, ok
}

// params returns PROP-ID, PREF, TYPE from contexts (plus extra types)
// and the vCardParams, and the group.
func (e *entry) params(types ...string) (string, []param) {
	var ps []param
	group := ""
	if !generatedKey(e.mapName, e.key) || e.w.forceIDs[e.mapName] {
		ps = append(ps, param{"PROP-ID", []string{e.key}})
	}
	if n, ok := intOf(e.obj["pref"]); ok {
		e.used["pref"] = true
		ps = append(ps, param{"PREF", []string{itoa(n)}})
	}
	if ctx, ok := e.obj["contexts"].(map[string]any); ok {
		good := true
		var ts []string
		for k, v := range ctx {
			switch {
			case v != true:
				good = false
			case k == "work":
				ts = append(ts, "work")
			case k == "private":
				ts = append(ts, "home")
			default:
				good = false
			}
		}
		if good {
			e.used["contexts"] = true
			types = append(types, ts...)
		}
	}
	vp, _ := e.obj["vCardParams"].(map[string]any)
	if vp != nil {
		e.used["vCardParams"] = true
	}
	for k, v := range vp {
		var vals []string
		switch x := v.(type) {
		case string:
			vals = []string{x}
		case []any:
			for _, s := range x {
				if s, ok := s.(string); ok {
					vals = append(vals, s)
				}
			}
		}
		switch up := strings.ToUpper(k); up {
		case "GROUP":
			if len(vals) == 1 {
				group = vals[0]
			}
		case "TYPE":
			types = append(types, vals...)
		default:
			ps = append(ps, param{up, vals})
		}
	}
	if len(types) > 0 {
		sort.Strings(types)
		ps = append(ps, param{"TYPE", types})
	}
	return group, ps
}

// rest writes the members of the entry the conversion did not use as
// JSPROP properties, so that nothing JSContact had is dropped.
func (e *entry) rest() {
	var keys []string
	for k := range e.obj {
		if !e.used[k] && k != "@type" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.w.jsprop([]string{e.mapName, e.key, k}, e.obj[k])
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// mapOrder is the order in which property maps are written.
var mapOrder = []string{"nicknames", "media", "anniversaries", "addresses", "phones", "emails", "onlineServices",
	"preferredLanguages", "titles", "organizations", "notes", "links", "cryptoKeys", "calendars", "schedulingAddresses", "directories"}

// ToVCard converts a JSContact Card into a vCard 4.0 following RFC 9555
// section 3; what vCard cannot hold is written as JSPROP properties and
// the card's vCardProps as the properties they were.
//
// A map key of the form the other direction generates ("e1") is written
// as PROP-ID only where reading the vCard back would give the entry
// another key, so that a vCard read from a CardDAV server comes back
// without PROP-ID parameters it never had.
func ToVCard(c Card) ([]byte, error) {
	out, err := toVCard(c, nil)
	if err != nil {
		return nil, err
	}
	back, err := FromVCard(out)
	if err != nil {
		return out, nil
	}
	var force map[string]bool
	for _, mapName := range mapOrder {
		m, _ := c[mapName].(map[string]any)
		bm, _ := back[mapName].(map[string]any)
		for k, v := range m {
			if generatedKey(mapName, k) && !reflect.DeepEqual(normalizeNumbers(v), bm[k]) {
				if force == nil {
					force = map[string]bool{}
				}
				force[mapName] = true
			}
		}
	}
	if force == nil {
		return out, nil
	}
	return toVCard(c, force)
}

func toVCard(c Card, forceIDs map[string]bool) ([]byte, error) {
	uid, _ := c["uid"].(string)
	if uid == "" {
		return nil, errors.New("jscontact: card without uid")
	}
	w := &writer{forceIDs: forceIDs}
	w.buf.WriteString("BEGIN:VCARD\r\nVERSION:4.0\r\n")
	// "@type" and "version" are the Card's frame: the card read back is
	// a JSContact 1.0 Card whatever they said.
	done := map[string]bool{"@type": true, "uid": true, "version": true}
	w.line("", "UID", nil, escURI(uid))
	simple := func(key, prop string, conv func(string) (string, bool)) {
		if s, ok := c[key].(string); ok {
			if v, ok := conv(s); ok {
				w.line("", prop, nil, v)
				done[key] = true
			}
		}
	}
	kinds := map[string]bool{"individual": true, "group": true, "org": true, "location": true, "device": true, "application": true}
	simple("kind", "KIND", func(s string) (string, bool) { return s, kinds[s] })
	simple("prodId", "PRODID", func(s string) (string, bool) { return escText(s), true })
	ts := func(s string) (string, bool) {
		v := formatDate(map[string]any{"@type": "Timestamp", "utc": s})
		return v, v != ""
	}
	simple("updated", "REV", ts)
	simple("created", "CREATED", ts)
	if name, ok := c["name"].(map[string]any); ok {
		done["name"] = true
		writeName(w, name)
	}
	for _, mapName := range mapOrder {
		m, ok := c[mapName].(map[string]any)
		if !ok {
			continue
		}
		done[mapName] = true
		for _, k := range sortedKeys(mapName, m) {
			obj, ok := m[k].(map[string]any)
			if !ok || k == "" || !writeEntry(&entry{w: w, mapName: mapName, key: k, obj: obj, used: map[string]bool{"@type": true}}) {
				w.jsprop([]string{mapName, k}, m[k])
			}
		}
	}
	if m, ok := c["members"].(map[string]any); ok {
		done["members"] = true
		for _, k := range sortedAll(m) {
			if m[k] == true {
				w.line("", "MEMBER", nil, escURI(k))
			} else {
				w.jsprop([]string{"members", k}, m[k])
			}
		}
	}
	if m, ok := c["relatedTo"].(map[string]any); ok {
		done["relatedTo"] = true
		for _, k := range sortedAll(m) {
			o, ok := m[k].(map[string]any)
			rel, _ := o["relation"].(map[string]any)
			var types []string
			for t, v := range rel {
				if v == true {
					types = append(types, t)
				}
			}
			sort.Strings(types)
			if !ok || len(o) > 1 || len(o) == 1 && rel == nil || len(types) != len(rel) {
				w.jsprop([]string{"relatedTo", k}, m[k])
				continue
			}
			var ps []param
			if len(types) > 0 {
				ps = []param{{"TYPE", types}}
			}
			w.line("", "RELATED", ps, escURI(k))
		}
	}
	if m, ok := c["keywords"].(map[string]any); ok {
		done["keywords"] = true
		var ks []string
		for _, k := range sortedAll(m) {
			if m[k] == true && !strings.Contains(k, ",") {
				ks = append(ks, escText(k))
			} else {
				w.jsprop([]string{"keywords", k}, m[k])
			}
		}
		if len(ks) > 0 {
			w.line("", "CATEGORIES", nil, strings.Join(ks, ","))
		}
	}
	if vp, ok := c["vCardProps"].([]any); ok {
		done["vCardProps"] = true
		for _, x := range vp {
			// An entry that is not [name, params, type, value] (RFC
			// 9555 3.3.1) is no vCard property: it is dropped.
			writeRaw(w, x)
		}
	}
	for _, k := range sortedAll(c) {
		if !done[k] {
			w.jsprop([]string{k}, c[k])
		}
	}
	w.buf.WriteString("END:VCARD\r\n")
	return w.buf.Bytes(), nil
}

func sortedAll[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeRaw writes one vCardProps entry ([name, params, type, value]).
func writeRaw(w *writer, x any) bool {
	a, ok := x.([]any)
	if !ok || len(a) != 4 {
		return false
	}
	name, ok1 := a[0].(string)
	params, ok2 := a[1].(map[string]any)
	value, ok3 := a[3].(string)
	if !ok1 || !ok2 || !ok3 || name == "" {
		return false
	}
	e := &entry{w: w, obj: map[string]any{"vCardParams": params}, used: map[string]bool{}, key: "x"}
	group, ps := e.params()
	ps = ps[1:] // no PROP-ID: vCardProps entries have no key
	w.line(group, strings.ToUpper(name), ps, escRaw(value))
	return true
}

var nameKinds = []string{"surname", "given", "given2", "title", "credential", "surname2", "generation"}

func writeName(w *writer, name map[string]any) {
	used := map[string]bool{}
	if full, ok := name["full"].(string); ok {
		used["full"] = true
		w.line("", "FN", nil, escText(full))
	}
	if comps, ok := name["components"].([]any); ok && len(comps) == 0 {
		used["components"] = true
		w.jsprop([]string{"name", "components"}, comps)
	} else if ok {
		used["components"] = true
		fields := make([][]string, len(nameKinds))
		exact, last := true, 0
		for _, x := range comps {
			o, _ := x.(map[string]any)
			kind, _ := o["kind"].(string)
			val, _ := o["value"].(string)
			i := indexOf(nameKinds, kind)
			if i < 0 || len(o) != 2 || strings.Contains(val, ",") || val == "" {
				exact = false
				continue
			}
			if i < last {
				// N has no order of its own: the list travels as
				// JSPROP and keeps it.
				exact = false
			}
			last = i
			fields[i] = append(fields[i], escText(val))
		}
		n := 5
		if len(fields[5]) > 0 || len(fields[6]) > 0 {
			n = 7
		}
		var parts []string
		for _, f := range fields[:n] {
			parts = append(parts, strings.Join(f, ","))
		}
		w.line("", "N", nil, strings.Join(parts, ";"))
		if !exact {
			// Components N cannot hold (separators, phonetics):
			// the list travels as it is and wins on the way back.
			w.jsprop([]string{"name", "components"}, comps)
		}
	}
	for _, k := range sortedAll(name) {
		if !used[k] && k != "@type" {
			w.jsprop([]string{"name", k}, name[k])
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// writeEntry writes one object of a property map; false when the object
// has no vCard form (it then travels whole as JSPROP).
func writeEntry(e *entry) bool {
	w := e.w
	switch e.mapName {
	case "nicknames":
		s, ok := e.str("name")
		if !ok {
			return false
		}
		g, ps := e.params()
		w.line(g, "NICKNAME", ps, escText(s))
	case "media":
		kind, _ := e.obj["kind"].(string)
		prop := map[string]string{"photo": "PHOTO", "logo": "LOGO", "sound": "SOUND"}[kind]
		uri, ok := e.str("uri")
		if prop == "" || !ok {
			return false
		}
		e.used["kind"] = true
		g, ps := e.params()
		if mt, ok := e.str("mediaType"); ok {
			ps = append(ps, param{"MEDIATYPE", []string{mt}})
		}
		w.line(g, prop, ps, escURI(uri))
	case "anniversaries":
		kind, _ := e.obj["kind"].(string)
		prop := map[string]string{"birth": "BDAY", "wedding": "ANNIVERSARY", "death": "DEATHDATE"}[kind]
		d, _ := e.obj["date"].(map[string]any)
		v := ""
		if d != nil {
			v = formatDate(d)
			if v != "" && parseDate(v) == nil || len(d) > 4 {
				v = ""
			}
		}
		if prop == "" || v == "" {
			return false
		}
		e.used["kind"], e.used["date"] = true, true
		g, ps := e.params()
		w.line(g, prop, ps, v)
	case "addresses":
		fields := make([]string, 7)
		adrKinds := []string{"postOfficeBox", "apartment", "name", "locality", "region", "postcode", "country"}
		if comps, ok := e.obj["components"].([]any); ok {
			e.used["components"] = true
			exact, last := true, 0
			for _, x := range comps {
				o, _ := x.(map[string]any)
				kind, _ := o["kind"].(string)
				val, _ := o["value"].(string)
				i := indexOf(adrKinds, kind)
				if kind == "separator" {
					exact = false
					continue
				}
				if i >= 0 && i < last {
					exact = false
				}
				if i >= 0 {
					last = i
				}
				if i < 0 || len(o) != 2 || fields[i] != "" || val == "" {
					// A number, building, separator … goes into the
					// street part; the exact list travels as JSPROP.
					exact = false
					if i < 0 {
						i = 2
					}
					if fields[i] != "" {
						fields[i] += " "
					}
				}
				fields[i] += val
			}
			if !exact {
				w.jsprop([]string{"addresses", e.key, "components"}, comps)
			}
		}
		for i := range fields {
			fields[i] = escText(fields[i])
		}
		g, ps := e.params()
		for k, p := range map[string]string{"full": "LABEL", "countryCode": "CC", "coordinates": "GEO", "timeZone": "TZ"} {
			if s, ok := e.str(k); ok {
				ps = append(ps, param{p, []string{s}})
			}
		}
		w.line(g, "ADR", ps, strings.Join(fields, ";"))
	case "phones":
		num, ok := e.str("number")
		if !ok {
			return false
		}
		var types []string
		if f, ok := e.obj["features"].(map[string]any); ok {
			good := true
			for k, v := range f {
				t := ""
				for vt, jf := range phoneFeatures {
					if jf == k {
						t = vt
					}
				}
				if t == "" || v != true {
					good = false
					continue
				}
				types = append(types, t)
			}
			if good {
				e.used["features"] = true
			} else {
				types = nil
			}
		}
		g, ps := e.params(types...)
		w.line(g, "TEL", ps, escURI(num))
	case "emails":
		s, ok := e.str("address")
		if !ok {
			return false
		}
		g, ps := e.params()
		w.line(g, "EMAIL", ps, escText(s))
	case "onlineServices":
		uri, ok := e.str("uri")
		if !ok {
			return false
		}
		prop := "SOCIALPROFILE"
		if vn, _ := e.obj["vCardName"].(string); vn == "impp" {
			prop = "IMPP"
			e.used["vCardName"] = true
		}
		g, ps := e.params()
		if s, ok := e.str("service"); ok && prop == "SOCIALPROFILE" {
			ps = append(ps, param{"SERVICE-TYPE", []string{s}})
		}
		w.line(g, prop, ps, escURI(uri))
	case "preferredLanguages":
		s, ok := e.str("language")
		if !ok {
			return false
		}
		g, ps := e.params()
		w.line(g, "LANG", ps, escURI(s))
	case "titles":
		s, ok := e.str("name")
		if !ok {
			return false
		}
		prop := "TITLE"
		switch e.obj["kind"] {
		case "role":
			prop = "ROLE"
			e.used["kind"] = true
		case "title", nil:
			e.used["kind"] = true
		}
		g, ps := e.params()
		w.line(g, prop, ps, escText(s))
	case "organizations":
		name, _ := e.str("name")
		parts := []string{escText(name)}
		if units, ok := e.obj["units"].([]any); ok {
			exact := true
			var names []string
			for _, u := range units {
				o, _ := u.(map[string]any)
				n, ok := o["name"].(string)
				if !ok || len(o) != 1 {
					exact = false
					break
				}
				names = append(names, escText(n))
			}
			if exact {
				e.used["units"] = true
				parts = append(parts, names...)
			}
		}
		if name == "" && !e.used["units"] {
			return false
		}
		g, ps := e.params()
		w.line(g, "ORG", ps, strings.Join(parts, ";"))
	case "notes":
		s, ok := e.str("note")
		if !ok {
			return false
		}
		g, ps := e.params()
		w.line(g, "NOTE", ps, escText(s))
	case "links", "cryptoKeys", "schedulingAddresses", "calendars", "directories":
		uri, ok := e.str("uri")
		if !ok {
			return false
		}
		prop := map[string]string{"links": "URL", "cryptoKeys": "KEY", "schedulingAddresses": "CALADRURI"}[e.mapName]
		kind, _ := e.obj["kind"].(string)
		switch e.mapName {
		case "calendars":
			prop = map[string]string{"calendar": "CALURI", "freeBusy": "FBURL"}[kind]
			e.used["kind"] = true
		case "directories":
			prop = map[string]string{"entry": "SOURCE", "directory": "ORG-DIRECTORY"}[kind]
			e.used["kind"] = true
		}
		if prop == "" {
			return false
		}
		g, ps := e.params()
		w.line(g, prop, ps, escURI(uri))
	default:
		return false
	}
	e.rest()
	return true
}
