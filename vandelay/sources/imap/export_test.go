package imap

import "github.com/emersion/go-imap/v2"

// IgnoreCaps makes src treat the capabilities as absent, to test the
// paths for servers without them.
func IgnoreCaps(src any, caps ...imap.Cap) {
	src.(*Source).ignoreCaps = caps
}
