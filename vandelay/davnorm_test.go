package vandelay

import "testing"

func TestNormalizeVCard(t *testing.T) {
	for in, want := range map[string]string{
		"EMAIL;TYPE=INTERNET,HOME:a@b\r\n":           "EMAIL;TYPE=INTERNET;TYPE=HOME:a@b\r\n",
		"EMAIL;TYPE=INTERNET;TYPE=HOME:a@b\r\n":      "EMAIL;TYPE=INTERNET;TYPE=HOME:a@b\r\n",
		"NOTE:a,b;TYPE=x,y\r\n":                      "NOTE:a,b;TYPE=x,y\r\n",
		"X-A;LABEL=\"p,q:r\";TYPE=a,b:v\r\n":         "X-A;LABEL=\"p,q:r\";TYPE=a;TYPE=b:v\r\n",
		"PHOTO;ENCODING=b:AAAA\r\n BBBB\r\n\tCC\r\n": "PHOTO;ENCODING=b:AAAABBBBCC\r\n",
		"FN:Zoë\r\n": "FN:Zoë\r\n",
	} {
		if got := NormalizeVCard([]byte(in)); got != want {
			t.Errorf("NormalizeVCard(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNormalizeVCard: the normalisation never panics, and splitting TYPE
// lists is idempotent (unfolding is not: "\n\n  " unfolds once to "\n ").
func FuzzNormalizeVCard(f *testing.F) {
	f.Add([]byte("BEGIN:VCARD\r\nVERSION:3.0\r\nEMAIL;TYPE=INTERNET,HOME:a@b\r\nEND:VCARD\r\n"))
	f.Add([]byte("X;\"a:b\";TYPE=,:\r\n \r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := NormalizeVCard(b)
		if string(splitTypeLists([]byte(n))) != n {
			t.Fatalf("not idempotent on %q", b)
		}
	})
}

func TestNormalizeICal(t *testing.T) {
	for in, want := range map[string]string{
		"RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\n":                "RRULE:BYDAY=MO;COUNT=10;FREQ=WEEKLY\r\n",
		"ATTACH;ENCODING=BASE64;FMTTYPE=a/b;VALUE=BINARY:QQ\r\n": "ATTACH;VALUE=BINARY;ENCODING=BASE64;FMTTYPE=a/b:QQ\r\n",
		"DTSTART;VALUE=DATE:20261224\r\n":                        "DTSTART;VALUE=DATE:20261224\r\n",
		"SUMMARY;X-A=\"p;VALUE=q:r\";VALUE=TEXT:a;b\r\n":         "SUMMARY;VALUE=TEXT;X-A=\"p;VALUE=q:r\":a;b\r\n",
		"DESCRIPTION:folded\r\n  line\r\n":                       "DESCRIPTION:folded line\r\n",
		"EMAIL;TYPE=INTERNET,HOME:a@b\r\n":                       "EMAIL;TYPE=INTERNET,HOME:a@b\r\n",
	} {
		if got := Normalize("calendar", []byte(in)); got != want {
			t.Errorf("Normalize(calendar, %q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNormalizeICal: the iCalendar rules never panic and, on unfolded
// input, are idempotent.
func FuzzNormalizeICal(f *testing.F) {
	f.Add([]byte("BEGIN:VEVENT\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nATTACH;ENCODING=BASE64;VALUE=BINARY:QQ\r\nEND:VEVENT\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := Normalize("calendar", b)
		if m := string(valueParamFirst(sortRRuleParts([]byte(n)))); m != n {
			t.Fatalf("not idempotent on %q: %q then %q", b, n, m)
		}
	})
}
