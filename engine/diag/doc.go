// Package diag holds the engine's diagnostics: a small, tfdiags-like list of
// errors and warnings that carry a short summary, a detail written for the
// user, and, when they come from the plan file, the source range.
//
// Functions in the engine return (best-effort value, Diagnostics). A nil
// Diagnostics means no problems. Only cmd/mailmig/internal/views prints them.
package diag
