package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine"
)

var _ engine.ObservationStore = (*Store)(nil)

// RecordObservation implements engine.ObservationStore: one row per
// account in mailmig_observations, replaced by each pass.
func (s *Store) RecordObservation(ctx context.Context, account string, o *engine.Observation) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO mailmig_observations (account, worker, host, data, updated) VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (account) DO UPDATE SET worker = EXCLUDED.worker, host = EXCLUDED.host, data = EXCLUDED.data, updated = EXCLUDED.updated`,
		engine.Key(account), o.By.Worker, o.By.Host, data)
	if err != nil {
		return fmt.Errorf("record the archive's observation of %s: %w", account, err)
	}
	return nil
}

// ObservedAccounts implements engine.ObservationStore.
func (s *Store) ObservedAccounts(ctx context.Context) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT account FROM mailmig_observations`)
	if err != nil {
		return nil, fmt.Errorf("read the recorded archive observations: %w", err)
	}
	out := map[string]bool{}
	var k string
	_, err = pgx.ForEachRow(rows, []any{&k}, func() error {
		out[k] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the recorded archive observations: %w", err)
	}
	return out, nil
}

// Observation implements engine.ObservationStore.
func (s *Store) Observation(ctx context.Context, account string) (*engine.Observation, error) {
	var (
		o    engine.Observation
		data []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT worker, host, data, updated FROM mailmig_observations WHERE account = $1`, engine.Key(account)).
		Scan(&o.By.Worker, &o.By.Host, &data, &o.By.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &o)
	}
	if err != nil {
		return nil, fmt.Errorf("read the recorded archive observation of %s: %w", account, err)
	}
	o.By.At = o.By.At.UTC()
	return &o, nil
}
