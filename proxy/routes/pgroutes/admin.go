package pgroutes

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// FleetView is the JSON document of Follower.Handler: this proxy and every
// proxy of the fleet as the database lists them.
type FleetView struct {
	// Self is this proxy's id; Applied the last change it acknowledged;
	// Degraded is set while it has lost the database for longer than its
	// lease.
	Self     string `json:"self"`
	Applied  int64  `json:"applied"`
	Degraded bool   `json:"degraded"`
	// Pending is how many accounts this proxy knows as pending (it
	// refuses them while degraded).
	Pending int `json:"pending"`
	// Change is the route table's last change number.
	Change  int64   `json:"change"`
	Proxies []Proxy `json:"proxies"`
}

// Handler serves GET /fleet on the proxy's admin listener: the FleetView.
// When the database is out of reach it still answers 503 with what the
// proxy knows of itself.
func (f *Follower) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fleet", func(w http.ResponseWriter, r *http.Request) {
		v := FleetView{Self: f.id, Applied: f.Applied(), Degraded: f.Degraded(), Pending: f.Pending(), Proxies: []Proxy{}}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		ps, seq, err := f.st.Proxies(ctx)
		code := http.StatusOK
		if err != nil {
			code = http.StatusServiceUnavailable
		} else {
			v.Proxies, v.Change = ps, seq
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	})
	return mux
}
