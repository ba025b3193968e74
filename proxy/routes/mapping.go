package routes

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// MaxMappingLine is the longest line ReadMapping accepts.
const MaxMappingLine = 4096

// Mapping is one line of a Stalwart proxy mapping file.
type Mapping struct {
	// Identifier is the login or address, as written.
	Identifier string
	// Destination names the backend.
	Destination string
}

// ReadMapping parses a tab-separated "identifier<TAB>destination" file.
// Empty lines and lines starting with "#" are skipped; fields are trimmed.
// An error names the line.
func ReadMapping(r io.Reader) ([]Mapping, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), MaxMappingLine)
	var out []Mapping
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		id, dest, ok := strings.Cut(line, "\t")
		id, dest = strings.TrimSpace(id), strings.TrimSpace(dest)
		if !ok || id == "" || dest == "" || strings.Contains(dest, "\t") {
			return nil, fmt.Errorf("mapping line %d: %w: want identifier<TAB>destination", n, ErrInvalid)
		}
		// A stray CR or other control character inside a field is damage,
		// not a name: it could never be written back or matched by a login.
		if strings.ContainsFunc(id+dest, unicode.IsControl) {
			return nil, fmt.Errorf("mapping line %d: %w: control character in a field", n, ErrInvalid)
		}
		out = append(out, Mapping{Identifier: id, Destination: dest})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	return out, nil
}

// WriteMapping writes entries in the format ReadMapping reads.
func WriteMapping(w io.Writer, ms []Mapping) error {
	bw := bufio.NewWriter(w)
	for _, m := range ms {
		if strings.ContainsAny(m.Identifier, "\t\r\n") || strings.ContainsAny(m.Destination, "\t\r\n") {
			return fmt.Errorf("write mapping %q: %w: tab or newline in a field", m.Identifier, ErrInvalid)
		}
		fmt.Fprintf(bw, "%s\t%s\n", m.Identifier, m.Destination)
	}
	return bw.Flush()
}
