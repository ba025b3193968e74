// Package proxytest starts mailmig's proxy in front of the real test
// servers of internal/peers, with its own route table in a temporary
// directory, for integration tests of the protocol packages and of the
// CLI.
//
// The proxy gets four backends: "dovecot" (Set.Dovecot), "dovecot2"
// (Set.Dovecot2), "cyrus" (Set.Cyrus) and "down" (nothing listens there);
// "dovecot" is the default backend,
// so every account created by Set.NewAccount logs in through the proxy
// without a route entry. Route helpers (Route, Freeze, Unfreeze) write the
// SQLite table like `mailmig routes` does, and the proxy picks the change
// up within its poll interval (20 ms here).
//
// Test packages that use proxytest must be external test packages
// (package imap_test …), because proxytest imports the protocol packages.
package proxytest
