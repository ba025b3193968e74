package jmap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// refPrefix marks a mailbox's archive SourceRef as a JMAP Mailbox id.
const refPrefix = "jmap:"

// cursorPrefix starts the Extra of every cursor this source writes.
const cursorPrefix = "jmap1 "

// maxStateLen bounds a stored state string: servers use short opaque
// tokens, and a cursor is read on every run.
const maxStateLen = 1024

// position is the account-wide sync position: the Mailbox and Email
// state strings after the last complete sync, and the scope it was taken
// with. JMAP states are per account and type, not per mailbox, but the
// archive keeps cursors per mailbox (and planners read them from there),
// so every mailbox of the account carries the same position and a run
// trusts it only when they all agree.
type position struct {
	Mailbox string `json:"mailbox"`
	Email   string `json:"email"`
	// Scope fingerprints Include, Exclude and SubscribedOnly: a run with
	// another scope must compare everything, not only the changes.
	Scope string `json:"scope,omitempty"`
}

var errBadCursor = errors.New("not a jmap cursor")

// encode returns the cursor Extra for p.
func (p position) encode() string {
	b, _ := json.Marshal(p)
	return cursorPrefix + string(b)
}

// parsePosition decodes a cursor Extra written by encode.
func parsePosition(extra string) (position, error) {
	var p position
	rest, ok := strings.CutPrefix(extra, cursorPrefix)
	if !ok || len(rest) > 3*maxStateLen {
		return p, errBadCursor
	}
	if err := json.Unmarshal([]byte(rest), &p); err != nil {
		return p, errBadCursor
	}
	if p.Mailbox == "" || p.Email == "" || len(p.Mailbox) > maxStateLen || len(p.Email) > maxStateLen {
		return position{}, errBadCursor
	}
	return p, nil
}

// storedPosition returns the position every JMAP mailbox of the archive
// agrees on; ok is false when there is none (first run, a killed run
// that saved no position, a mailbox without one, disagreement).
func storedPosition(known []archive.MailboxCursor) (p position, ok bool) {
	n := 0
	for _, k := range known {
		if !strings.HasPrefix(k.SourceRef, refPrefix) {
			continue
		}
		q, err := parsePosition(k.Cursor.Extra)
		if err != nil {
			return position{}, false
		}
		if n > 0 && q != p {
			return position{}, false
		}
		p = q
		n++
	}
	return p, n > 0
}

// scopeKey fingerprints the scope settings that decide which mailboxes
// the archive holds.
func scopeKey(s *vandelay.Scope) string {
	if len(s.Include) == 0 && len(s.Exclude) == 0 && !s.SubscribedOnly {
		return ""
	}
	h := sha256.New()
	for _, re := range s.Include {
		h.Write([]byte("i" + strconv.Quote(re.String())))
	}
	for _, re := range s.Exclude {
		h.Write([]byte("e" + strconv.Quote(re.String())))
	}
	if s.SubscribedOnly {
		h.Write([]byte("s"))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
