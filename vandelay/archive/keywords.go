package archive

import (
	"sort"
	"strings"
)

// JMAP keywords for the IMAP system flags (RFC 8621 4.1.1).
const (
	KeywordSeen      = "$seen"
	KeywordAnswered  = "$answered"
	KeywordFlagged   = "$flagged"
	KeywordDraft     = "$draft"
	KeywordForwarded = "$forwarded"
	KeywordJunk      = "$junk"
	KeywordNotJunk   = "$notjunk"
	KeywordPhishing  = "$phishing"
	KeywordImportant = "$important"
)

// KeywordFromFlag maps one IMAP flag to a JMAP keyword: \Seen → $seen,
// \Answered → $answered, \Flagged → $flagged, \Draft → $draft; the
// registered $-keywords ($Forwarded, $Junk, …) are lower-cased; other
// keywords are kept as they are. \Deleted and \Recent have no JMAP keyword
// and map to "" (deleted reports \Deleted).
func KeywordFromFlag(flag string) (kw string, deleted bool) {
	switch strings.ToLower(flag) {
	case `\seen`:
		return KeywordSeen, false
	case `\answered`:
		return KeywordAnswered, false
	case `\flagged`:
		return KeywordFlagged, false
	case `\draft`:
		return KeywordDraft, false
	case `\deleted`:
		return "", true
	case `\recent`:
		return "", false
	case KeywordForwarded, KeywordJunk, KeywordNotJunk, KeywordPhishing, KeywordImportant, "$mdnsent":
		return strings.ToLower(flag), false
	}
	if strings.HasPrefix(flag, `\`) {
		return "", false // unknown system flag
	}
	return flag, false
}

// NormalizeKeywords sorts and de-duplicates keywords (case-insensitively,
// keeping the first spelling) and drops empty ones.
func NormalizeKeywords(kws []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range kws {
		l := strings.ToLower(k)
		if k == "" || seen[l] || strings.ContainsAny(k, " \t\r\n") {
			continue
		}
		seen[l] = true
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinKeywords(kws []string) string { return strings.Join(NormalizeKeywords(kws), " ") }

func splitKeywords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// targetOnlyKeywords are keywords a JMAP server sets by itself (Cyrus's
// attachment markers): not the user's, so not written to an IMAP server.
var targetOnlyKeywords = map[string]bool{"$hasattachment": true, "$hasnoattachment": true}

// FlagFromKeyword maps a JMAP keyword back to an IMAP flag, the reverse of
// [KeywordFromFlag]: $seen → \Seen, $answered → \Answered, $flagged →
// \Flagged, $draft → \Draft, the registered $-keywords in their usual
// spelling ($forwarded → $Forwarded), other keywords as they are. Keywords
// a server sets by itself ($hasattachment) map to "".
func FlagFromKeyword(kw string) string {
	switch l := strings.ToLower(kw); {
	case l == KeywordSeen:
		return `\Seen`
	case l == KeywordAnswered:
		return `\Answered`
	case l == KeywordFlagged:
		return `\Flagged`
	case l == KeywordDraft:
		return `\Draft`
	case targetOnlyKeywords[l]:
		return ""
	case registeredFlags[l] != "":
		return registeredFlags[l]
	}
	return kw
}

var registeredFlags = map[string]string{KeywordForwarded: "$Forwarded", KeywordJunk: "$Junk", KeywordNotJunk: "$NotJunk",
	KeywordPhishing: "$Phishing", KeywordImportant: "$Important", "$mdnsent": "$MDNSent"}
