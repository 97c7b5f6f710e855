package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second}, // capped
		{40, time.Second},
	}
	for _, tc := range tests {
		if got := p.Ceiling(tc.attempt); got != tc.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
	if got := (Policy{Initial: time.Second}).Ceiling(62); got <= 0 {
		t.Errorf("uncapped Ceiling(62) = %v, want a positive (overflow-safe) value", got)
	}
	if got := (Policy{}).Ceiling(3); got != 0 {
		t.Errorf("zero policy Ceiling = %v, want 0", got)
	}
}

func TestDelayIsFullJitter(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	var below, above bool
	for range 2000 {
		d := p.Delay(5)
		if d < 0 || d > 40*time.Millisecond {
			t.Fatalf("Delay(5) = %v, outside [0, 40ms]", d)
		}
		below = below || d < 10*time.Millisecond
		above = above || d > 30*time.Millisecond
	}
	if !below || !above {
		t.Errorf("2000 delays did not spread over [0, 40ms] (some below 10ms: %v, some above 30ms: %v)", below, above)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
