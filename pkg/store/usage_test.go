package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
)

func TestUsage(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{Versioning: true, Compression: true, CompressionMinSize: 100}, nil)
		want := newUsageReport()
		add := func(md Metadata) {
			one := UsageTotals{Versions: 1, Bytes: md.Size, StoredBytes: md.StoredSize}
			want.Total = want.Total.Plus(one)
			want.BySpec[md.SpecName] = want.BySpec[md.SpecName].Plus(one)
			want.ByType[md.Type] = want.ByType[md.Type].Plus(one)
		}
		first := map[string]bool{}
		for i, uri := range []string{
			"artifact://a/t1/log", "artifact://a/t1/diff", "artifact://a/t2/log",
			"artifact://b/t1/test", "artifact://b/t1/log", "artifact://a/t1/log", "artifact://b/t1/log",
		} {
			data := bytes.Repeat([]byte(fmt.Sprintf("line %d of %s\n", i, uri)), 1+i*10)
			md := mustUpload(t, f.s, uri, data, UploadOptions{})
			add(md)
			if !first[uri] {
				first[uri] = true
				one := UsageTotals{Artifacts: 1}
				want.Total = want.Total.Plus(one)
				want.BySpec[md.SpecName] = want.BySpec[md.SpecName].Plus(one)
				want.ByType[md.Type] = want.ByType[md.Type].Plus(one)
			}
		}
		got, err := f.s.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != want.Total || !maps.Equal(got.BySpec, want.BySpec) || !maps.Equal(got.ByType, want.ByType) {
			t.Fatalf("Usage = %+v\nwant    %+v", got, want)
		}
		if got.Total.StoredBytes >= got.Total.Bytes {
			t.Errorf("compressed content: stored %d not below logical %d", got.Total.StoredBytes, got.Total.Bytes)
		}
		if got.Total.Artifacts != 5 || got.Total.Versions != 7 {
			t.Errorf("counts %+v", got.Total)
		}
	})
}

func TestQuotaConfig(t *testing.T) {
	q := QuotaConfig{}.WithDefaults()
	if q.MaxBytes != 0 || q.WarnRatio != 0.8 || q.RefreshInterval != time.Second {
		t.Errorf("defaults %+v", q)
	}
	for name, bad := range map[string]QuotaConfig{
		"negative max":     {MaxBytes: -1},
		"ratio above one":  {MaxBytes: 10, WarnRatio: 1.5},
		"negative ratio":   {MaxBytes: 10, WarnRatio: -0.5},
		"negative refresh": {RefreshInterval: -time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, bad)
		}
		if err := (Config{Quota: bad}).Validate(); err == nil {
			t.Errorf("%s: Config.Validate accepted it", name)
		}
	}
}

// counterTotal is the sum of the usage counter's shards, read from the
// backend.
func counterTotal(t *testing.T, s *Store) UsageTotals {
	t.Helper()
	shards, n, err := s.readUsageShards(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != usageShards {
		t.Fatalf("%d usage shards exist, want %d", n, usageShards)
	}
	var total UsageTotals
	for _, c := range shards {
		total = total.Plus(c.UsageTotals)
	}
	return total
}

const quotaWarning = "store: usage passed the quota warning threshold"

// TestQuotaConcurrentWriters fills a quota from 8 writers of one store: no
// upload may pass it, the refused ones change nothing, and the warning is
// logged once per crossing.
func TestQuotaConcurrentWriters(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		const size, maxBytes = 1000, 20_000
		f := newFixture(t, e, Config{Quota: QuotaConfig{MaxBytes: maxBytes, WarnRatio: 0.8}}, nil)
		const writers, each = 8, 5
		var (
			ok, full atomic.Int64
			mu       sync.Mutex
			refused  []string
			wg       sync.WaitGroup
		)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					uri := fmt.Sprintf("artifact://s/w%d/log%d", w, i)
					_, err := f.s.UploadBytes(ctx, uri, bytes.Repeat([]byte{byte('a' + w)}, size), UploadOptions{})
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, ErrStorageFull):
						full.Add(1)
						mu.Lock()
						refused = append(refused, uri)
						mu.Unlock()
					default:
						t.Errorf("upload %s: %v", uri, err)
					}
				}
			})
		}
		wg.Wait()
		// One store checks exactly: the quota fits 20 uploads, no more.
		if ok.Load() != maxBytes/size || full.Load() != writers*each-maxBytes/size {
			t.Fatalf("%d uploads accepted, %d refused; want %d and %d", ok.Load(), full.Load(), maxBytes/size, writers*each-maxBytes/size)
		}
		u, err := f.s.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Total.StoredBytes != maxBytes {
			t.Fatalf("usage %d stored bytes, want %d", u.Total.StoredBytes, maxBytes)
		}
		if c := counterTotal(t, f.s); c != u.Total {
			t.Errorf("counter %+v, exact usage %+v", c, u.Total)
		}
		for _, uri := range refused {
			if ok, err := f.s.Exists(ctx, uri); ok || err != nil {
				t.Errorf("refused upload %s exists (%v)", uri, err)
			}
		}
		if n := len(backendtest.Keys(t, f.b, blobRoot)); n != maxBytes/size {
			t.Errorf("%d blobs stored, want %d (refused uploads leave none)", n, maxBytes/size)
		}
		if n := f.logs.messages(quotaWarning); n != 1 {
			t.Fatalf("warning logged %d times, want once", n)
		}

		// A full store refuses before transferring anything, and changes
		// nothing.
		before := snapshot(t, f.b)
		_, err = f.s.UploadBytes(ctx, "artifact://s/late/log", []byte("x"), UploadOptions{})
		if !errors.Is(err, ErrStorageFull) {
			t.Fatalf("upload to a full store: %v", err)
		}
		if after := snapshot(t, f.b); !maps.Equal(before, after) {
			t.Fatalf("refused upload changed the backend")
		}

		// Falling below the threshold re-arms the warning; crossing it again
		// logs it again.
		n, err := f.s.DeleteByTask(ctx, "s", "w0")
		if err != nil {
			t.Fatal(err)
		}
		for w := 1; w < writers && n < 10; w++ {
			k, err := f.s.DeleteByTask(ctx, "s", fmt.Sprintf("w%d", w))
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		if c := counterTotal(t, f.s); c.StoredBytes >= 16_000 {
			t.Fatalf("after deleting %d artifacts the counter holds %d stored bytes", n, c.StoredBytes)
		}
		if f.logs.messages("store: usage fell below the quota warning threshold") != 1 {
			t.Errorf("the fall below the threshold was not logged once")
		}
		for i := 0; ; i++ {
			_, err := f.s.UploadBytes(ctx, fmt.Sprintf("artifact://s/again/log%d", i), bytes.Repeat([]byte("b"), size), UploadOptions{})
			if errors.Is(err, ErrStorageFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := f.logs.messages(quotaWarning); n != 2 {
			t.Errorf("warning logged %d times after the second crossing, want 2", n)
		}
		u, err = f.s.Usage(ctx)
		if err != nil || u.Total.StoredBytes != maxBytes {
			t.Errorf("usage after refilling %+v, %v", u.Total, err)
		}
	})
}

// TestQuotaSeveralStores fills a quota from several stores (hosts) on one
// bucket. Each store's own uploads never overshoot each other; across
// stores the documented bound holds: at most the uploads the other stores
// have in flight (checked, not yet counted).
func TestQuotaSeveralStores(t *testing.T) {
	ctx := context.Background()
	const (
		size, maxBytes    = 1000, 30_000
		stores, writers   = 3, 4
		each              = 5
		refresh           = time.Second
		overshootBoundMax = maxBytes + (stores-1)*writers*size
	)
	cfg := Config{Quota: QuotaConfig{MaxBytes: maxBytes, RefreshInterval: refresh}}
	f := newFixture(t, memEnv(), cfg, nil)
	all := []*Store{f.s}
	for i := 1; i < stores; i++ {
		c := cfg
		c.Now, c.Logger, c.WriterID = f.clock.Now, f.s.log, fmt.Sprintf("host-%d", i)
		s, err := New(ctx, f.b, f.locker, c)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	var (
		accepted atomic.Int64
		wg       sync.WaitGroup
	)
	for si, s := range all {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					f.clock.Advance(refresh) // every check reads the counter afresh
					uri := fmt.Sprintf("artifact://h%d/w%d/log%d", si, w, i)
					_, err := s.UploadBytes(ctx, uri, bytes.Repeat([]byte{'q'}, size), UploadOptions{})
					switch {
					case err == nil:
						accepted.Add(1)
					case !errors.Is(err, ErrStorageFull):
						t.Errorf("upload %s: %v", uri, err)
					}
				}
			})
		}
	}
	wg.Wait()
	u, err := f.s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Total.StoredBytes != accepted.Load()*size {
		t.Fatalf("usage %d, accepted uploads hold %d", u.Total.StoredBytes, accepted.Load()*size)
	}
	if u.Total.StoredBytes > overshootBoundMax {
		t.Fatalf("usage %d passed the quota %d by more than the in-flight bound %d", u.Total.StoredBytes, maxBytes, overshootBoundMax-maxBytes)
	}
	if u.Total.StoredBytes < maxBytes-stores*writers*size {
		t.Errorf("usage %d: the stores refused uploads that fitted", u.Total.StoredBytes)
	}
	if c := counterTotal(t, f.s); c != u.Total {
		t.Errorf("counter %+v, exact usage %+v", c, u.Total)
	}
	// Each store logs its own crossing at most once.
	if n := f.logs.messages(quotaWarning); n < 1 || n > stores {
		t.Errorf("warning logged %d times by %d stores", n, stores)
	}
}

// TestQuotaCounter covers the counter's life: created by counting an
// existing bucket, kept by every kind of write, reset by RecountUsage.
func TestQuotaCounter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{Versioning: true, MaxVersions: 2}, nil)
	for i := range 3 {
		mustUpload(t, f.s, "artifact://s/t/log", content(1, i), UploadOptions{})
		mustUpload(t, f.s, fmt.Sprintf("artifact://s/t%d/diff", i), content(2, i), UploadOptions{})
	}
	if keys := backendtest.Keys(t, f.b, usageRoot); len(keys) != 0 {
		t.Fatalf("a store without a quota wrote a counter: %v", keys)
	}
	// A store with a quota on the same bucket counts it once, at its first
	// upload.
	cfg := f.s.cfg
	cfg.Quota = QuotaConfig{MaxBytes: 1 << 20}
	q, err := New(ctx, f.b, f.locker, cfg)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		u, err := q.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := counterTotal(t, q); c != u.Total {
			t.Fatalf("%s: counter %+v, exact usage %+v", what, c, u.Total)
		}
	}
	mustUpload(t, q, "artifact://s/t/log", content(1, 9), UploadOptions{}) // prunes one version
	check("after counting and a pruning upload")
	mustUpload(t, q, "artifact://s/t/log", content(1, 9), UploadOptions{Tags: []string{"x"}}) // idempotent
	check("after an idempotent upload")
	if _, err := q.PruneVersions(ctx, "artifact://s/t/log", 1); err != nil {
		t.Fatal(err)
	}
	check("after PruneVersions")
	if err := q.Delete(ctx, "artifact://s/t0/diff"); err != nil {
		t.Fatal(err)
	}
	check("after Delete")
	if _, err := q.DeleteBySpec(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	check("after DeleteBySpec")
	if c := counterTotal(t, q); c != (UsageTotals{}) {
		t.Fatalf("empty store, counter %+v", c)
	}

	// Writes by a store without the quota leave the counter behind;
	// RecountUsage corrects it.
	mustUpload(t, f.s, "artifact://s/other/log", []byte("uncounted"), UploadOptions{})
	if c := counterTotal(t, q); c.StoredBytes != 0 {
		t.Fatalf("counter %+v", c)
	}
	rep, err := q.RecountUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.StoredBytes != int64(len("uncounted")) {
		t.Fatalf("recount %+v", rep.Total)
	}
	check("after RecountUsage")
}

// TestQuotaLargeUploadRefusedEarly: an upload of known size that cannot fit
// is refused before its content is transferred.
func TestQuotaLargeUploadRefusedEarly(t *testing.T) {
	ctx := context.Background()
	var fb *backendtest.Faulty
	f := newFixture(t, memEnv(), Config{Quota: QuotaConfig{MaxBytes: 1000}}, func(b backend.Backend) backend.Backend {
		fb = backendtest.NewFaulty(b)
		return fb
	})
	mustUpload(t, f.s, "artifact://s/t/log", make([]byte, 600), UploadOptions{})
	puts := fb.Calls(backendtest.OpPut)
	_, err := f.s.Upload(ctx, "artifact://s/t/diff", strings.NewReader(strings.Repeat("x", 500)), 500, UploadOptions{})
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("upload past the quota: %v", err)
	}
	if n := fb.Calls(backendtest.OpPut) - puts; n != 0 {
		t.Errorf("the refused upload made %d Puts", n)
	}
	// Unknown size: refused after the transfer, before the commit; its
	// blob is deleted.
	_, err = f.s.Upload(ctx, "artifact://s/t/diff", strings.NewReader(strings.Repeat("x", 500)), backend.SizeUnknown, UploadOptions{})
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("upload of unknown size past the quota: %v", err)
	}
	if keys := backendtest.Keys(t, f.b, blobPrefix(URI{Spec: "s", Task: "t", Type: "diff"})); len(keys) != 0 {
		t.Errorf("refused upload left blobs %v", keys)
	}
	if len(f.logs.failures("upload")) != 2 {
		t.Errorf("refused uploads logged %d times, want once each", len(f.logs.failures("upload")))
	}
}

func TestAdminConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"ARTIFACTSTORE_RETENTION_PERIODS":      "log=48h, trace=1h",
		"ARTIFACTSTORE_RETENTION_DEFAULT":      "720h",
		"ARTIFACTSTORE_RETENTION_EXEMPT_TAG":   "keep",
		"ARTIFACTSTORE_QUOTA_MAX_BYTES":        "1073741824",
		"ARTIFACTSTORE_QUOTA_WARN_RATIO":       "0.9",
		"ARTIFACTSTORE_QUOTA_REFRESH_INTERVAL": "250ms",
	}
	c, err := ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	r := c.Retention.WithDefaults()
	if r.Period(TypeLog) != 48*time.Hour || r.Period("trace") != time.Hour || r.Period(TypeDiff) != 30*day ||
		r.Period("other") != 720*time.Hour || r.ExemptTag != "keep" {
		t.Errorf("retention %+v", r)
	}
	if c.Quota != (QuotaConfig{MaxBytes: 1 << 30, WarnRatio: 0.9, RefreshInterval: 250 * time.Millisecond}) {
		t.Errorf("quota %+v", c.Quota)
	}
	for k, v := range map[string]string{
		"ARTIFACTSTORE_RETENTION_PERIODS": "log", "ARTIFACTSTORE_QUOTA_WARN_RATIO": "most",
		"ARTIFACTSTORE_QUOTA_MAX_BYTES": "-1", "ARTIFACTSTORE_RETENTION_DEFAULT": "-1h",
	} {
		if _, err := ConfigFromEnv(func(key string) (string, bool) { return v, key == k }); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}
