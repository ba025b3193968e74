// Package pop3 imports a POP3 maildrop into INBOX of an archive, the
// simplest legacy case (RFC 1939, RFC 2449 CAPA, RFC 5034 SASL PLAIN).
//
// Convergence is by UIDL: each message's unique-id is its location key in
// INBOX. A run lists UIDL, removes copies whose id vanished (they are
// tombstoned when the run completes), and RETRieves only ids it has not
// archived yet, so a killed run resumes where its last committed batch
// ended. POP3 has no flags and no internal date: messages get no
// keywords, and receivedAt is taken from the newest Received: header, else
// the Date: header, else the time of import. The maildrop is only read
// (never DELE). One connection: POP3 servers lock the maildrop.
package pop3
