package proxy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFailureDelay: a failure takes at least Min, and at least the
// longest recent backend refusal, capped at maxLearnedDelay.
func TestFailureDelay(t *testing.T) {
	d := NewFailureDelay(50 * time.Millisecond)
	if got := d.Delay(); got != 50*time.Millisecond {
		t.Errorf("Delay before any refusal: %v, want Min", got)
	}
	d.Observe(20 * time.Millisecond)
	if got := d.Delay(); got != 50*time.Millisecond {
		t.Errorf("Delay after a fast refusal: %v, want Min", got)
	}
	d.Observe(3 * time.Second)
	if got := d.Delay(); got != 3*time.Second {
		t.Errorf("Delay after a 3 s refusal: %v, want 3s", got)
	}
	d.Observe(time.Hour)
	if got := d.Delay(); got != maxLearnedDelay {
		t.Errorf("Delay after a hung backend: %v, want the cap %v", got, maxLearnedDelay)
	}
	// Two windows later the slow refusals are forgotten.
	d.mu.Lock()
	d.window = d.window.Add(-2 * learnWindow)
	d.mu.Unlock()
	if got := d.Delay(); got != 50*time.Millisecond {
		t.Errorf("Delay two windows later: %v, want Min", got)
	}
	// Wait counts from start: a failure that already took long enough
	// is answered at once.
	began := time.Now()
	d.Wait(context.Background(), time.Now().Add(-time.Second))
	if took := time.Since(began); took > 40*time.Millisecond {
		t.Errorf("Wait after a slow failure took %v", took)
	}
	var nilDelay *FailureDelay
	nilDelay.Observe(time.Second)
	nilDelay.Wait(context.Background(), time.Now())
}

// TestLogUser: long names are cut at a rune boundary with their length.
func TestLogUser(t *testing.T) {
	if got := LogUser("alice@example.test"); got != "alice@example.test" {
		t.Errorf("short name changed: %q", got)
	}
	long := strings.Repeat("é", 40000) // 80,000 bytes
	got := LogUser(long)
	if len(got) > MaxLoggedUser+40 || !strings.HasSuffix(got, "…(80000 bytes)") {
		t.Errorf("LogUser(80 KB) = %d bytes, %q…", len(got), got[len(got)-30:])
	}
	if !strings.HasPrefix(got, "é") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("cut inside a rune: %q", got[:10])
	}
}
