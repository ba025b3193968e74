package jmap

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Capability URIs used by mailmig (RFC 8620 2; RFC 8621 1.3).
const (
	CapCore = "urn:ietf:params:jmap:core"
	CapMail = "urn:ietf:params:jmap:mail"
)

// Session is the JMAP session resource (RFC 8620 2).
type Session struct {
	Capabilities    map[string]json.RawMessage `json:"capabilities"`
	Accounts        map[string]Account         `json:"accounts"`
	PrimaryAccounts map[string]string          `json:"primaryAccounts"`
	Username        string                     `json:"username"`
	APIURL          string                     `json:"apiUrl"`
	DownloadURL     string                     `json:"downloadUrl"`
	UploadURL       string                     `json:"uploadUrl"`
	EventSourceURL  string                     `json:"eventSourceUrl"`
	State           string                     `json:"state"`

	// Core holds the parsed urn:ietf:params:jmap:core capability.
	Core CoreCapability `json:"-"`
}

// Account is one entry of Session.Accounts (RFC 8620 2).
type Account struct {
	Name                string                     `json:"name"`
	IsPersonal          bool                       `json:"isPersonal"`
	IsReadOnly          bool                       `json:"isReadOnly"`
	AccountCapabilities map[string]json.RawMessage `json:"accountCapabilities"`
}

// CoreCapability holds the limits of urn:ietf:params:jmap:core (RFC 8620 2).
type CoreCapability struct {
	MaxSizeUpload         int64    `json:"maxSizeUpload"`
	MaxConcurrentUpload   int      `json:"maxConcurrentUpload"`
	MaxSizeRequest        int64    `json:"maxSizeRequest"`
	MaxConcurrentRequests int      `json:"maxConcurrentRequests"`
	MaxCallsInRequest     int      `json:"maxCallsInRequest"`
	MaxObjectsInGet       int      `json:"maxObjectsInGet"`
	MaxObjectsInSet       int      `json:"maxObjectsInSet"`
	CollationAlgorithms   []string `json:"collationAlgorithms"`
}

// MailAccountCapability holds the account-level urn:ietf:params:jmap:mail
// capability (RFC 8621 1.3.1).
type MailAccountCapability struct {
	MaxMailboxesPerEmail       *int  `json:"maxMailboxesPerEmail"`
	MaxMailboxDepth            *int  `json:"maxMailboxDepth"`
	MaxSizeMailboxName         int   `json:"maxSizeMailboxName"`
	MaxSizeAttachmentsPerEmail int64 `json:"maxSizeAttachmentsPerEmail"`
	MayCreateTopLevelMailbox   bool  `json:"mayCreateTopLevelMailbox"`
}

// parseSession decodes and validates a session resource.
func parseSession(body []byte) (*Session, error) {
	var s Session
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("decode jmap session: %w", err)
	}
	if s.APIURL == "" {
		return nil, fmt.Errorf("jmap session has no apiUrl")
	}
	raw, ok := s.Capabilities[CapCore]
	if !ok {
		return nil, fmt.Errorf("jmap session lacks the %s capability", CapCore)
	}
	if err := json.Unmarshal(raw, &s.Core); err != nil {
		return nil, fmt.Errorf("decode %s capability: %w", CapCore, err)
	}
	// RFC 8620 2 makes every limit an UnsignedInt of at least 1; a server
	// that omits one gets the most conservative value, not a guess.
	if s.Core.MaxConcurrentUpload < 1 {
		s.Core.MaxConcurrentUpload = 1
	}
	if s.Core.MaxConcurrentRequests < 1 {
		s.Core.MaxConcurrentRequests = 1
	}
	if s.Core.MaxCallsInRequest < 1 {
		s.Core.MaxCallsInRequest = 1
	}
	if s.Core.MaxObjectsInGet < 1 {
		s.Core.MaxObjectsInGet = 1
	}
	if s.Core.MaxObjectsInSet < 1 {
		s.Core.MaxObjectsInSet = 1
	}
	return &s, nil
}

// MailCapability returns the account's urn:ietf:params:jmap:mail
// capability; ok is false when the account does not support mail.
func (s *Session) MailCapability(accountID string) (MailAccountCapability, bool) {
	var mc MailAccountCapability
	a, ok := s.Accounts[accountID]
	if !ok {
		return mc, false
	}
	raw, ok := a.AccountCapabilities[CapMail]
	if !ok {
		return mc, false
	}
	_ = json.Unmarshal(raw, &mc)
	return mc, true
}

// FindAccount picks an account: by id, then by name (case-insensitive),
// and with an empty key the primary account for mail. It also matches
// accounts the credential may act for (Stalwart lists them in accounts).
func (s *Session) FindAccount(key string) (string, error) {
	if key == "" {
		if id, ok := s.PrimaryAccounts[CapMail]; ok {
			return id, nil
		}
		if len(s.Accounts) == 1 {
			for id := range s.Accounts {
				return id, nil
			}
		}
		return "", fmt.Errorf("jmap session has no primary mail account; choose one with --account-id or --account-name")
	}
	if _, ok := s.Accounts[key]; ok {
		return key, nil
	}
	var found []string
	for id, a := range s.Accounts {
		if strings.EqualFold(a.Name, key) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("jmap account %q not found in the session (the credential can reach %d accounts)", key, len(s.Accounts))
	}
	return "", fmt.Errorf("jmap account name %q is ambiguous (%d accounts); choose by id", key, len(found))
}

// expandTemplate expands an RFC 6570 level-1 URI template: each {name} is
// replaced by its value with every character outside the unreserved set
// percent-encoded (RFC 6570 3.2.2). Unknown names expand to "".
func expandTemplate(tmpl string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		b.WriteString(pctEncodeUnreserved(vars[tmpl[i+1:i+j]]))
		tmpl = tmpl[i+j+1:]
	}
}

func pctEncodeUnreserved(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// resolve resolves ref (possibly relative, possibly on another origin)
// against the session URL base.
func resolve(base *url.URL, ref string) (*url.URL, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("parse session url %q: %w", ref, err)
	}
	return base.ResolveReference(u), nil
}
