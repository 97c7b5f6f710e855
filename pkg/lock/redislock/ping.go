package redislock

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/necrocode/artifactstore/pkg/lock"
)

var _ lock.Pinger = (*Locker)(nil)

// Ping sends PING to every master at once and succeeds when a quorum
// answers. Otherwise the error matches lock.ErrUnavailable, says how many
// answered, and keeps each failing master's error in the chain (a refused
// password or ACL also matches lock.ErrPermissionDenied with clients that
// have PermissionHook, as Open's do); when ctx ended first
// it also matches ctx.Err(). After Close it matches lock.ErrClosed. Ping
// writes nothing. See lock.Pinger.
func (l *Locker) Ping(ctx context.Context) error {
	if l.isClosed() {
		return fmt.Errorf("redislock: ping: %w", lock.ErrClosed)
	}
	errs := make([]error, len(l.clients))
	var wg sync.WaitGroup
	for i, c := range l.clients {
		wg.Go(func() {
			if err := c.Ping(ctx).Err(); err != nil {
				errs[i] = fmt.Errorf("master #%d: %w", i, err)
			}
		})
	}
	wg.Wait()
	answered := 0
	for _, err := range errs {
		if err == nil {
			answered++
		}
	}
	if answered >= l.quorum {
		return nil
	}
	err := fmt.Errorf("redislock: ping: %w: %d of %d masters answered, quorum %d: %w",
		lock.ErrUnavailable, answered, len(l.clients), l.quorum, errors.Join(errs...))
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", err, cerr)
	}
	return err
}
