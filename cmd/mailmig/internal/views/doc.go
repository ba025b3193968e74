// Package views renders mailmig's user output: human text (with optional
// colour) and the machine (-json) forms. It is the only place that prints
// diagnostics; commands build a [View] from their streams and hand it
// values. Every JSON form is the same Go struct the human renderer formats,
// so the two never disagree.
//
// Diagnostics follow Terraform's layout: severity and summary, the
// position as "on FILE line N:", the source line with the range
// underlined by carets, then the detail wrapped to the terminal width.
// Errors go to standard error and warnings to standard output.
package views
