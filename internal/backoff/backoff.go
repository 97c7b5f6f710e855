package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes an exponential backoff with full jitter.
type Policy struct {
	// Initial is the upper bound of the first delay. Must be positive.
	Initial time.Duration
	// Max caps the upper bound of any delay. Zero means no cap beyond
	// Initial * 2^30.
	Max time.Duration
}

// Ceiling is the upper bound of the delay before retry number attempt
// (0-based): min(Max, Initial * 2^attempt).
func (p Policy) Ceiling(attempt int) time.Duration {
	if p.Initial <= 0 {
		return 0
	}
	if attempt > 30 {
		attempt = 30
	}
	d := p.Initial << attempt
	if d <= 0 || (p.Max > 0 && d > p.Max) {
		d = p.Max
	}
	return d
}

// Delay is a random delay in [0, Ceiling(attempt)] (full jitter).
func (p Policy) Delay(attempt int) time.Duration {
	c := p.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(c) + 1))
}

// Sleep waits for d or until ctx is done, whichever comes first. It returns
// ctx.Err() when the context ended the wait.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
