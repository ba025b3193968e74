package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadDelivered(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []delivery
		err      string
	}{
		{name: "empty", in: ""},
		{name: "lines", in: "apply1 Alice@Example.test <demo-1@example.test>\n\nafter bob@example.test demo-2@example.test\n",
			want: []delivery{{"apply1", "alice@example.test", "demo-1@example.test"}, {"after", "bob@example.test", "demo-2@example.test"}}},
		{name: "too few fields", in: "apply1 alice@example.test\n", err: "malformed line"},
		{name: "too many fields", in: "a b c d\n", err: "malformed line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "delivered.log")
			if err := os.WriteFile(p, []byte(tc.in), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readDelivered(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if got, err := readDelivered(""); got != nil || err != nil {
		t.Errorf("no file: %v %v", got, err)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"-nope"}} {
		var out, errb bytes.Buffer
		dir := t.TempDir() // no plan: usage errors come first
		code := run(append([]string{"-f", dir}, args...), &out, &errb)
		if len(args) == 1 && args[0] == "frobnicate" {
			// The plan is loaded before the command is dispatched.
			if code != 1 {
				t.Errorf("%v: exit %d, want 1\n%s", args, code, errb.String())
			}
			continue
		}
		if code != 2 || !strings.Contains(errb.String(), "usage: democheck") {
			t.Errorf("%v: exit %d, want 2 with usage\n%s", args, code, errb.String())
		}
	}
}

// FuzzReadDelivered: any file content is either read or refused, never a
// panic, and every delivery read has three non-empty fields.
func FuzzReadDelivered(f *testing.F) {
	f.Add("apply1 alice@example.test <demo-1@example.test>\n")
	f.Add("a b\n")
	f.Add("\n\n  x  y  z  \n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in string) {
		p := filepath.Join(dir, "d.log")
		if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		ds, err := readDelivered(p)
		if err != nil {
			return
		}
		for _, d := range ds {
			if d.phase == "" || d.account == "" {
				t.Fatalf("empty field in %+v", d)
			}
		}
	})
}
