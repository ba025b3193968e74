// Package graph imports a Microsoft 365 (Exchange Online) mailbox through
// Microsoft Graph: mail as a vandelay.MailSource ([Source]), contacts and
// calendars as vandelay.DAVSource ([DAV]: vCard 3.0 and iCalendar made
// from Graph's JSON, convert.go) and the inbox rules as one Sieve script
// ([Rules], rules.go).
//
// It is verified against recorded exchanges only (testdata/*.txtar,
// written by testdata/make-fixtures.py from Microsoft's documented
// examples and served by package recorded, which checks every
// request); no tenant is available to the tests.
//
// Implementation notes:
//
//   - Every request prefers IdType="ImmutableId": a message keeps its id
//     when moved, so the archive's copy of it is reused (Run.AddKnown with
//     Run.LocationHashes) instead of fetching $value again.
//   - A folder's cursor is its @odata.deltaLink, saved (Run.SetCursor)
//     only after the folder's changes were handed to the run, so a killed
//     import resumes from the last complete folder; within a folder the
//     archive's locations decide what is fetched, so a 410 resync or a
//     resumed folder records nothing twice.
//   - Message bodies are the bytes of /messages/{id}/$value, never
//     re-encoded; they are not fetched through $batch, whose JSON answer
//     would re-encode them.
//   - All requests of a mailbox share one httpx.Client: at most four in
//     flight (Microsoft's per-mailbox limit), Retry-After obeyed, one token
//     refresh after a 401. Tokens and secrets are never logged; URLs are
//     logged without their query (delta and skip tokens).
//   - Loops over pages and folders are bounded (maxPages, maxFolders) so
//     that a server that keeps sending nextLinks cannot run an import
//     forever.
package graph
