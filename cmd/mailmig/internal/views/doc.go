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
//
// The "mailmig vandelay" commands print their results here too
// (ImportResult, ExportResult, VerifyReport, the inspect tables), and
// import, export and apply share one progress display, [Progress]: a
// progressbar/v3 bar when the stream is a terminal (x/term IsTerminal;
// the bar does not detect one itself), plain lines otherwise, adapted per
// command by [ImportProgress], [ExportProgress] and [ApplyProgress].
package views
