package pgroutes

import (
	"context"

	"github.com/mailmig/mailmig/proxy/routes"
)

// ChangesWithMarks exposes Store.changes to the tests.
func ChangesWithMarks(s *Store, ctx context.Context, since int64) (routes.Delta, map[string]int64, int64, bool, error) {
	return s.changes(ctx, since)
}
