package jmap

import (
	"encoding/json"
	"testing"
)

func TestObjectKeepsOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  func(o *Object[any])
		want string
	}{
		{"empty", func(*Object[any]) {}, `{}`},
		{"insertion order, not sorted", func(o *Object[any]) {
			o.Add("m10", 1)
			o.Add("m9", map[string]bool{"b": true, "a": true})
			o.Add("a", nil)
		}, `{"m10":1,"m9":{"a":true,"b":true},"a":null}`},
		{"keys escaped", func(o *Object[any]) { o.Add("é\"<", "x") }, `{"é\"\u003c":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Object[any]
			tc.add(&o)
			// inside another value, as in a call's arguments
			b, err := json.Marshal(map[string]any{"emails": o})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != `{"emails":`+tc.want+`}` {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			var back map[string]any
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("not valid JSON: %v", err)
			}
		})
	}
}
