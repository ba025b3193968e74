package vandelay

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a RateLimiter over one messages/s bucket (burst 1), like
// the engine's per-backend limiter without a bytes bucket.
type limiter struct{ msgs *rate.Limiter }

func newLimiter(perSec float64) limiter { return limiter{rate.NewLimiter(rate.Limit(perSec), 1)} }

func (l limiter) WaitBytes(context.Context, int64) error { return nil }
func (l limiter) WaitMessages(ctx context.Context, n int) error {
	return l.msgs.WaitN(ctx, n)
}

// TestThrottledTransport checks that requests to a target wait on the
// backend's shared buckets: 4 uploads at 2 messages/s (burst 1) take
// about 1.5 s; JSON API calls do not count as messages.
func TestThrottledTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	post := func(c *http.Client, ct string) {
		resp, err := c.Post(srv.URL, ct, strings.NewReader("data"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// At 0.2 messages/s, three throttled calls would take 10 s.
	slow := targetClient(nil, newLimiter(0.2), false)
	start := time.Now()
	for i := 0; i < 3; i++ {
		post(slow, "application/json")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("JSON calls were throttled as messages: %v", d)
	}
	c := targetClient(nil, newLimiter(2), false)
	start = time.Now()
	for i := 0; i < 4; i++ {
		post(c, "message/rfc822")
	}
	if d := time.Since(start); d < 1200*time.Millisecond {
		t.Fatalf("4 uploads at 2/s took only %v", d)
	}
}
