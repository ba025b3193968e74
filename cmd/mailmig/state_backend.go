package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/engine/state/pgstate"
	"github.com/mailmig/mailmig/internal/pgdb"
	"github.com/mailmig/mailmig/plan"
)

// openState opens the plan's state: the state directory, or the
// PostgreSQL database of state { postgres }. write creates or upgrades
// the database's schema; without it a database without the schema is an
// error that says how to create it. Close the Backend after use.
//
// Within one command every open of the same plan's PostgreSQL state
// shares one connection pool (counted references): the journal a command
// writes then appends through the session that holds its apply lock, so
// a run that lost the lock (and with it the session) cannot append.
func openState(ctx context.Context, m *plan.Migration, write bool) (state.Backend, error) {
	pg := m.State.Postgres
	if pg == nil {
		return state.Dir(statePath(m)), nil
	}
	if pg.Password.Deferred() {
		return nil, fmt.Errorf("the state database's password_ref %s is not set", pg.PasswordRef)
	}
	pgStates.Lock()
	defer pgStates.Unlock()
	sh := pgStates.open[m]
	if sh == nil {
		st, err := pgstate.Open(ctx, pg.DSN, &pgdb.Options{Password: pg.Password.Reveal(), Create: write})
		if err != nil {
			return nil, err
		}
		sh = &sharedPG{st: st}
		pgStates.open[m] = sh
	}
	sh.refs++
	return state.Remote{Store: &pgRef{Store: sh.st, m: m}}, nil
}

// pgStates are the PostgreSQL states open in this process, by plan.
var pgStates = struct {
	sync.Mutex
	open map[*plan.Migration]*sharedPG
}{open: map[*plan.Migration]*sharedPG{}}

type sharedPG struct {
	st   *pgstate.Store
	refs int
}

// pgRef is one reference to a shared store; Close drops it and closes
// the store with the last one.
type pgRef struct {
	*pgstate.Store
	m    *plan.Migration
	once sync.Once
}

func (r *pgRef) Close() error {
	var err error
	r.once.Do(func() {
		pgStates.Lock()
		defer pgStates.Unlock()
		sh := pgStates.open[r.m]
		if sh == nil {
			return
		}
		if sh.refs--; sh.refs == 0 {
			delete(pgStates.open, r.m)
			err = sh.st.Close()
		}
	})
	return err
}
