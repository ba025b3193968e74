// Package sources is the registry of mail source kinds: the one map from a
// kind name ("imap", "pop3", "maildir", "takeout") to its constructor. It
// lives apart from package vandelay because each adapter imports vandelay.
package sources

import (
	"sort"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/sources/maildir"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
	"github.com/mailmig/mailmig/vandelay/sources/takeout"
)

// Mail maps a source kind to its constructor. Register adapters here,
// explicitly, never from init functions.
var Mail = map[string]vandelay.NewSourceFunc{
	"imap":    imap.New,
	"maildir": maildir.New,
	"pop3":    pop3.New,
	"takeout": takeout.New,
}

// Kinds returns the registered kinds, sorted.
func Kinds() []string {
	var ks []string
	for k := range Mail {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
