// Package icalsafe decodes iCalendar without crashing on bad input.
//
// github.com/emersion/go-ical panics on some malformed content lines (a
// parameter cut off at the end of its line, "X;A=", reads past the
// line). Sources hand it whatever a server or an export file holds, and
// one bad object must be reported and kept as bytes, never take the
// import down: Decode turns that panic into an error.
package icalsafe

import (
	"bytes"
	"fmt"

	"github.com/emersion/go-ical"
)

// Decode parses one iCalendar object; a malformed line that makes the
// decoder panic is an error naming it as such.
func Decode(body []byte) (cal *ical.Calendar, err error) {
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, fmt.Errorf("malformed content line (%v)", r)
		}
	}()
	return ical.NewDecoder(bytes.NewReader(body)).Decode()
}
