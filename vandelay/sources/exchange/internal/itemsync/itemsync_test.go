package itemsync

import "testing"

// TestSeparator: "/" unless a folder name contains it, then the first
// candidate no name contains; "/" (and "_" in names) when all occur.
func TestSeparator(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"Inbox", "Projects"}, "/"},
		{[]string{"Inbox", "Q1/Q2"}, "."},
		{[]string{"a/b", "v1.2"}, `\`},
		{[]string{"a/b", "v1.2", `x\y`}, "|"},
		{[]string{"a/b", "v1.2", `x\y`, "p|q"}, "/"},
	} {
		if got := Separator(tc.names); got != tc.want {
			t.Errorf("Separator(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
	if got := Name("a/b", "/"); got != "a_b" {
		t.Errorf("Name = %q", got)
	}
	if got := Name("a/b", "."); got != "a/b" {
		t.Errorf("Name = %q", got)
	}
}
