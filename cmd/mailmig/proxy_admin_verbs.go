package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// The admin API's verbs beyond mappings (issue 18), made like "mailmig
// routes alias|domain|freeze|unfreeze" and like the mapping verbs: under
// the state lock, journaled as route-edit records, acknowledged by the
// fleet with the routes in PostgreSQL:
//
//	GET    /api/alias/{identifier}            {"alias", "account"}; 404 when it is none
//	PUT    /api/alias/{identifier}            {"account": "ACCOUNT"}: the identifier follows that account's route
//	DELETE /api/alias/{identifier}            404 when it is none
//	GET    /api/domain/{domain}               {"domain", "listed": true}; 404 when not listed
//	PUT    /api/domain/{domain}               list it (SMTP accepts mail for it)
//	DELETE /api/domain/{domain}               404 when not listed
//	POST   /api/mapping/{account}/freeze      hold the account's logins and deliveries
//	POST   /api/mapping/{account}/unfreeze
//
// and, for scripts written against Stalwart's proxy, its own mapping
// paths (query parameters, plain-text answers):
//
//	GET    /mappings?identifier=ID                 JSON: identifier, normalized, destination, routed_to_default, cached
//	PUT    /mappings?identifier=ID&destination=B   "ok"
//	DELETE /mappings?identifier=ID                 "removed" or "absent"

// adminLookups are the single-row reads both route stores offer.
type adminLookups interface {
	Alias(ctx context.Context, identifier string) (account string, ok bool, err error)
	DomainListed(ctx context.Context, domain string) (bool, error)
	Default(ctx context.Context) (string, error)
}

var (
	_ adminLookups = (*routes.Store)(nil)
	_ adminLookups = (*pgroutes.Store)(nil)
)

func (a *adminAPI) registerVerbs(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/alias/{identifier}", a.auth(a.aliasGet))
	mux.HandleFunc("PUT /api/alias/{identifier}", a.auth(a.aliasPut))
	mux.HandleFunc("DELETE /api/alias/{identifier}", a.auth(a.aliasDelete))
	mux.HandleFunc("GET /api/domain/{domain}", a.auth(a.domainGet))
	mux.HandleFunc("PUT /api/domain/{domain}", a.auth(a.domainPut))
	mux.HandleFunc("DELETE /api/domain/{domain}", a.auth(a.domainDelete))
	mux.HandleFunc("POST /api/mapping/{account}/freeze", a.auth(a.freeze("freeze")))
	mux.HandleFunc("POST /api/mapping/{account}/unfreeze", a.auth(a.freeze("unfreeze")))
	mux.HandleFunc("/mappings", a.authText(a.stalwartMappings))
}

// authText is auth with Stalwart's plain-text answer.
func (a *adminAPI) authText(next http.HandlerFunc) http.HandlerFunc {
	return a.auth(next, func(w http.ResponseWriter) {
		apiText(w, http.StatusUnauthorized, "unauthorized")
	})
}

func apiText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// adminEdit is one change the admin API makes.
type adminEdit struct {
	// rec is journaled (Type and the note's "admin API from ADDR" are
	// added); apply may complete it (the backend of a frozen route).
	rec state.Record
	// route is the account whose route change the fleet must apply; ""
	// means the table's latest change (aliases, domains).
	route string
	// notFound answers routes.ErrNotFound (404).
	notFound string
	apply    func(ctx context.Context, db routes.DB, rec *state.Record) error
}

// editResult is how an edit went: made is false when nothing changed
// (code and msg say why); else code is 200, or 504 when the fleet did not
// acknowledge in time (acked false, ackErr why). acked is nil with the
// SQLite table, which cannot tell.
type editResult struct {
	made   bool
	code   int
	msg    string
	acked  *bool
	ackErr string
}

// change makes one edit under the state lock, journals it and, with the
// route table in PostgreSQL, waits until every live proxy applied it.
func (a *adminAPI) change(ctx context.Context, remote string, e *adminEdit) editResult {
	action := e.rec.Action
	b, err := openState(ctx, a.m, true)
	if err != nil {
		a.log.Warn("admin API "+action, "err", err)
		return editResult{code: http.StatusServiceUnavailable, msg: "the state cannot be opened"}
	}
	defer b.Close()
	lock, _, err := b.Lock(ctx, actor(), "admin API "+action)
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			return editResult{code: http.StatusConflict, msg: err.Error()}
		}
		a.log.Warn("admin API "+action, "err", err)
		return editResult{code: http.StatusServiceUnavailable, msg: "the state cannot be locked"}
	}
	defer lock.Unlock()
	db, err := openRouteDB(ctx, a.m, true)
	if err != nil {
		a.log.Warn("admin API "+action, "err", err)
		return editResult{code: http.StatusServiceUnavailable, msg: "the route table cannot be opened"}
	}
	defer db.Close()
	rec := e.rec
	if err := e.apply(ctx, db, &rec); err != nil {
		if errors.Is(err, routes.ErrNotFound) {
			return editResult{code: http.StatusNotFound, msg: e.notFound}
		}
		a.log.Warn("admin API "+action, "user", rec.Account, "err", err)
		return editResult{code: http.StatusBadRequest, msg: err.Error()}
	}
	// The change number to wait for, read right after the edit and under
	// the lock (no other edit can come between).
	var seq int64
	pg, fleet := db.(*pgroutes.Store)
	if fleet && e.route == "" {
		if seq, err = pg.Version(ctx); err != nil {
			a.log.Warn("admin API "+action, "err", err)
		}
	}
	rec.Type = state.TypeRouteEdit
	note := "admin API from " + remote
	if rec.Note != "" {
		note += ": " + rec.Note
	}
	rec.Note = note
	j, err := openJournal(a.m, false, a.log)
	if err == nil {
		_, err = j.Append(rec)
		j.Close()
	}
	if err != nil {
		// As with "mailmig routes": the table changed, and the operator
		// must know the journal does not say so.
		a.log.Error("admin API: the route table changed, but the journal cannot record it", "user", rec.Account, "err", err)
		return editResult{code: http.StatusInternalServerError, msg: "the route table changed, but the journal cannot record it: " + err.Error()}
	}
	a.log.Info("admin API "+action, "user", rec.Account, "backend", rec.Backend, "note", rec.Note)
	res := editResult{made: true, code: http.StatusOK}
	if fleet {
		bar := &pgroutes.Barrier{Store: pg, Timeout: a.m.Routes.BarrierTimeout}
		var ackErr error
		if e.route != "" {
			ackErr = bar.AwaitRoute(ctx, e.route)
		} else {
			ackErr = bar.AwaitChange(ctx, seq)
		}
		acked := ackErr == nil
		res.acked = &acked
		if ackErr != nil {
			res.ackErr, res.code = ackErr.Error(), http.StatusGatewayTimeout
		}
	}
	return res
}

// lookups opens the route table for a read.
func (a *adminAPI) lookups(w http.ResponseWriter, r *http.Request, what string) (routes.DB, adminLookups, bool) {
	db, err := openRouteDB(r.Context(), a.m, false)
	if err != nil || db == nil {
		a.log.Warn("admin API "+what, "err", err)
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
		return nil, nil, false
	}
	l, ok := db.(adminLookups)
	if !ok {
		db.Close()
		apiError(w, http.StatusNotImplemented, "this route table cannot answer "+what)
		return nil, nil, false
	}
	return db, l, true
}

// aliasView is an alias as the API returns it.
type aliasView struct {
	Alias        string `json:"alias"`
	Account      string `json:"account,omitempty"`
	Acknowledged *bool  `json:"acknowledged,omitempty"`
	AckError     string `json:"ack_error,omitempty"`
}

func (a *adminAPI) aliasGet(w http.ResponseWriter, r *http.Request) {
	db, l, ok := a.lookups(w, r, "alias lookup")
	if !ok {
		return
	}
	defer db.Close()
	id := routes.Normalize(r.PathValue("identifier"))
	acct, found, err := l.Alias(r.Context(), id)
	switch {
	case err != nil:
		a.log.Warn("admin API alias lookup", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
	case !found:
		apiError(w, http.StatusNotFound, "no such alias")
	default:
		apiJSON(w, http.StatusOK, aliasView{Alias: id, Account: acct})
	}
}

func (a *adminAPI) aliasPut(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Account string `json:"account"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || strings.TrimSpace(body.Account) == "" {
		apiError(w, http.StatusBadRequest, `the body must be {"account": "ACCOUNT"}`)
		return
	}
	id, acct := routes.Normalize(r.PathValue("identifier")), routes.Normalize(body.Account)
	res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
		rec: state.Record{Action: "alias add", Account: acct, Note: "alias " + id},
		apply: func(ctx context.Context, db routes.DB, _ *state.Record) error {
			return db.AddAlias(ctx, id, acct)
		},
	})
	a.answer(w, res, aliasView{Alias: id, Account: acct})
}

func (a *adminAPI) aliasDelete(w http.ResponseWriter, r *http.Request) {
	id := routes.Normalize(r.PathValue("identifier"))
	res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
		rec: state.Record{Action: "alias rm", Note: "alias " + id}, notFound: "no such alias",
		apply: func(ctx context.Context, db routes.DB, _ *state.Record) error {
			return db.RemoveAlias(ctx, id)
		},
	})
	a.answer(w, res, aliasView{Alias: id})
}

// answer writes an edit's result: the view with the acknowledgement, or
// the error.
func (a *adminAPI) answer(w http.ResponseWriter, res editResult, v any) {
	if !res.made {
		apiError(w, res.code, res.msg)
		return
	}
	switch v := v.(type) {
	case aliasView:
		v.Acknowledged, v.AckError = res.acked, res.ackErr
		apiJSON(w, res.code, v)
	case domainView:
		v.Acknowledged, v.AckError = res.acked, res.ackErr
		apiJSON(w, res.code, v)
	default:
		apiJSON(w, res.code, v)
	}
}

// domainView is a domain as the API returns it.
type domainView struct {
	Domain       string `json:"domain"`
	Listed       bool   `json:"listed"`
	Acknowledged *bool  `json:"acknowledged,omitempty"`
	AckError     string `json:"ack_error,omitempty"`
}

// pathDomain is the {domain} of the path, checked as the stores check it.
func pathDomain(w http.ResponseWriter, r *http.Request) (string, bool) {
	d := routes.Normalize(r.PathValue("domain"))
	if d == "" || strings.ContainsAny(d, "@ \t") {
		apiError(w, http.StatusBadRequest, "not a domain")
		return "", false
	}
	return d, true
}

func (a *adminAPI) domainGet(w http.ResponseWriter, r *http.Request) {
	d, ok := pathDomain(w, r)
	if !ok {
		return
	}
	db, l, ok := a.lookups(w, r, "domain lookup")
	if !ok {
		return
	}
	defer db.Close()
	listed, err := l.DomainListed(r.Context(), d)
	switch {
	case err != nil:
		a.log.Warn("admin API domain lookup", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the route table cannot be read")
	case !listed:
		apiError(w, http.StatusNotFound, "the domain is not listed")
	default:
		apiJSON(w, http.StatusOK, domainView{Domain: d, Listed: true})
	}
}

func (a *adminAPI) domainPut(w http.ResponseWriter, r *http.Request) {
	d, ok := pathDomain(w, r)
	if !ok {
		return
	}
	res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
		rec: state.Record{Action: "domain add", Note: d},
		apply: func(ctx context.Context, db routes.DB, _ *state.Record) error {
			return db.AddDomains(ctx, d)
		},
	})
	a.answer(w, res, domainView{Domain: d, Listed: true})
}

func (a *adminAPI) domainDelete(w http.ResponseWriter, r *http.Request) {
	d, ok := pathDomain(w, r)
	if !ok {
		return
	}
	res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
		rec: state.Record{Action: "domain rm", Note: d}, notFound: "the domain is not listed",
		apply: func(ctx context.Context, db routes.DB, _ *state.Record) error {
			// The stores remove a domain that is not listed without a
			// word; the API says 404 (and journals nothing).
			if l, ok := db.(adminLookups); ok {
				listed, err := l.DomainListed(ctx, d)
				if err != nil {
					return err
				}
				if !listed {
					return routes.ErrNotFound
				}
			}
			return db.RemoveDomain(ctx, d)
		},
	})
	a.answer(w, res, domainView{Domain: d})
}

// freeze is POST /api/mapping/{account}/freeze|unfreeze: like "mailmig
// routes freeze|unfreeze" (a frozen account's logins are held or refused
// with a temporary error, its deliveries deferred, its sessions ended).
func (a *adminAPI) freeze(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		acct := routes.Normalize(r.PathValue("account"))
		a.edit(w, r, action, acct, "", func(ctx context.Context, db routes.DB) (routes.Route, error) {
			if action == "unfreeze" {
				return db.Unfreeze(ctx, acct)
			}
			return db.Freeze(ctx, acct)
		})
	}
}

// stalwartMapping is GET /mappings as Stalwart's proxy answers it.
type stalwartMapping struct {
	Identifier      string  `json:"identifier"`
	Normalized      string  `json:"normalized"`
	Destination     *string `json:"destination"`
	RoutedToDefault bool    `json:"routed_to_default"`
	// Cached is always false: every proxy holds the whole table.
	Cached bool `json:"cached"`
	// State is mailmig's own: "active" or "frozen" ("" when routed to
	// the default or nowhere).
	State string `json:"state,omitempty"`
}

// stalwartMappings serves Stalwart's proxy's /mappings: the same table
// and the same rules as /api/mapping, its query parameters and answers.
func (a *adminAPI) stalwartMappings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("identifier")
	switch r.Method {
	case http.MethodGet:
		if id == "" {
			apiText(w, http.StatusBadRequest, "identifier required")
			return
		}
		a.stalwartLookup(w, r, id)
	case http.MethodPut:
		dest := q.Get("destination")
		if id == "" || dest == "" {
			apiText(w, http.StatusBadRequest, "identifier and destination required")
			return
		}
		if a.m.Backend(dest) == nil {
			apiText(w, http.StatusBadRequest, "unknown destination")
			return
		}
		acct := routes.Normalize(id)
		res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
			rec: state.Record{Action: "set", Account: acct, Backend: dest}, route: acct,
			apply: func(ctx context.Context, db routes.DB, _ *state.Record) error {
				_, err := db.Set(ctx, acct, dest)
				return err
			},
		})
		a.stalwartAnswer(w, res, "ok")
	case http.MethodDelete:
		if id == "" {
			apiText(w, http.StatusBadRequest, "identifier required")
			return
		}
		acct := routes.Normalize(id)
		res := a.change(r.Context(), r.RemoteAddr, &adminEdit{
			rec: state.Record{Action: "delete", Account: acct}, route: acct,
			apply: func(ctx context.Context, db routes.DB, _ *state.Record) error {
				return db.Delete(ctx, acct)
			},
		})
		if res.code == http.StatusNotFound {
			apiText(w, http.StatusOK, "absent") // Stalwart's answer: nothing to remove
			return
		}
		a.stalwartAnswer(w, res, "removed")
	default:
		apiText(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (a *adminAPI) stalwartAnswer(w http.ResponseWriter, res editResult, ok string) {
	switch {
	case !res.made:
		apiText(w, res.code, res.msg)
	case res.code != http.StatusOK:
		apiText(w, res.code, "changed, but not acknowledged by every proxy: "+res.ackErr)
	default:
		apiText(w, http.StatusOK, ok)
	}
}

func (a *adminAPI) stalwartLookup(w http.ResponseWriter, r *http.Request, id string) {
	db, l, ok := a.lookups(w, r, "mapping lookup")
	if !ok {
		return
	}
	defer db.Close()
	ctx := r.Context()
	v := stalwartMapping{Identifier: id, Normalized: routes.Normalize(id)}
	key := v.Normalized
	acct, isAlias, err := l.Alias(ctx, key)
	if err == nil && isAlias {
		key = acct
	}
	var rt routes.Route
	if err == nil {
		rt, err = db.Get(ctx, key)
	}
	switch {
	case err == nil:
		v.Destination, v.State = &rt.Backend, string(rt.State)
	case errors.Is(err, routes.ErrNotFound):
		var def string
		if def, err = l.Default(ctx); err == nil && def != "" {
			v.Destination, v.RoutedToDefault = &def, true
		}
	}
	if err != nil {
		a.log.Warn("admin API mapping lookup", "err", err)
		apiText(w, http.StatusServiceUnavailable, "the route table cannot be read")
		return
	}
	apiJSON(w, http.StatusOK, v)
}
