package vandelay_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
)

// cardStore is a small in-memory RFC 9610 account (AddressBook/get, /set;
// ContactCard/get, /set, /changes, /query) that keeps what it is given.
// It stands in where a recording cannot: a test that sends real served
// vCards, whose JSContact the fixtures cannot know in advance, and then
// reads them back (verify, import). The recordings check the requests;
// this store checks that what is stored reads back and converges. It
// stores cards as JSON, as a server does, so that numbers and key order
// go through encoding as they would on the wire.
type cardStore struct {
	mu    sync.Mutex
	books map[string]map[string]any
	cards map[string]map[string]any
	state int
	// log holds (state, id, destroyed) for /changes.
	log     []cardChange
	next    int
	methods []string
	// cut makes the next request with a ContactCard/set fail with HTTP
	// 500 after the set was applied: the answer is lost, as when the
	// export is killed or the connection drops at that moment.
	cut bool
}

type cardChange struct {
	state     int
	id        string
	destroyed bool
}

func newCardStore(t testing.TB) (*cardStore, string) {
	st := &cardStore{books: map[string]map[string]any{}, cards: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/jmap/session", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"capabilities":{"urn:ietf:params:jmap:core":{"maxSizeUpload":50000000,"maxConcurrentUpload":4,"maxSizeRequest":50000000,"maxConcurrentRequests":4,"maxCallsInRequest":16,"maxObjectsInGet":3,"maxObjectsInSet":3,"collationAlgorithms":[]},"urn:ietf:params:jmap:contacts":{}},
			"accounts":{"A1":{"name":"alice","isPersonal":true,"isReadOnly":false,"accountCapabilities":{"urn:ietf:params:jmap:contacts":{}}}},"primaryAccounts":{"urn:ietf:params:jmap:contacts":"A1"},
			"username":"alice","apiUrl":"/jmap/api/","downloadUrl":"/d","uploadUrl":"/u","eventSourceUrl":"/e","state":"1"}`)
	})
	mux.HandleFunc("/jmap/api/", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MethodCalls [][]json.RawMessage `json:"methodCalls"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		var out [][]any
		results := map[string]map[string]any{}
		for _, c := range req.MethodCalls {
			var name, id string
			var args map[string]any
			json.Unmarshal(c[0], &name)
			json.Unmarshal(c[1], &args)
			json.Unmarshal(c[2], &id)
			if ref, ok := args["#ids"].(map[string]any); ok {
				var ids []any
				for _, id := range results[ref["resultOf"].(string)]["ids"].([]string) {
					ids = append(ids, id)
				}
				args["ids"] = ids
				delete(args, "#ids")
			}
			st.methods = append(st.methods, name)
			res, errType := st.call(name, args)
			if errType != "" {
				out = append(out, []any{"error", map[string]any{"type": errType}, id})
				continue
			}
			results[id] = res
			out = append(out, []any{name, res, id})
		}
		for _, m := range st.methods {
			if m == "ContactCard/set" && st.cut {
				st.cut = false
				http.Error(w, "connection lost", http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"methodResponses": out, "sessionState": "1"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return st, srv.URL + "/jmap/session"
}

func (st *cardStore) bump(id string, destroyed bool) {
	st.state++
	st.log = append(st.log, cardChange{st.state, id, destroyed})
}

func (st *cardStore) call(name string, args map[string]any) (map[string]any, string) {
	s := strconv.Itoa(st.state)
	switch name {
	case "AddressBook/get":
		var list []any
		for _, b := range st.books {
			list = append(list, b)
		}
		return map[string]any{"accountId": "A1", "state": "b", "list": list, "notFound": []any{}}, ""
	case "AddressBook/set":
		created := map[string]any{}
		if c, ok := args["create"].(map[string]any); ok {
			for cid, o := range c {
				st.next++
				id := "ab" + strconv.Itoa(st.next)
				b := o.(map[string]any)
				b["id"] = id
				st.books[id] = b
				created[cid] = map[string]any{"id": id}
			}
		}
		if d, ok := args["destroy"].([]any); ok {
			for _, id := range d {
				delete(st.books, id.(string))
			}
		}
		return map[string]any{"accountId": "A1", "created": created}, ""
	case "ContactCard/get":
		var list []any
		var notFound []any
		ids, _ := args["ids"].([]any)
		if args["ids"] == nil {
			for id := range st.cards {
				ids = append(ids, id)
			}
		}
		props, _ := args["properties"].([]any)
		for _, x := range ids {
			c, ok := st.cards[x.(string)]
			if !ok {
				notFound = append(notFound, x)
				continue
			}
			if props != nil {
				sub := map[string]any{}
				for _, p := range props {
					if v, ok := c[p.(string)]; ok {
						sub[p.(string)] = v
					}
				}
				c = sub
			}
			list = append(list, c)
		}
		return map[string]any{"accountId": "A1", "state": s, "list": list, "notFound": notFound}, ""
	case "ContactCard/changes":
		since, err := strconv.Atoi(args["sinceState"].(string))
		if err != nil || since > st.state {
			return nil, "cannotCalculateChanges"
		}
		var updated, destroyed []any
		seen := map[string]bool{}
		for i := len(st.log) - 1; i >= 0; i-- {
			l := st.log[i]
			if l.state <= since || seen[l.id] {
				continue
			}
			seen[l.id] = true
			if l.destroyed {
				destroyed = append(destroyed, l.id)
			} else {
				updated = append(updated, l.id)
			}
		}
		return map[string]any{"accountId": "A1", "oldState": args["sinceState"], "newState": s, "hasMoreChanges": false,
			"created": []any{}, "updated": updated, "destroyed": destroyed}, ""
	case "ContactCard/query":
		var ids []string
		f, _ := args["filter"].(map[string]any)
		for id, c := range st.cards {
			if f != nil && (c["uid"] != f["uid"] || c["addressBookIds"].(map[string]any)[f["inAddressBook"].(string)] != true) {
				continue
			}
			ids = append(ids, id)
		}
		sort.Strings(ids)
		total := len(ids)
		pos, _ := args["position"].(float64)
		ids = ids[min(int(pos), len(ids)):]
		if l, ok := args["limit"].(float64); ok && int(l) < len(ids) {
			ids = ids[:int(l)]
		}
		return map[string]any{"accountId": "A1", "queryState": s, "position": int(pos), "ids": ids, "total": total}, ""
	case "ContactCard/set":
		old := s
		created, updated := map[string]any{}, map[string]any{}
		var destroyed []any
		if c, ok := args["create"].(map[string]any); ok {
			for cid, o := range c {
				st.next++
				id := "c" + strconv.Itoa(st.next)
				card := o.(map[string]any)
				card["id"] = id
				st.cards[id] = card
				st.bump(id, false)
				created[cid] = map[string]any{"id": id}
			}
		}
		if u, ok := args["update"].(map[string]any); ok {
			for id, p := range u {
				for k, v := range p.(map[string]any) {
					if v == nil {
						delete(st.cards[id], k)
					} else {
						st.cards[id][k] = v
					}
				}
				st.bump(id, false)
				updated[id] = nil
			}
		}
		if d, ok := args["destroy"].([]any); ok {
			for _, id := range d {
				delete(st.cards, id.(string))
				st.bump(id.(string), true)
				destroyed = append(destroyed, id)
			}
		}
		return map[string]any{"accountId": "A1", "oldState": old, "newState": strconv.Itoa(st.state),
			"created": created, "updated": updated, "destroyed": destroyed}, ""
	}
	return nil, "unknownMethod"
}

func (st *cardStore) take() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.methods
	st.methods = nil
	return m
}
