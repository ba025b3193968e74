package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes"
)

// adminAPI serves the route-mapping verbs on the proxy's admin listener,
// for operators who script against a Stalwart proxy's admin API:
//
//	GET    /api/mapping/{account}   look a mapping up
//	PUT    /api/mapping/{account}   set it: {"backend": "NAME"}
//	DELETE /api/mapping/{account}   delete it
//	GET    /api/stats               counts of the route table
//
// (aliases, domains, freeze/unfreeze and Stalwart's own /mappings paths
// are in proxy_admin_verbs.go.)
//
// Every request must carry "Authorization: Bearer TOKEN" with the plan's
// proxy admin_token_ref; anything else is refused with 401. A set or
// delete is made like "mailmig routes set|delete": under the state lock
// (409 while an apply holds it), journaled as a route-edit record in the
// same hash chain, and — with the route table in PostgreSQL — answered
// once every live proxy has applied it (the cut-over's barrier; 504 with
// the change made when that times out). With the SQLite table the proxies
// poll the change within their poll interval and acknowledge nothing for
// an active route, so "acknowledged" is null there.
type adminAPI struct {
	m     *plan.Migration
	token []byte
	log   *slog.Logger
}

func newAdminAPI(m *plan.Migration, log *slog.Logger) (http.Handler, error) {
	p := m.Proxy
	if p == nil || p.AdminTokenRef == "" {
		return nil, nil
	}
	if p.AdminToken.Deferred() || p.AdminToken.Reveal() == "" {
		return nil, fmt.Errorf("the proxy's admin_token_ref %s is not set (or empty): set it, or remove admin_token_ref to turn the admin API off", p.AdminTokenRef)
	}
	a := &adminAPI{m: m, token: []byte(p.AdminToken.Reveal()), log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/mapping/{account}", a.auth(a.lookup))
	mux.HandleFunc("PUT /api/mapping/{account}", a.auth(a.set))
	mux.HandleFunc("DELETE /api/mapping/{account}", a.auth(a.delete))
	mux.HandleFunc("GET /api/stats", a.auth(a.stats))
	a.registerVerbs(mux) // aliases, domains, freeze; Stalwart's paths
	// Anything else under /api/ is refused the same way first, so that
	// the API's shape is not probed without the token.
	mux.HandleFunc("/api/", a.auth(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such admin API call")
	}))
	return mux, nil
}

// auth refuses a request without the bearer token with 401, in JSON or
// through deny (Stalwart's paths answer in plain text).
func (a *adminAPI) auth(next http.HandlerFunc, deny ...func(http.ResponseWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), a.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailmig admin"`)
			if len(deny) > 0 {
				deny[0](w)
				return
			}
			apiError(w, http.StatusUnauthorized, "a bearer token (the plan's proxy admin_token_ref) is required")
			return
		}
		next(w, r)
	}
}

func apiError(w http.ResponseWriter, code int, msg string) {
	apiJSON(w, code, map[string]string{"error": msg})
}

func apiJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// mappingView is a mapping as the API returns it.
type mappingView struct {
	Account    string `json:"account"`
	Backend    string `json:"backend"`
	State      string `json:"state"`
	Generation int64  `json:"generation"`
	// Acknowledged is set by edits: whether every live proxy applied the
	// change; null when the route table cannot tell (SQLite).
	Acknowledged *bool  `json:"acknowledged,omitempty"`
	AckError     string `json:"ack_error,omitempty"`
}

func (a *adminAPI) lookup(w http.ResponseWriter, r *http.Request) {
	db, err := openRouteDB(r.Context(), a.m, false)
	if err != nil || db == nil {
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
		a.log.Warn("admin API lookup", "err", err)
		return
	}
	defer db.Close()
	rt, err := db.Get(r.Context(), r.PathValue("account"))
	if errors.Is(err, routes.ErrNotFound) {
		apiError(w, http.StatusNotFound, "no mapping for this account")
		return
	}
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
		a.log.Warn("admin API lookup", "err", err)
		return
	}
	apiJSON(w, http.StatusOK, mappingView{Account: rt.Account, Backend: rt.Backend, State: string(rt.State), Generation: rt.Generation})
}

func (a *adminAPI) set(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Backend string `json:"backend"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || body.Backend == "" {
		apiError(w, http.StatusBadRequest, `the body must be {"backend": "NAME"}`)
		return
	}
	if a.m.Backend(body.Backend) == nil {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("the plan has no backend %q", body.Backend))
		return
	}
	acct := routes.Normalize(r.PathValue("account"))
	a.edit(w, r, "set", acct, body.Backend, func(ctx context.Context, db routes.DB) (routes.Route, error) {
		return db.Set(ctx, acct, body.Backend)
	})
}

func (a *adminAPI) delete(w http.ResponseWriter, r *http.Request) {
	acct := routes.Normalize(r.PathValue("account"))
	a.edit(w, r, "delete", acct, "", func(ctx context.Context, db routes.DB) (routes.Route, error) {
		return routes.Route{Account: acct}, db.Delete(ctx, acct)
	})
}

// edit makes one change of a mapping under the state lock, journals it
// and waits for the fleet's acknowledgement where there is one (see
// adminAPI.change).
func (a *adminAPI) edit(w http.ResponseWriter, r *http.Request, action, acct, backend string, fn func(context.Context, routes.DB) (routes.Route, error)) {
	if acct == "" {
		apiError(w, http.StatusBadRequest, "no account")
		return
	}
	var rt routes.Route
	res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
		rec: state.Record{Action: action, Account: acct, Backend: backend}, route: acct, notFound: "no mapping for this account",
		apply: func(ctx context.Context, db routes.DB, rec *state.Record) (err error) {
			rt, err = fn(ctx, db)
			if err == nil && rec.Backend == "" && (action == "freeze" || action == "unfreeze") {
				rec.Backend = rt.Backend // as "mailmig routes freeze" journals it
			}
			return err
		},
	})
	if !res.made {
		apiError(w, res.code, res.msg)
		return
	}
	apiJSON(w, res.code, mappingView{Account: rt.Account, Backend: rt.Backend, State: string(rt.State), Generation: rt.Generation,
		Acknowledged: res.acked, AckError: res.ackErr})
}

// statsView is GET /api/stats.
type statsView struct {
	Routes    int            `json:"routes"`
	Frozen    int            `json:"frozen"`
	ByBackend map[string]int `json:"by_backend"`
	Aliases   int            `json:"aliases"`
	Domains   []string       `json:"domains"`
	Default   string         `json:"default,omitempty"`
	Version   int64          `json:"version"`
}

func (a *adminAPI) stats(w http.ResponseWriter, r *http.Request) {
	db, err := openRouteDB(r.Context(), a.m, false)
	if err != nil || db == nil {
		a.log.Warn("admin API stats", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
		return
	}
	defer db.Close()
	t, err := db.Snapshot(r.Context())
	if err != nil {
		a.log.Warn("admin API stats", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
		return
	}
	v := statsView{ByBackend: map[string]int{}, Aliases: len(t.Aliases()), Domains: t.Domains(), Default: t.Default, Version: t.Version}
	for _, rt := range t.Routes() {
		v.Routes++
		v.ByBackend[rt.Backend]++
		if rt.State == routes.Frozen {
			v.Frozen++
		}
	}
	sort.Strings(v.Domains)
	apiJSON(w, http.StatusOK, v)
}
