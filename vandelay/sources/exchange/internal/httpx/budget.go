package httpx

import (
	"sync"

	"golang.org/x/time/rate"
)

// DefaultAppRate is the requests per second one app registration may
// send to Graph from one process, all its mailboxes together, unless
// configured otherwise (plan: exchange { app_rate }, CLI: --app-rate).
// Microsoft throttles per mailbox (4 concurrent requests, 10,000 per 10
// minutes per app and mailbox) and per app across the tenant; a migration
// that runs many mailboxes in parallel reaches the app's limits long
// before any one mailbox's, and a shared budget keeps it below them
// instead of collecting 429s from every mailbox at once. 100/s with a
// burst of as many is well under the documented per-app limits and above
// what one mailbox uses (its 4 requests in flight).
const DefaultAppRate = 100

var (
	budgetsMu sync.Mutex
	budgets   = map[string]*rate.Limiter{}
)

// AppBudget returns the process-wide limiter of the app registration
// named by key (authority, tenant and client id), created at perSecond
// requests per second (DefaultAppRate when <= 0) with a burst of burst
// (one second's worth when < 1), or set to them when it exists, so that
// every mailbox of one app in one apply shares it.
func AppBudget(key string, perSecond float64, burst int) *rate.Limiter {
	if perSecond <= 0 {
		perSecond = DefaultAppRate
	}
	if burst < 1 {
		burst = max(int(perSecond), 1)
	}
	budgetsMu.Lock()
	defer budgetsMu.Unlock()
	l := budgets[key]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(perSecond), burst)
		budgets[key] = l
		return l
	}
	if l.Limit() != rate.Limit(perSecond) || l.Burst() != burst {
		l.SetLimit(rate.Limit(perSecond))
		l.SetBurst(burst)
	}
	return l
}
