// Package pgroutes keeps the proxy's route table in PostgreSQL, shared by a
// fleet of proxies and the machines that run cut-overs.
//
// # Changes and sequence numbers
//
// Every write is one transaction that first bumps the counter in
// mailmig_route_meta (taking its row lock, so writers are serialised and
// commit in counter order), then changes the rows and logs one
// mailmig_route_changes row per changed key with that number, and
// notifies the channel "mailmig_routes" with it. PostgreSQL delivers the
// notification only after the commit.
//
// # Followers
//
// A proxy loads the whole table once (Store.Snapshot) and then follows it
// (Follower): it LISTENs, and on every notification, and at every
// heartbeat in case one was missed, reads the change rows above the last
// number it applied, with the current values of the keys they name, in one
// repeatable-read transaction, and applies them to its in-memory table as
// an overlay (routes.Table.Apply), so a change costs the changed keys, not
// the table. After a reconnect it catches up the same way; when the log
// was pruned past its number it reloads everything.
//
// Each follower registers itself in mailmig_proxies (id, address, lease)
// and records there, with a heartbeat, the highest change number it has
// applied. That is its acknowledgement.
//
// # Barrier
//
// Barrier.AwaitRoute waits until every registered proxy has applied the
// account's latest change (route edits of the CLI and the admin API). The
// cut-over, after the freeze and after the flip, uses Barrier.AwaitQuiet
// instead: every proxy has acknowledged the frozen route's generation in
// mailmig_freeze_acks, which a proxy does (proxy.FreezeAcker over
// FreezeAcks) only once the account has no session and no delivery in
// flight on it (acks.go). For both, a proxy out of contact (heartbeat older
// than its lease) is left out only if it had applied the account's pending
// mark (MarkPending, pending.go); otherwise it may still route the account
// to its source and is waited for until it is back or an operator forgets
// it (Store.ForgetProxy). A proxy that stops cleanly deregisters.
//
// A proxy that cannot reach the database for longer than its lease
// assumes it may have been excluded from a barrier: it keeps serving from
// its last table, but treats as frozen every account that was frozen,
// changed within the lease before contact was lost ("in transition") or
// pending, so logins and deliveries for them get temporary errors until
// it has caught up again. See docs/fleet.md.
package pgroutes
