package vandelay

import (
	"bytes"
	"sort"
	"strings"
)

// VCardRule is one rewrite that Cyrus 3.6's CardDAV applies on store,
// undone the same way on both sides of a comparison.
type VCardRule struct {
	// Name says what Cyrus does.
	Name string
	// Apply rewrites one vCard.
	Apply func([]byte) []byte
}

// VCardRules are the rules [NormalizeVCard] applies, in order. Each one
// is proved necessary against the real Cyrus by TestCardDAVRadicaleToCyrus
// (leave it out and an item differs) and listed in docs/export.md.
// Nothing else is normalised: property order, case, values and the
// vCard version are compared as they are.
var VCardRules = []VCardRule{
	// RFC 6350 3.2 folding is presentation, not content: Cyrus folds
	// every line longer than 75 octets (a 500 KB PHOTO served on one line
	// by Radicale comes back as 6,800 folded lines).
	{"unfold lines (Cyrus folds at 75 octets)", unfold},
	// Cyrus writes TYPE=INTERNET,HOME as TYPE=INTERNET;TYPE=HOME (the
	// same parameter value list, RFC 6350 5.6).
	{"split TYPE value lists into one TYPE parameter per value", splitTypeLists},
}

// ICalRules are the rules for iCalendar objects that Cyrus 3.6's CalDAV
// rewrites on store, proved necessary like [VCardRules] by
// TestCalDAVRadicaleToCyrus.
var ICalRules = []VCardRule{
	{"unfold lines (Cyrus folds at 75 octets)", unfold},
	// Cyrus (libical) writes RRULE parts in its own order:
	// FREQ=WEEKLY;BYDAY=MO;COUNT=10 comes back as FREQ=WEEKLY;COUNT=10;BYDAY=MO
	// (RFC 5545 3.3.10: the order of the parts carries no meaning).
	{"sort RRULE parts (Cyrus re-orders them)", sortRRuleParts},
	// Cyrus writes the VALUE parameter first: ATTACH;ENCODING=BASE64;
	// FMTTYPE=…;VALUE=BINARY comes back as ATTACH;VALUE=BINARY;ENCODING=…
	{"move the VALUE parameter first (Cyrus writes it first)", valueParamFirst},
}

// Rules returns the normalisation rules of a collection kind
// (archive.CollectionAddressBook or archive.CollectionCalendar).
func Rules(kind string) []VCardRule {
	if kind == "calendar" {
		return ICalRules
	}
	return VCardRules
}

// Normalize returns b with the rules of kind applied.
func Normalize(kind string, b []byte) string {
	return string(normalizeVCard(b, Rules(kind)))
}

// NormalizeVCard returns b with [VCardRules] applied.
func NormalizeVCard(b []byte) string {
	return string(normalizeVCard(b, VCardRules))
}

func normalizeVCard(b []byte, rules []VCardRule) []byte {
	for _, r := range rules {
		b = r.Apply(b)
	}
	return b
}

// unfold removes CRLF (or LF) followed by one space or tab.
func unfold(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n "), nil)
	b = bytes.ReplaceAll(b, []byte("\r\n\t"), nil)
	b = bytes.ReplaceAll(b, []byte("\n "), nil)
	return bytes.ReplaceAll(b, []byte("\n\t"), nil)
}

// splitTypeLists rewrites, on each (unfolded) content line, a parameter
// TYPE=a,b as TYPE=a;TYPE=b. Quoted values and the property value are
// left alone.
func splitTypeLists(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	var out bytes.Buffer
	for _, l := range lines {
		out.Write(splitTypeLine(l))
	}
	return out.Bytes()
}

func splitTypeLine(l []byte) []byte {
	// The property's name and parameters end at the first unquoted ':'.
	quoted, end := false, -1
	for i, c := range l {
		if c == '"' {
			quoted = !quoted
		} else if c == ':' && !quoted {
			end = i
			break
		}
	}
	if end < 0 || !bytes.ContainsRune(l[:end], ';') {
		return l
	}
	params := splitUnquoted(string(l[:end]), ';')
	var out []string
	out = append(out, params[0])
	for _, p := range params[1:] {
		name, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(name, "TYPE") || strings.Contains(val, `"`) {
			out = append(out, p)
			continue
		}
		for _, v := range strings.Split(val, ",") {
			out = append(out, name+"="+v)
		}
	}
	return append([]byte(strings.Join(out, ";")), l[end:]...)
}

func splitUnquoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// eachLine applies f to every line (unfolded input expected), keeping the
// line ends.
func eachLine(b []byte, f func([]byte) []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		out.Write(f(l))
	}
	return out.Bytes()
}

// headEnd returns the index of the ':' that ends a content line's name
// and parameters (the first one outside quotes), -1 when there is none.
func headEnd(l []byte) int {
	quoted := false
	for i, c := range l {
		if c == '"' {
			quoted = !quoted
		} else if c == ':' && !quoted {
			return i
		}
	}
	return -1
}

func sortRRuleParts(b []byte) []byte {
	return eachLine(b, func(l []byte) []byte {
		if !bytes.HasPrefix(bytes.ToUpper(l), []byte("RRULE")) {
			return l
		}
		end := headEnd(l)
		if end < 0 {
			return l
		}
		val := string(l[end+1:])
		trail := val[len(strings.TrimRight(val, "\r\n")):]
		parts := strings.Split(strings.TrimRight(val, "\r\n"), ";")
		sort.Strings(parts)
		return append(append([]byte{}, l[:end+1]...), strings.Join(parts, ";")+trail...)
	})
}

func valueParamFirst(b []byte) []byte {
	return eachLine(b, func(l []byte) []byte {
		end := headEnd(l)
		if end < 0 || !bytes.ContainsRune(l[:end], ';') {
			return l
		}
		params := splitUnquoted(string(l[:end]), ';')
		for i := 2; i < len(params); i++ {
			if strings.HasPrefix(strings.ToUpper(params[i]), "VALUE=") {
				v := params[i]
				copy(params[2:i+1], params[1:i])
				params[1] = v
				break
			}
		}
		return append([]byte(strings.Join(params, ";")), l[end:]...)
	})
}
