// Package engine turns the desired plan (a *plan.Migration) and the observed
// state (the journal's fold, the route table, the archives and, with
// refresh, the sources' change counters) into Changes, and applies them.
//
// # Shape
//
// Diff is pure: Diff(desired, observed, opts) returns the Changes and
// diagnostics and touches nothing. Apply runs Changes through small
// interfaces: an Executor (vandelay import, export, verify), a Router (the
// proxy's route table) and a Recorder (the journal). cmd/mailmig wires the
// real implementations; tests use fakes. The engine imports plan, state and
// diag, never cmd; vandelay and proxy never import the engine.
//
// # Observe
//
// Observe joins the journal's fold with the route table (RouteReader), the
// archives of accounts that are not done (ArchiveReader: counts, cursors,
// last import and export, how much is not exported yet; read without
// blocking a running import) and, with a ChangeDetector (-refresh), a
// cheap probe of each account's source (IMAP LIST-STATUS or STATUS, POP3
// STAT, Maildir counts against the archive's cursors; no SELECT, no FETCH;
// before the first import the account's size, Delta.Source), bounded overall and by each source backend's
// limits.connections. Accounts without an archive cost one lookup in a
// directory listing. Probe results (Delta) and never-exported archive
// messages make catch-ups, appear in the reasons and count toward the
// cut-over threshold.
//
// # Lifecycle
//
// An account moves pending → staged → catching-up → frozen → final-sync →
// verified → cut-over → done, one journal transition record per step.
// The actions, with the marker the human listing shows, are:
//
//	import   (+)  first full import of the source into the archive
//	export   (+)  first export of the archive onto the target (after import)
//	catch-up (~)  an incremental import+export pass
//	cutover  (>)  freeze → final catch-up → verify → flip → unfreeze, as one
//	              action; any failure after the freeze routes the account
//	              back to its source, unfrozen, journaled as rolled-back
//	rollback (-)  route a cut-over (or interrupted) account back to its
//	              source, unfrozen
//	adopt    (=)  record an account whose route already points at its
//	              target as done, without copying
//
// Accounts that the journal knows but the plan no longer lists are reported
// and never touched.
//
// # Waves
//
// Staging and catch-up run at any time. A wave's cut-overs happen only
// inside its cutover_window (in its time zone, possibly across midnight),
// after not_before, once every wave in after is done, and only for accounts
// whose last pass copied no more than catchup_threshold messages (and
// bytes). The first canary accounts of a wave cut over first; the others
// depend on them. Failed cut-overs (or verify mismatches) above max_errors
// (max_verify_mismatches) halt the wave, in the run and in later plans,
// until "mailmig state release".
//
// # Apply
//
// Apply walks the dependency graph with bounded parallelism: a global
// limit, the wave's max_parallel and each backend's connection limit (each
// change uses one connection per backend it touches). Rate limiters
// (messages/s, bytes/s) are shared per backend and handed to the executor
// in each Job. A cut-over waits on one Barrier (Env.Barrier) after the
// freeze, before its final catch-up, and after the flip, before it
// unfreezes: each time until every live proxy has acted on the change
// (with the SQLite route table: ended the account's sessions and has no
// SMTP/LMTP delivery of it in flight; with a PostgreSQL fleet: applied the
// change's sequence number), at most Env.BarrierTimeout, and rolls back
// otherwise; without a Barrier it sleeps Env.SettleDelay after the freeze
// instead. An Executor that is a
// VerifyWarmer hashes the target before the freeze, so that the verify
// inside it costs what changed; a FlipPreparer writes what the proxy needs
// after the flip (the POP3 UIDL map) before it. Every action writes a start record before and a finish record
// after it runs, so after a kill -9 the journal shows the action in flight
// and the next Diff resumes or rolls it back. Cancelling stopCtx (first
// Ctrl-C) lets running actions finish (a cut-over that has frozen the
// account rolls back), starts nothing new; cancelling the context passed to
// the executor (second Ctrl-C) aborts.
package engine
