package engine

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mailmig/mailmig/plan"
)

// RecordedBy names who recorded an archive's observation, and when.
type RecordedBy struct {
	// Worker is the apply worker's name (the host's name for a plain
	// apply).
	Worker string `json:"worker"`
	// Host is the machine that holds the archive.
	Host string `json:"host,omitempty"`
	// At is when it was recorded (the database's clock).
	At time.Time `json:"at"`
}

// Observation is what an apply records of an account's archive after each
// pass, so that plan on a machine without that archive (a CI runner,
// another worker) plans the account as the machine holding it would.
type Observation struct {
	// Archive is the archive's summary (Observe's ArchiveInfo).
	Archive ArchiveInfo `json:"archive"`
	// Probe is what the executor's refresh probe reads from the archive
	// (its mailboxes' sync cursors), opaque to the engine.
	Probe json.RawMessage `json:"probe,omitempty"`
	// By is who recorded it (kept beside the data, not in it).
	By RecordedBy `json:"-"`
}

// ObservationStore keeps the recorded observations (in PostgreSQL with
// state { postgres }: pgstate.Store). Its methods are safe for concurrent
// use.
type ObservationStore interface {
	// RecordObservation replaces the account's observation. The store
	// sets By.At.
	RecordObservation(ctx context.Context, account string, o *Observation) error
	// ObservedAccounts lists the normalised accounts with an observation.
	ObservedAccounts(ctx context.Context) (map[string]bool, error)
	// Observation returns the account's observation, nil when none.
	Observation(ctx context.Context, account string) (*Observation, error)
}

// RecordedArchives is an ArchiveReader that reads the local archive when
// this machine has it and else the observation recorded by the machine
// that has it (ArchiveInfo.Recorded says so). Get gives the whole
// observation to the refresh probe. Safe for concurrent use.
type RecordedArchives struct {
	local    ArchiveReader
	store    ObservationStore
	recorded map[string]bool
	cache    sync.Map // key → *Observation (nil: none)
}

var _ ArchiveReader = (*RecordedArchives)(nil)

// NewRecordedArchives lists the store's recorded accounts once; local may
// be nil (no archives on this machine).
func NewRecordedArchives(ctx context.Context, local ArchiveReader, store ObservationStore) (*RecordedArchives, error) {
	keys, err := store.ObservedAccounts(ctx)
	if err != nil {
		return nil, err
	}
	return &RecordedArchives{local: local, store: store, recorded: keys}, nil
}

func (r *RecordedArchives) hasLocal(acct *plan.Account) bool {
	return r.local != nil && r.local.Has(acct)
}

// Has implements ArchiveReader.
func (r *RecordedArchives) Has(acct *plan.Account) bool {
	return r.hasLocal(acct) || r.recorded[Key(acct.Address)]
}

// Archive implements ArchiveReader.
func (r *RecordedArchives) Archive(ctx context.Context, acct *plan.Account) (ArchiveInfo, error) {
	if r.hasLocal(acct) {
		return r.local.Archive(ctx, acct)
	}
	o, err := r.Get(ctx, acct)
	if err != nil || o == nil {
		return ArchiveInfo{}, err
	}
	info := o.Archive
	by := o.By
	info.Recorded = &by
	return info, nil
}

// Get returns the recorded observation of an account whose archive is not
// on this machine; nil when the archive is here or nobody recorded one.
func (r *RecordedArchives) Get(ctx context.Context, acct *plan.Account) (*Observation, error) {
	k := Key(acct.Address)
	if r.hasLocal(acct) || !r.recorded[k] {
		return nil, nil
	}
	if o, ok := r.cache.Load(k); ok {
		return o.(*Observation), nil
	}
	o, err := r.store.Observation(ctx, k)
	if err != nil {
		return nil, err
	}
	r.cache.Store(k, o)
	return o, nil
}
