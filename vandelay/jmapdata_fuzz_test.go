package vandelay_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// FuzzFileNodePaths feeds FileNode/get lists as a server might send them
// (cycles, missing parents, names with "/", "." or "..") to the path
// builder: it must end, and every path it returns must be made of
// non-empty names other than "." and "..", the last being the node's own.
func FuzzFileNodePaths(f *testing.F) {
	f.Add(`[{"id":"F1","parentId":null,"name":"Docs","blobId":null},{"id":"F2","parentId":"F1","name":"a.txt","blobId":"B1"}]`)
	f.Add(`[{"id":"A","parentId":"B","name":"x"},{"id":"B","parentId":"A","name":"y"}]`)
	f.Add(`[{"id":"A","parentId":"A","name":"x"},{"id":"C","parentId":null,"name":"a/b"},{"id":"D","parentId":null,"name":".."}]`)
	f.Fuzz(func(t *testing.T, list string) {
		var nodes []jmap.FileNode
		if json.Unmarshal([]byte(list), &nodes) != nil {
			return
		}
		for p, n := range vandelay.FileNodePaths(nodes) {
			parts := strings.Split(p, "/")
			for _, s := range parts {
				if s == "" || s == "." || s == ".." {
					t.Fatalf("path %q has a bad name", p)
				}
			}
			if parts[len(parts)-1] != n.Name {
				t.Fatalf("path %q does not end in the node's name %q", p, n.Name)
			}
		}
	})
}
