package plan

import (
	"bytes"
	"encoding/csv"
	"errors"
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

func parseAccountsCSV(path string, src []byte, l *loader) []csvRow {
	r := csv.NewReader(bytes.NewReader(src))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	var header []string
	var rows []csvRow
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
	for nerr < maxCSVErrors {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				report(pe.Line, "Malformed CSV row",
					"Row %d of %s cannot be read: %v (column %d). Quote fields that contain commas or quotes, and double quotes inside quoted fields.",
					pe.Line, path, pe.Err, pe.Column)
				continue
			}
			report(1, "Malformed CSV file", "The file %s cannot be read as CSV: %v.", path, err)
			break
		}
		line, _ := r.FieldPos(0)
		if header == nil {
			header = make([]string, len(rec))
			seen := map[string]bool{}
			ok := true
			for i, h := range rec {
				h = strings.ToLower(strings.TrimSpace(h))
				header[i] = h
				known := false
				for _, c := range csvColumns {
					known = known || c == h
				}
				switch {
				case !known:
					report(line, "Unknown CSV column",
						"The header of %s names the column %q.%s The columns are address (required), source_login, target_login and password_ref; the first row must name them.",
						path, h, didYouMean(h, csvColumns))
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
				return nil
			}
			continue
		}
		if len(rec) != len(header) {
			report(line, "Malformed CSV row",
				"Row %d of %s has %d fields, but the header names %d columns (%s). Add or remove commas so that every row has one field per column; leave a field empty for its default.",
				line, path, len(rec), len(header), strings.Join(header, ","))
			continue
		}
		row := csvRow{line: line}
		for i, h := range header {
			row.fields[csvColumnIndex(h)] = strings.TrimSpace(rec[i])
		}
		if row.fields[0] == "" {
			report(line, "Malformed CSV row", "Row %d of %s has an empty address. Every row needs an address.", line, path)
			continue
		}
		rows = append(rows, row)
	}
	if header == nil && nerr == 0 {
		l.errorf(hcl.Range{Filename: path, Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}},
			"Empty CSV file", "The accounts file %s is empty. Its first row must name the columns (%s), followed by one row per account.",
			path, strings.Join(csvColumns, ","))
	}
	return rows
}
