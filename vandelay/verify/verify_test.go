package verify

import "testing"

func TestKwSet(t *testing.T) {
	ignore := map[string]bool{"$hasattachment": true}
	for name, tc := range map[string]struct {
		a, b []string
		same bool
	}{
		"case":       {[]string{"$seen", "Projekt-X"}, []string{"projekt-x", "$seen"}, true},
		"ignored":    {[]string{"$seen"}, []string{"$seen", "$HasAttachment"}, true},
		"different":  {[]string{"$seen"}, []string{"$flagged"}, false},
		"empty":      {nil, []string{}, true},
		"extra kept": {[]string{"$seen"}, []string{"$seen", "$junk"}, false},
	} {
		if got := kwSet(tc.a, ignore) == kwSet(tc.b, ignore); got != tc.same {
			t.Errorf("%s: kwSet(%v) == kwSet(%v) is %v", name, tc.a, tc.b, got)
		}
	}
}

func TestMismatchString(t *testing.T) {
	m := Mismatch{Kind: "count", Mailbox: "INBOX", Want: "3", Got: "2"}
	if got, want := m.String(), "count INBOX: archive 3, target 2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Mismatch{Kind: "extra", Item: "target email x"}).String(); got != "extra target email x" {
		t.Errorf("String() = %q", got)
	}
}

func TestSafePath(t *testing.T) {
	if got := safePath("Lists/a;b"); got != "Lists/a_b" {
		t.Errorf("safePath = %q", got)
	}
}
