package sievevacation

import (
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for name, tc := range map[string]struct {
		src  string
		want *Script
	}{
		"dovecot simple": {
			"require [\"vacation\", \"fileinto\"];\r\nif header :contains \"subject\" \"x\" { fileinto \"Ärger\"; }\r\nvacation :days 7 :subject \"Im Urlaub – zurück am 5.\" :from \"alice@example.test\" :addresses [\"a@example.test\", \"alias@example.test\"] \"Ich bin bis zum 5. Januar nicht da.\";\r\n",
			&Script{Vacation: &Vacation{Days: 7, Subject: "Im Urlaub – zurück am 5.", From: "alice@example.test", Addresses: []string{"a@example.test", "alias@example.test"}, Reason: "Ich bin bis zum 5. Januar nicht da."}},
		},
		"roundcube with dates and text:": {
			"require [\"vacation\",\"date\",\"relational\"];\n# rule:[Urlaub]\nif allof (currentdate :zone \"+0100\" :value \"ge\" \"date\" \"2026-12-20\", currentdate :value \"le\" \"date\" \"2027-01-05\")\n{\n\tvacation :seconds 3600 :subject \"Weg\" :handle \"h1\" text:\nZeile 1\n..Punkt\n\n.\n;\n}\n",
			&Script{Vacation: &Vacation{Seconds: 3600, Subject: "Weg", Handle: "h1", Reason: "Zeile 1\n.Punkt\n\n",
				Start: time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 5, 23, 59, 59, 0, time.UTC)}},
		},
		"mime and iso8601": {
			"if currentdate :value \"ge\" \"iso8601\" \"2026-12-20T08:00:00+01:00\" { vacation :mime \"Content-Type: text/html\r\n\r\n<p>weg</p>\"; }",
			&Script{Vacation: &Vacation{MIME: true, Reason: "Content-Type: text/html\r\n\r\n<p>weg</p>", Start: time.Date(2026, 12, 20, 7, 0, 0, 0, time.UTC)}},
		},
		"include, no vacation": {
			"require \"include\";\ninclude :personal \"urlaub\";\ninclude :global \"spam\";\n/* vacation in a comment */ keep;",
			&Script{Includes: []string{"urlaub", "spam"}},
		},
		"vacation as a string is not a command": {"if header :is \"x\" \"vacation\" { keep; }", &Script{}},
		"dates of an earlier if do not count": {
			"if currentdate :value \"ge\" \"date\" \"2026-01-01\" { keep; }\nvacation \"weg\";",
			&Script{Vacation: &Vacation{Reason: "weg"}},
		},
	} {
		got, err := Parse([]byte(tc.src))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v %+v\nwant %+v %+v", name, got, got.Vacation, tc.want, tc.want.Vacation)
		}
	}
	for _, bad := range []string{"vacation \"x\"", "\"unterminated", "vacation text:\nno end", "/* open", "vacation :days \"x\" \"r\";"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}

// FuzzParse: any script parses or fails, never panics or loops.
func FuzzParse(f *testing.F) {
	f.Add([]byte("require \"vacation\";\nvacation :days 3 :subject \"s\" :addresses [\"a\"] text:\nx\n.\n;"))
	f.Add([]byte("if allof(currentdate :value \"ge\" \"date\" \"2026-12-20\") { vacation \"r\"; }"))
	f.Add([]byte("include :personal \"x\"; /* c */ # c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
	})
}
