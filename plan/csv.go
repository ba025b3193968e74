package plan

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// maxCSVErrors bounds the diagnostics reported for one CSV file; a file in
// the wrong format would otherwise produce one per row.
const maxCSVErrors = 50

type csvRow struct {
	line int
	// fields are indexed like csvColumns.
	fields [4]string
}

// csvColumnAliases are column names that exports commonly use, with the
// column meant. Only these and near misses of the real columns are named
// in diagnostics; see csvColumnHint.
var csvColumnAliases = map[string]string{
	"email": "address", "mail": "address", "e-mail": "address", "user": "source_login",
	"username": "source_login", "login": "source_login", "password": "password_ref", "pass": "password_ref",
}

// csvColumnHint returns a " Did you mean ...?" for an unknown column that
// is a near miss of a column or a common alias, else "". The column is
// named only then: a file that is not an accounts file (a secret read by
// csv() by mistake) must not have its first row printed.
func csvColumnHint(h string) string {
	if len(h) > 32 {
		return ""
	}
	if c, ok := csvColumnAliases[h]; ok {
		if c == "password_ref" {
			return " Did you mean \"password_ref\"? It holds env:NAME or file:PATH, never the password itself."
		}
		return fmt.Sprintf(" Did you mean %q?", c)
	}
	return didYouMean(h, csvColumns)
}

func csvColumnIndex(name string) int {
	for i, c := range csvColumns {
		if c == name {
			return i
		}
	}
	return -1
}

// csvFunc is csv(path): it reads an accounts file whose first row names the
// columns (address is required; source_login, target_login and
// password_ref are optional) and returns a list of objects with those
// attributes plus file and row. Malformed rows are reported with their
// file:row and skipped, so one bad row does not hide the others.
func (l *loader) csvFunc() function.Function {
	return function.New(&function.Spec{
		Description: "Reads an accounts CSV file (columns address, source_login, target_login, password_ref).",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.List(csvRowType)),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return l.readCSV(l.resolvePath(args[0].AsString()))
		},
	})
}

// parseAccountsCSV reads an accounts CSV file and calls yield for each
// valid row, in order, without keeping the rows: a million accounts are
// streamed into the plan's typed accounts rather than held as cty values.
// Problems are reported at their file:row. The row passed to yield is
// reused: copy what you keep (the strings may be kept).
func parseAccountsCSV(path string, src []byte, l *loader, yield func(*csvRow)) (headerOK bool) {
	r := csv.NewReader(bytes.NewReader(src))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	var header []int // column index in csvColumns of each field
	var headerNames []string
	nerr := 0
	report := func(line int, summary, format string, args ...any) {
		nerr++
		if nerr > maxCSVErrors {
			return
		}
		if nerr == maxCSVErrors {
			format += " Further errors in this file are not shown."
		}
		l.errorf(l.csvRowRange(path, line), summary, format, args...)
	}
	var row csvRow
	for nerr < maxCSVErrors {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				if errors.Is(pe.Err, csv.ErrQuote) && pe.StartLine != pe.Line {
					// An opening quote without its closing quote: every
					// row up to the error was read as one field. Report
					// where the quote opened; none of those rows loads.
					report(pe.StartLine, "Unterminated quote in CSV row",
						"Row %d of %s opens a quoted field that is not closed on that row, so rows %d to %d were read as one field and none of them is loaded. "+
							"Close the quote on row %d, or remove it: an accounts file needs quotes only around fields that contain commas.",
						pe.StartLine, path, pe.StartLine, pe.Line, pe.StartLine)
					continue
				}
				report(pe.StartLine, "Malformed CSV row",
					"Row %d of %s cannot be read: %v (column %d). Quote fields that contain commas or quotes, and double quotes inside quoted fields.",
					pe.StartLine, path, pe.Err, pe.Column)
				continue
			}
			report(1, "Malformed CSV file", "The file %s cannot be read as CSV: %v.", path, err)
			break
		}
		line, _ := r.FieldPos(0)
		if endLine, _ := r.FieldPos(len(rec) - 1); endLine != line {
			// A quoted field spans lines and happens to close: the
			// rows in between would vanish into one field.
			report(line, "Unterminated quote in CSV row",
				"Row %d of %s opens a quoted field that is closed only on row %d, so those rows were read as one field and none of them is loaded. "+
					"Close the quote on row %d: a field of an accounts file cannot span lines.",
				line, path, endLine, line)
			continue
		}
		if header == nil {
			header = make([]int, len(rec))
			seen := map[string]bool{}
			ok := true
			for i, h := range rec {
				h = strings.ToLower(strings.TrimSpace(h))
				header[i] = csvColumnIndex(h)
				headerNames = append(headerNames, h)
				switch {
				case header[i] < 0:
					// Name the column only when it is a near miss of a
					// known one: a file that is not an accounts file
					// (a secret read by mistake) must not be printed.
					if hint := csvColumnHint(h); hint != "" {
						report(line, "Unknown CSV column",
							"The header of %s names the column %q.%s The columns are address (required), source_login, target_login and password_ref; the first row must name them.",
							path, h, hint)
					} else {
						report(line, "Unknown CSV column",
							"The header of %s names a column that is not one of address, source_login, target_login and password_ref (its name is not shown, in case the file is not an accounts file). "+
								"The first row must name the columns, for example: address,source_login,target_login,password_ref", path)
					}
					ok = false
				case seen[h]:
					report(line, "Duplicate CSV column", "The header of %s names the column %q twice.", path, h)
					ok = false
				}
				seen[h] = true
			}
			if !seen["address"] && ok {
				report(line, "Missing CSV column",
					"The header of %s has no address column. The first row must name the columns, for example: address,source_login,target_login,password_ref", path)
				ok = false
			}
			if !ok {
				return false
			}
			continue
		}
		if len(rec) != len(header) {
			report(line, "Malformed CSV row",
				"Row %d of %s has %d fields, but the header names %d columns (%s). Add or remove commas so that every row has one field per column; leave a field empty for its default.",
				line, path, len(rec), len(header), strings.Join(headerNames, ","))
			continue
		}
		row = csvRow{line: line}
		for i, c := range header {
			row.fields[c] = strings.TrimSpace(rec[i])
		}
		if row.fields[0] == "" {
			report(line, "Malformed CSV row", "Row %d of %s has an empty address. Every row needs an address.", line, path)
			continue
		}
		yield(&row)
	}
	if header == nil && nerr == 0 {
		l.errorf(hcl.Range{Filename: path, Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}},
			"Empty CSV file", "The accounts file %s is empty. Its first row must name the columns (%s), followed by one row per account.",
			path, strings.Join(csvColumns, ","))
	}
	return header != nil
}
