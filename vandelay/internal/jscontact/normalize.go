package jscontact

import (
	"sort"
	"strings"
)

// NormalizeRules are the rewrites a vCard undergoes on its way through
// JSContact and back (vCard → [FromVCard] → [ToVCard]), and so what
// [NormalizeVCard] applies to both sides of a round-trip comparison.
// docs/export.md lists them; each is exercised by a case of
// TestRoundTrip.
var NormalizeRules = []string{
	"the result is vCard 4.0 (VERSION is not carried: RFC 9555 2.1.3)",
	"lines are unfolded and re-folded at 75 octets; property and parameter order is not kept",
	"vCard 3.0 inline data (PHOTO;ENCODING=b;TYPE=JPEG:…) becomes a data: URI (PHOTO:data:image/jpeg;base64,…)",
	"vCard 3.0's TYPE=pref becomes PREF=1",
	"TYPE values are lower case; KIND's value is lower case",
	"Apple's X-ADDRESSBOOKSERVER-KIND and X-ADDRESSBOOKSERVER-MEMBER become KIND and MEMBER",
	"dates (BDAY, ANNIVERSARY, DEATHDATE) are written in the basic form (1985-04-12 → 19850412) and timestamps (REV, CREATED) in UTC basic form",
	"empty trailing components of N, ADR and ORG are dropped",
	"all CATEGORIES properties become one, values sorted; repeated MEMBER values become one",
	"the CHARSET parameter (vCard 3.0) is dropped: the bytes are UTF-8",
	"a PROP-ID parameter is the JSContact map key; keys of the form e1, p2 … are not written back",
	"a vCard without UID gets UID:urn:uuid:… derived from its bytes",
	`an escaped comma in a value that vCard does not split ("\,") and a plain one are the same (go-vcard reads both as ",")`,
}

// NormalizeVCard returns the vCard's properties as sorted canonical lines
// after [NormalizeRules]: two vCards with equal lines carry the same
// content through JSContact.
func NormalizeVCard(data []byte) ([]string, error) {
	vc, err := Decode(data)
	if err != nil {
		return nil, err
	}
	var out []string
	hasUID := false
	cats := map[string]bool{}
	for _, p := range props(vc) {
		p := p
		delete(p.params, "PROP-ID")
		switch p.name {
		case "VERSION":
			continue
		case "UID":
			hasUID = true
		case "X-ADDRESSBOOKSERVER-KIND":
			if len(p.params) == 0 && p.group == "" {
				p.name = "KIND"
			}
		case "X-ADDRESSBOOKSERVER-MEMBER":
			if len(p.params) == 0 && p.group == "" {
				p.name = "MEMBER"
			}
		case "CATEGORIES":
			if len(p.params) == 0 && p.group == "" {
				for _, c := range strings.Split(textValue(p.value), ",") {
					if c != "" {
						cats[c] = true
					}
				}
				continue
			}
		}
		switch p.name {
		case "KIND":
			p.value = strings.ToLower(p.value)
		case "PHOTO", "LOGO", "SOUND":
			o := mediaObject(&p)
			p.value = o["uri"].(string)
			if mt, ok := o["mediaType"].(string); ok {
				p.params["MEDIATYPE"] = []string{mt}
			}
		case "BDAY", "ANNIVERSARY", "DEATHDATE":
			vt := p.params["VALUE"]
			if d := parseDate(p.value); d != nil && (len(vt) == 0 || strings.HasPrefix(strings.ToLower(vt[0]), "date")) {
				delete(p.params, "VALUE")
				p.value = formatDate(d)
			}
		case "REV", "CREATED":
			if ts, ok := parseTimestamp(p.value); ok {
				p.value = formatDate(map[string]any{"@type": "Timestamp", "utc": ts})
			}
		case "N", "ADR", "ORG":
			cs := components(p.value)
			for len(cs) > 1 && cs[len(cs)-1] == "" {
				cs = cs[:len(cs)-1]
			}
			p.value = strings.Join(cs, "\x00")
		case "FN", "NOTE", "NICKNAME", "TITLE", "ROLE", "EMAIL", "PRODID":
			p.value = textValue(p.value)
		}
		if ts := p.params["TYPE"]; len(ts) > 0 {
			var keep []string
			for _, t := range ts {
				switch t = strings.ToLower(t); t {
				case "pref":
					if len(p.params["PREF"]) == 0 {
						p.params["PREF"] = []string{"1"}
					}
				case "":
				default:
					keep = append(keep, t)
				}
			}
			sort.Strings(keep)
			p.params["TYPE"] = keep
			if len(keep) == 0 {
				delete(p.params, "TYPE")
			}
		}
		out = append(out, canonicalLine(&p))
	}
	if !hasUID {
		out = append(out, "UID:"+derivedUID(data))
	}
	if len(cats) > 0 {
		out = append(out, "CATEGORIES:"+strings.Join(sortedAll(cats), ","))
	}
	sort.Strings(out)
	// Repeated MEMBER (and any exactly repeated line) counts once.
	uniq := out[:0]
	for i, l := range out {
		if i == 0 || l != out[i-1] {
			uniq = append(uniq, l)
		}
	}
	return uniq, nil
}

func canonicalLine(p *prop) string {
	var b strings.Builder
	if p.group != "" {
		b.WriteString(p.group + ".")
	}
	b.WriteString(p.name)
	for _, k := range sortedAll(p.params) {
		vs := append([]string(nil), p.params[k]...)
		if k == "TYPE" {
			sort.Strings(vs)
		}
		b.WriteString(";" + k + "=" + strings.Join(vs, ","))
	}
	b.WriteString(":" + p.value)
	return b.String()
}
