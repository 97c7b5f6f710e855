package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
)

// Defaults of QuotaConfig.
const (
	DefaultQuotaWarnRatio       = 0.8
	DefaultQuotaRefreshInterval = time.Second
)

// QuotaConfig bounds the size of the store. The quota counts stored
// bytes (what the blobs occupy in the backend, after compression), since
// that is what fills the bucket. The zero value of each field means its
// default.
//
// With MaxBytes set, the store keeps a usage counter in the bucket (objects
// under _usage/, updated by conditional Puts after every commit), so that an
// upload checks the quota without listing anything; see the package
// documentation ("Usage and quota") for how exact the check is. Every store
// sharing a bucket must enable the same quota; a counter left behind (a
// crash between a commit and its count, writes by a store without a quota)
// is corrected by RecountUsage or Reconcile with Apply.
type QuotaConfig struct {
	// MaxBytes is the most stored bytes the store may hold; an upload that
	// would pass it fails with ErrStorageFull and changes nothing. Default
	// 0: unlimited, and no counter is kept.
	MaxBytes int64
	// WarnRatio is the fraction of MaxBytes at which a warning is logged,
	// once each time usage rises past it (again only after usage fell back
	// below it). In (0, 1]. Default 0.8.
	WarnRatio float64
	// RefreshInterval is how long a store reuses the counter it read while
	// usage is below WarnRatio × MaxBytes; above it, the counter is read
	// before every upload. Default 1s.
	RefreshInterval time.Duration
}

// WithDefaults returns q with every zero field set to its default.
func (q QuotaConfig) WithDefaults() QuotaConfig {
	if q.WarnRatio == 0 {
		q.WarnRatio = DefaultQuotaWarnRatio
	}
	if q.RefreshInterval == 0 {
		q.RefreshInterval = DefaultQuotaRefreshInterval
	}
	return q
}

// Validate reports the first invalid field of q, after defaults.
func (q QuotaConfig) Validate() error {
	q = q.WithDefaults()
	switch {
	case q.MaxBytes < 0:
		return fmt.Errorf("Quota.MaxBytes %d is negative", q.MaxBytes)
	case math.IsNaN(q.WarnRatio) || q.WarnRatio <= 0 || q.WarnRatio > 1:
		return fmt.Errorf("Quota.WarnRatio %v is not in (0, 1]", q.WarnRatio)
	case q.RefreshInterval < 0:
		return fmt.Errorf("Quota.RefreshInterval %v is negative", q.RefreshInterval)
	}
	return nil
}

// The usage counter is sharded so that writers on many hosts rarely
// contend: each commit adds its delta to one shard picked at random (by a
// conditional Put, retried on another shard when it loses), and the usage
// is the sum of all shards. Each shard carries a sequence number that every
// write increments, so that a store merging what it read with what it wrote
// keeps, per shard, the newer value.
const (
	usageRoot   = "_usage/"
	usageShards = 8
	// usageSchema is the version of the counter JSON.
	usageSchema = 1
	// maxCounterAttempts bounds the conditional Puts of one counter update.
	maxCounterAttempts = 32
	// maxCounterBytes bounds how much of a counter object is read.
	maxCounterBytes = 1 << 16
)

func usageShardKey(i int) string { return usageRoot + "shard-" + strconv.Itoa(i) + ".json" }

// usageCounter is one shard of the counter, stored as JSON.
type usageCounter struct {
	Schema int   `json:"schema"`
	Seq    int64 `json:"seq"`
	UsageTotals
	Updated time.Time `json:"updated"`
	Writer  string    `json:"writer"`
	// Commits are the ids of the last commits counted in this shard (at
	// most counterHistory, oldest first), so that an update whose reply
	// was lost is recognised instead of counted twice.
	Commits []string `json:"commits,omitempty"`
}

// counterHistory is how many commit ids a shard of the usage counter keeps.
const counterHistory = 64

// quotaState is a Store's view of the usage counter and its own uploads in
// flight. Its zero value is ready to use.
type quotaState struct {
	// refreshMu makes refreshes one at a time (a waiter reuses the result
	// of the refresh it waited for).
	refreshMu sync.Mutex

	mu       sync.Mutex
	shards   [usageShards]usageCounter // newest value seen of each shard
	valid    bool                      // shards were read at least once
	readAt   time.Time                 // Config.Now of the last read
	gen      uint64                    // number of completed reads
	reserved int64                     // stored bytes of this store's uploads checked but not yet counted
	warned   bool                      // usage is at or above the warning threshold, and it was logged
}

// merge keeps the newer value of each shard. Call with mu held.
func (q *quotaState) merge(i int, c usageCounter) {
	if c.Seq >= q.shards[i].Seq {
		q.shards[i] = c
	}
}

// used is the stored bytes the counter holds. Call with mu held.
func (q *quotaState) used() int64 {
	var n int64
	for _, c := range q.shards {
		n += c.StoredBytes
	}
	return n
}

// quotaOn reports whether the quota (and its counter) is enabled.
func (s *Store) quotaOn() bool { return s.cfg.Quota.MaxBytes > 0 }

// warnBytes is the usage at which the warning is logged.
func (s *Store) warnBytes() int64 {
	return int64(math.Ceil(s.cfg.Quota.WarnRatio * float64(s.cfg.Quota.MaxBytes)))
}

// errQuota returns the error of an upload of n stored bytes refused by the
// quota.
func (s *Store) errQuota(u URI, used, reserved, n int64) error {
	return fmt.Errorf("%w: %s needs %s, over the quota of %s (ARTIFACTSTORE_QUOTA_MAX_BYTES): %s stored, %s reserved by uploads in progress",
		ErrStorageFull, u, sizeWords(n), sizeWords(s.cfg.Quota.MaxBytes), sizeWords(used), sizeWords(reserved))
}

// sizeWords writes n bytes for a person: "512 B", "3.2 MiB".
func sizeWords(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// checkQuota is the early check of an upload of size bytes (SizeUnknown
// when unknown), before its transfer: it refuses an upload that cannot fit
// whatever its compression, and reserves nothing. reserveQuota makes the
// exact check once the stored size is known.
func (s *Store) checkQuota(ctx context.Context, u URI, size int64) error {
	if !s.quotaOn() {
		return nil
	}
	estimate := size
	if size < 0 || (s.cfg.Compression && size >= s.cfg.CompressionMinSize) {
		estimate = 0 // the stored size is not known before the transfer
	}
	if err := s.refreshUsage(ctx, estimate); err != nil {
		return err
	}
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if used := q.used(); used+q.reserved+estimate > s.cfg.Quota.MaxBytes {
		return s.errQuota(u, used, q.reserved, estimate)
	}
	return nil
}

// reserveQuota is the exact check of an upload whose blob of stored bytes
// is written, before its commit: it refuses the upload when the counter
// plus this store's uploads in flight plus stored would pass the quota,
// and otherwise reserves stored until release is called (after the commit
// was counted, or failed).
func (s *Store) reserveQuota(ctx context.Context, u URI, stored int64) (release func(), err error) {
	if !s.quotaOn() {
		return func() {}, nil
	}
	if err := s.refreshUsage(ctx, stored); err != nil {
		return nil, err
	}
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if used := q.used(); used+q.reserved+stored > s.cfg.Quota.MaxBytes {
		return nil, s.errQuota(u, used, q.reserved, stored)
	}
	q.reserved += stored
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			q.reserved -= stored
			q.mu.Unlock()
		})
	}, nil
}

// refreshUsage reads the counter unless the view is fresh enough for an
// upload of extra bytes: read within Config.Quota.RefreshInterval and,
// with extra, still below the warning threshold.
func (s *Store) refreshUsage(ctx context.Context, extra int64) error {
	q := &s.quota
	q.mu.Lock()
	fresh := q.valid && s.cfg.Now().Sub(q.readAt) < s.cfg.Quota.RefreshInterval &&
		q.used()+q.reserved+extra < s.warnBytes()
	gen := q.gen
	q.mu.Unlock()
	if fresh {
		return nil
	}
	q.refreshMu.Lock()
	defer q.refreshMu.Unlock()
	q.mu.Lock()
	done := q.gen != gen // another caller read it while this one waited
	q.mu.Unlock()
	if done {
		return nil
	}
	shards, present, err := s.readUsageShards(ctx)
	if err != nil {
		return fmt.Errorf("quota: read usage counter: %w", err)
	}
	if present < usageShards {
		// No counter yet (or a partial one): count once, and create the
		// missing shards only, so that stores initializing at once do not
		// undo each other's counts.
		s.log.Info("store: usage counter missing, counting the store", "shards_found", present)
		rep, err := s.walkUsage(ctx)
		if err != nil {
			return fmt.Errorf("quota: initialize usage counter: %w", err)
		}
		if err := s.resetUsageCounter(ctx, rep.Total, true); err != nil {
			return fmt.Errorf("quota: initialize usage counter: %w", err)
		}
		if shards, _, err = s.readUsageShards(ctx); err != nil {
			return fmt.Errorf("quota: read usage counter: %w", err)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, c := range shards {
		q.merge(i, c)
	}
	q.valid, q.readAt = true, s.cfg.Now()
	q.gen++
	s.checkWarning()
	return nil
}

// checkWarning logs the crossings of the warning threshold, edge-triggered.
// Call with s.quota.mu held, whenever the view changed.
func (s *Store) checkWarning() {
	q := &s.quota
	used, limit := q.used(), s.warnBytes()
	s.tel.QuotaUse(used, s.cfg.Quota.MaxBytes)
	switch {
	case used >= limit && !q.warned:
		q.warned = true
		s.log.Warn("store: usage passed the quota warning threshold", "stored_bytes", used,
			"max_bytes", s.cfg.Quota.MaxBytes, "warn_ratio", s.cfg.Quota.WarnRatio,
			"ratio", float64(used)/float64(s.cfg.Quota.MaxBytes))
	case used < limit && q.warned:
		q.warned = false
		s.log.Info("store: usage fell below the quota warning threshold", "stored_bytes", used,
			"max_bytes", s.cfg.Quota.MaxBytes, "warn_ratio", s.cfg.Quota.WarnRatio)
	}
}

// readUsageShards reads every shard of the counter (a missing one reads as
// zero) and says how many exist.
func (s *Store) readUsageShards(ctx context.Context) ([usageShards]usageCounter, int, error) {
	var (
		out     [usageShards]usageCounter
		present [usageShards]bool
	)
	err := s.parallel(ctx, usageShards, func(ctx context.Context, i int) error {
		c, etag, err := s.readUsageShard(ctx, i)
		if err != nil {
			return err
		}
		out[i], present[i] = c, etag != ""
		return nil
	})
	n := 0
	for _, p := range present {
		if p {
			n++
		}
	}
	return out, n, err
}

// readUsageShard reads shard i and its ETag ("" when it does not exist).
func (s *Store) readUsageShard(ctx context.Context, i int) (usageCounter, string, error) {
	key := usageShardKey(i)
	rc, info, err := s.b.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return usageCounter{}, "", nil
	}
	if err != nil {
		return usageCounter{}, "", fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCounterBytes))
	if err != nil {
		return usageCounter{}, "", fmt.Errorf("read %s: %w", key, err)
	}
	var c usageCounter
	if err := json.Unmarshal(data, &c); err != nil || c.Schema != usageSchema {
		// A damaged counter is rewritten by the next update or recount.
		s.log.Warn("store: usage counter shard is not valid, reading it as zero", "key", key, "err", err, "schema", c.Schema)
		return usageCounter{Seq: c.Seq}, info.ETag, nil
	}
	return c, info.ETag, nil
}

// writeUsageShard writes c as shard i, conditionally on etag (absent when
// empty). A lost condition matches backend.ErrPreconditionFailed.
func (s *Store) writeUsageShard(ctx context.Context, i int, c usageCounter, etag string) error {
	c.Schema, c.Updated, c.Writer = usageSchema, s.cfg.Now().UTC(), s.cfg.WriterID
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.b.Put(ctx, usageShardKey(i), bytes.NewReader(data), int64(len(data)),
		backend.PutOptions{ContentType: "application/json", IfMatch: etag, IfAbsent: etag == ""})
	return err
}

// countUsage adds the change of a committed mutation to the usage counter
// (only with a quota). It runs after the commit, on a context detached
// from the caller's cancellation, since the commit already happened. A
// failure is logged and leaves the counter behind until RecountUsage.
func (s *Store) countUsage(ctx context.Context, u URI, out outcome) {
	if !s.quotaOn() || out.noop {
		return
	}
	delta := totalsOf(out.m).Minus(totalsOf(out.prev))
	if delta == (UsageTotals{}) {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.addUsage(cctx, delta, out.commit); err != nil {
		s.log.Warn("store: usage counter not updated (RecountUsage corrects it)", "uri", u.String(),
			"stored_bytes", delta.StoredBytes, "err", err)
	}
}

// addUsage adds delta, the change of commit id, to a random shard, by
// conditional Put, moving to another shard when it loses to a concurrent
// update. A missing shard means that the counter was never initialized:
// the delta is left to the count that will initialize it.
//
// The update is idempotent per commit: the shard records id, and a Put
// whose outcome is unknown (a lost reply) is resolved by reading the shard
// again, staying on it: id recorded means counted; the shard unchanged
// means not counted yet, and the same update is sent again under the same
// condition (so at most one of the attempts lands); the shard changed
// without id means the attempt can never land.
func (s *Store) addUsage(ctx context.Context, delta UsageTotals, id string) error {
	policy := backoff.Policy{Initial: time.Millisecond, Max: 50 * time.Millisecond}
	var (
		last     error
		sentSeq  int64 = -1 // Seq of the shard an unresolved attempt was conditioned on
		sentOnto       = -1 // and that shard
		i              = rand.IntN(usageShards)
	)
	for attempt := 0; attempt < maxCounterAttempts; attempt++ {
		c, etag, err := s.readUsageShard(ctx, i)
		if err != nil {
			return err
		}
		if etag == "" {
			return nil
		}
		switch {
		case slices.Contains(c.Commits, id):
			s.mergeShard(i, c)
			return nil // counted by an earlier attempt
		case sentOnto == i && c.Seq-sentSeq > counterHistory:
			return fmt.Errorf("outcome of an update unknown: %d updates of %s followed it, more than the %d it remembers: %w",
				c.Seq-sentSeq, usageShardKey(i), counterHistory, last)
		}
		next := c
		next.UsageTotals = c.UsageTotals.Plus(delta)
		next.Seq++
		next.Commits = appendBounded(c.Commits, counterHistory, id)
		err = s.writeUsageShard(ctx, i, next, etag)
		if err == nil {
			s.mergeShard(i, next)
			return nil
		}
		last = err
		switch {
		case ambiguous(err):
			// It may have landed: read this shard again.
			sentSeq, sentOnto = c.Seq, i
		case errors.Is(err, backend.ErrPreconditionFailed):
			if sentOnto < 0 {
				i = rand.IntN(usageShards) // lost a race: another shard
			}
		default:
			return err
		}
		if attempt > 2 || ambiguous(err) {
			if err := backoff.Sleep(ctx, policy.Delay(attempt)); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("lost %d times to concurrent updates: %w", maxCounterAttempts, last)
}

// mergeShard takes c, just read or written, into the Store's view.
func (s *Store) mergeShard(i int, c usageCounter) {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	q.merge(i, c)
	s.checkWarning()
}

// resetUsageCounter sets the counter to total: shard 0 holds it, the
// others zero. With onlyMissing it only creates the shards that do not
// exist (the initialization of the counter).
func (s *Store) resetUsageCounter(ctx context.Context, total UsageTotals, onlyMissing bool) error {
	return s.parallel(ctx, usageShards, func(ctx context.Context, i int) error {
		var want UsageTotals
		if i == 0 {
			want = total
		}
		for attempt := 0; ; attempt++ {
			c, etag, err := s.readUsageShard(ctx, i)
			if err != nil {
				return err
			}
			if onlyMissing && etag != "" {
				return nil
			}
			q := &s.quota
			q.mu.Lock()
			seq := max(c.Seq, q.shards[i].Seq) + 1
			q.mu.Unlock()
			next := usageCounter{Seq: seq, UsageTotals: want, Commits: c.Commits}
			err = s.writeUsageShard(ctx, i, next, etag)
			if err == nil {
				q.mu.Lock()
				q.merge(i, next)
				if q.valid {
					s.checkWarning()
				}
				q.mu.Unlock()
				return nil
			}
			if onlyMissing && errors.Is(err, backend.ErrPreconditionFailed) {
				return nil // created by another store meanwhile
			}
			if !errors.Is(err, backend.ErrPreconditionFailed) || attempt >= maxCounterAttempts {
				return fmt.Errorf("reset %s: %w", usageShardKey(i), err)
			}
		}
	})
}

// envQuotaWarnRatio parses ARTIFACTSTORE_QUOTA_WARN_RATIO.
func envQuotaWarnRatio(c *Config, v string) error {
	r, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return err
	}
	c.Quota.WarnRatio = r
	return nil
}
