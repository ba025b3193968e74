package plan

import "strings"

// normAddress is the comparison key of an address: the domain is case
// insensitive (RFC 5321 2.4), and in practice so is the local part on every
// server mailmig migrates between.
func normAddress(a string) string { return strings.ToLower(strings.TrimSpace(a)) }
