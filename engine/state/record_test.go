package state

import (
	"reflect"
	"testing"
)

// TestCountsAdd sets every field of two Counts to distinct values and
// checks each sum: a field added to Counts but forgotten in Add fails
// here (Conflicts among them).
func TestCountsAdd(t *testing.T) {
	var a, b Counts
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		va.Field(i).SetInt(int64(i + 1))
		vb.Field(i).SetInt(int64(100 * (i + 1)))
	}
	sum := reflect.ValueOf(a.Add(b))
	for i := range sum.NumField() {
		if got, want := sum.Field(i).Int(), int64(101*(i+1)); got != want {
			t.Errorf("Add: %s = %d, want %d", sum.Type().Field(i).Name, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		a, b Counts
		want Counts
	}{
		{"zero", Counts{}, Counts{}, Counts{}},
		{"conflicts", Counts{Conflicts: 2, Objects: 3}, Counts{Conflicts: 1}, Counts{Conflicts: 3, Objects: 3}},
		{"mismatches beside conflicts", Counts{Mismatches: 1}, Counts{Conflicts: 4}, Counts{Mismatches: 1, Conflicts: 4}},
	} {
		if got := tc.a.Add(tc.b); got != tc.want {
			t.Errorf("%s: %+v.Add(%+v) = %+v, want %+v", tc.name, tc.a, tc.b, got, tc.want)
		}
	}
}
