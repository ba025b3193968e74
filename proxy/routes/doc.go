// Package routes is the route table shared by the proxy and the engine: it
// says, for every account, which backend serves it now and whether the
// account is frozen for a cut-over.
//
// # Model
//
// A Route maps an account key (normally the account's primary address, in
// lower case) to a backend name, a State (active or frozen) and a
// Generation that grows by one on every change of backend or state. Login
// aliases map further identifiers (a bare login, other addresses) to an
// account key, so that one flip moves every login form at once. A default
// backend, when set, serves identifiers the table does not know. Known
// domains tell the SMTP side which recipients it may relay at all: a domain
// is known when it is listed explicitly or when any account or alias lives
// in it.
//
// # Store and locking
//
// Store keeps the table in one SQLite file (WAL mode); package pgroutes
// keeps it in PostgreSQL for a fleet of proxies (both are a DB). Every write runs in
// one IMMEDIATE transaction, so the engine, `mailmig routes` and any number
// of proxies may share the file; a writer waits up to the busy timeout for
// another. Every write also increments a change counter. Readers never
// scan the table to find out whether something changed: a Watcher polls the
// counter (one indexed SELECT, default every 250 ms), reloads the whole
// table into an immutable Table snapshot only when the counter moved, and
// tells subscribers which accounts changed. Proxies therefore follow a flip
// within a second without a restart, and lookups on the hot path touch only
// memory.
//
// # Proxies, freeze acknowledgements and POP3 UIDL maps
//
// Two more facts live in the same file without touching the change
// counter (see acks.go and uidl.go): each proxy registers itself with a
// heartbeat and acknowledges every freeze once the account is quiet at it
// (no session, no delivery in flight), and Store.AwaitFreeze waits for
// all live proxies' acknowledgements — what a cut-over does before its
// final sync; and a cut-over writes the account's POP3 UIDL map (target
// UIDL → source UIDL) before its flip, which the POP3 front reads at
// login.
//
// # Stalwart mapping files
//
// ReadMapping and WriteMapping read and write the tab-separated
// "identifier<TAB>destination" file of Stalwart's own proxy;
// Store.ImportMapping and Store.ExportMapping move such a file into and out
// of the table, so that installations coming from Stalwart keep their map.
//
// # Invariants
//
//   - Identifiers, account keys and domains are stored in lower case with
//     surrounding space removed; lookups normalise the same way.
//   - A Table is never modified after it was built; share it freely. A
//     table made by Apply overlays the changed entries on its
//     predecessor's maps, which it shares.
//   - Entries are packed (16 bytes: backend names numbered process-wide,
//     32-bit generation, update time to the second) so that a million
//     routes fit in about 110 MB.
//   - Subscriber callbacks run on the Watcher's goroutine, one after the
//     other; they must not block (hand work to a goroutine instead).
package routes
