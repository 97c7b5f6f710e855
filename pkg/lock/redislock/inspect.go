package redislock

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// nodeView is what one master records about a lock.
type nodeView struct {
	err    error
	value  string        // the lock key's token, '' when absent
	ttl    time.Duration // of the lock key
	token  string        // the last grant's token (state hash)
	holder string        // the last grant's holder JSON
	since  string        // the last grant's unix ms
	fence  string        // the last grant's fence
}

// Inspect reports the majority view of key's lock: Held when a token is
// recorded on enough masters that no other holder could reach a quorum.
// It fails with lock.ErrUnavailable when fewer than a quorum of masters
// answer.
func (l *Locker) Inspect(ctx context.Context, key string) (lock.Status, error) {
	names, err := l.prepare(key, "inspect")
	if err != nil {
		return lock.Status{}, err
	}
	if err := ctx.Err(); err != nil {
		return lock.Status{}, fmt.Errorf("redislock: inspect %q: %w", key, err)
	}
	views := make([]nodeView, len(l.clients))
	var wg sync.WaitGroup
	for i, c := range l.clients {
		wg.Go(func() { views[i] = inspectNode(ctx, c, names) })
	}
	wg.Wait()
	st, answered, first := l.status(key, views, time.Now())
	if cerr := ctx.Err(); cerr != nil {
		return lock.Status{}, fmt.Errorf("redislock: inspect %q: %w", key, cerr)
	}
	if answered < l.quorum {
		return lock.Status{}, fmt.Errorf("redislock: inspect %q: %w: %d of %d masters answered, quorum is %d: %w",
			key, lock.ErrUnavailable, answered, len(l.clients), l.quorum, first)
	}
	return st, nil
}

func inspectNode(ctx context.Context, c redis.UniversalClient, names keyNames) nodeView {
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	var hm *redis.SliceCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, names.lock)
		ttl = p.PTTL(ctx, names.lock)
		hm = p.HMGet(ctx, names.state, "token", "holder", "since", "tfence")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nodeView{err: err}
	}
	v := nodeView{value: get.Val(), ttl: ttl.Val()}
	f := hm.Val()
	v.token, v.holder, v.since, v.fence = str(f, 0), str(f, 1), str(f, 2), str(f, 3)
	return v
}

func str(vals []any, i int) string {
	if i < len(vals) {
		if s, ok := vals[i].(string); ok {
			return s
		}
	}
	return ""
}

// ForceUnlock deletes key's lock on every master that answers, wakes the
// waiters and returns the status it found before (the majority view, as
// Inspect). The broken lease learns it is lost at its next refresh or
// release. It fails with lock.ErrUnavailable when so few masters answered
// that the unreachable ones could still form a quorum for the old holder.
func (l *Locker) ForceUnlock(ctx context.Context, key string) (lock.Status, error) {
	names, err := l.prepare(key, "force unlock")
	if err != nil {
		return lock.Status{}, err
	}
	if err := ctx.Err(); err != nil {
		return lock.Status{}, fmt.Errorf("redislock: force unlock %q: %w", key, err)
	}
	views := make([]nodeView, len(l.clients))
	var wg sync.WaitGroup
	for i, c := range l.clients {
		q := "0"
		if i == names.queueNode {
			q = "1"
		}
		wg.Go(func() {
			vals, err := forceScript.Run(ctx, c, names.keys(), names.channel, q, l.wakePrefix).Slice()
			if err != nil {
				views[i] = nodeView{err: err}
				return
			}
			var ms int64
			if len(vals) > 1 {
				ms, _ = vals[1].(int64)
			}
			views[i] = nodeView{
				value: str(vals, 0), ttl: time.Duration(ms) * time.Millisecond,
				token: str(vals, 2), holder: str(vals, 3), since: str(vals, 4), fence: str(vals, 5),
			}
		})
	}
	wg.Wait()
	st, answered, first := l.status(key, views, time.Now())
	if cerr := ctx.Err(); cerr != nil && answered < len(l.clients) {
		return st, fmt.Errorf("redislock: force unlock %q: %w", key, cerr)
	}
	if need := len(l.clients) - l.quorum + 1; answered < need {
		return st, fmt.Errorf("redislock: force unlock %q: %w: deleted on %d of %d masters, need %d: %w",
			key, lock.ErrUnavailable, answered, len(l.clients), need, first)
	}
	if st.Held {
		l.cfg.Logger.Warn("lock broken by force unlock", "key", key, "fence", st.Fence, "holder", st.Holder)
	}
	return st, nil
}

// status computes the majority view from the masters' views: the lock is
// held by token v when the masters recording v, together with those that
// did not answer, could form a quorum (so no other holder can). It returns
// how many masters answered and the first error.
func (l *Locker) status(key string, views []nodeView, now time.Time) (st lock.Status, answered int, first error) {
	st.Key = key
	counts := make(map[string]int)
	for i, v := range views {
		if v.err != nil {
			if first == nil {
				first = fmt.Errorf("master #%d: %w", i, v.err)
			}
			continue
		}
		answered++
		if v.value != "" {
			counts[v.value]++
		}
	}
	unanswered := len(views) - answered
	best, bestN := "", 0
	for v, n := range counts {
		if n > bestN || (n == bestN && v < best) {
			best, bestN = v, n
		}
	}
	if bestN == 0 || bestN+unanswered < l.quorum {
		return st, answered, first
	}
	st.Held = true
	var ttls []time.Duration
	for _, v := range views {
		if v.err != nil || v.value != best {
			continue
		}
		ttls = append(ttls, v.ttl)
		if v.token != best {
			continue
		}
		if f, err := strconv.ParseUint(v.fence, 10, 64); err == nil {
			st.Fence = max(st.Fence, f)
		}
		if st.Holder == (lock.Holder{}) {
			_ = json.Unmarshal([]byte(v.holder), &st.Holder)
		}
		if ms, err := strconv.ParseInt(v.since, 10, 64); err == nil && st.Since.IsZero() {
			st.Since = time.UnixMilli(ms)
		}
	}
	// The lock stands while a quorum of its keys lives: the quorum-th
	// longest TTL (or the shortest seen, when fewer answered).
	slices.SortFunc(ttls, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	if i := min(l.quorum, len(ttls)) - 1; i >= 0 && ttls[i] > 0 {
		st.Until = now.Add(ttls[i])
	}
	return st, answered, first
}
