// Package pgdb connects to the PostgreSQL database of a fleet (shared
// route table, later the journal and lock) and keeps its schema: numbered
// migrations embedded from migrations/NNNN_name.sql, applied in order in
// one transaction each, the version recorded in mailmig_schema.
//
// # Invariants
//
//   - A database whose schema is newer than this binary knows is never
//     touched: Open fails with ErrNewerSchema, so an older mailmig cannot
//     misread a newer layout.
//   - Readers never create the schema (ErrNoSchema); writers do, under an
//     advisory lock, so that several proxies starting at once migrate once.
//   - Errors name what to do (check the host, the password, upgrade) and
//     never include the password.
package pgdb
