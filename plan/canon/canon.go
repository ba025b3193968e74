package canon

import "strings"

// Address is the comparison key of an account address, alias or domain:
// surrounding white space removed, lower case. The domain is case
// insensitive (RFC 5321 2.4), and in practice so is the local part on
// every server mailmig migrates between. Nothing else is changed:
// internal white space, quotes, sub-addresses ("+tag") and IDN domains
// stay as written (an A-label and its U-label are different keys).
func Address(a string) string { return strings.ToLower(strings.TrimSpace(a)) }
