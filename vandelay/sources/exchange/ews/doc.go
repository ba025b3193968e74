// Package ews imports a mailbox of an on-premises Exchange server over
// Exchange Web Services: mail as a vandelay.MailSource ([Source]),
// calendars and contacts as vandelay.DAVSource ([DAV]: the iCalendar and
// vCard MimeContent Exchange serves, kept byte for byte).
//
// It is verified against recorded exchanges only (testdata/*.txtar,
// written by testdata/make-fixtures.py from Microsoft's documented
// examples); FuzzParseResponse covers the SOAP decoder.
//
// Implementation notes:
//
//   - Requests are written as text (the few operations used: GetFolder,
//     SyncFolderHierarchy, SyncFolderItems, GetItem); responses are decoded
//     by local element name, since servers vary the namespace prefixes.
//   - RequestServerVersion starts at Exchange2013_SP1 and steps down
//     (Versions) when the server refuses it; the version in force is shared
//     by the source's concurrent calls.
//   - A master user reads another mailbox by ExchangeImpersonation; every
//     request carries X-AnchorMailbox for routing.
//   - A folder's cursor is its SyncState, saved after its changes; EWS
//     item ids change on a move, so a moved message is fetched again and
//     matched to the archive's copy by content.
//   - Authentication is Basic only; NTLM is not implemented (no maintained
//     Go library in the project's dependency set).
package ews
