package icalsafe

import (
	"bytes"
	"testing"

	"github.com/emersion/go-ical"
)

// malformed makes go-ical panic: a parameter cut off at the line's end.
const malformed = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n0;0=\r\nEND:VCALENDAR\r\n"

// TestDecodeMalformed: the input panics in go-ical itself (the reason
// this package exists) and is an error here.
func TestDecodeMalformed(t *testing.T) {
	func() {
		defer func() {
			if recover() == nil {
				t.Log("go-ical no longer panics on this input; icalsafe may be unneeded")
			}
		}()
		ical.NewDecoder(bytes.NewReader([]byte(malformed))).Decode()
	}()
	if _, err := Decode([]byte(malformed)); err == nil {
		t.Fatal("malformed input decoded without an error")
	}
}

func TestDecodeGood(t *testing.T) {
	cal, err := Decode([]byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20261201T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil || len(cal.Children) != 1 || cal.Children[0].Props.Get(ical.PropUID).Value != "u1" {
		t.Fatalf("cal %v, err %v", cal, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(malformed))
	f.Add([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		Decode(b) // must not panic
	})
}
