package store

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkStoreOps measures the administrative operations and the
// searches over 10,000 artifacts on the real S3 server (and Redis), the
// rig of bench_test.go. The store is populated once per run of this
// benchmark (its sub-benchmarks share it): 100 specs x 10 tasks x 10 types
// (diff, log, test and 7 custom types) of about 300 bytes, each tagged
// "batch-<spec mod 10>" and 1% of them "flaky" too, created 21 days before
// the clock of the measurements for specs 0-49 and 1 day before for specs
// 50-99; plus the spec "export" (10 tasks x 3 types x 1 MiB) for the export
// throughput. The store's Config.ManifestCacheEntries holds every manifest,
// so the searches and walks after the first are served by the listing plus
// the cache (a manifest is read only when its listed ETag changed); the
// *Cold variants open a new Store (empty cache) for each run, as a fresh
// process would. Searches by tag go through the tag index instead (list
// the tag's markers, read the candidates' manifests), cold or warm; the
// last sub-benchmarks measure what the index costs writers. See
// BENCHMARKS.md ("Store operations (10,000 artifacts)").
func BenchmarkStoreOps(b *testing.B) {
	const (
		specs, tasks = 100, 10
		concurrency  = 32
	)
	types := []string{TypeDiff, TypeLog, TypeTest, "trace", "coverage", "profile", "lint", "bench", "report", "plan"}
	clock := newFakeClock()
	t0 := clock.Now()
	cfg := Config{Now: clock.Now, ManifestCacheEntries: benchCacheEntries}
	rig := newBenchRig(b, cfg)
	s := rig.s
	ctx := context.Background()
	// coldStore opens another Store on the same bucket and lock: its
	// manifest cache is empty, like a fresh process's.
	coldStore := func(b *testing.B) *Store {
		c, err := New(ctx, s.b, s.locker, cfg)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}

	// Populate, Config.ListConcurrency uploads at a time.
	start := time.Now()
	// upload stores one artifact of the population; the caller sets the
	// clock to its creation time.
	upload := func(spec, task int, typ string) error {
		tags := []string{fmt.Sprintf("batch-%d", spec%10)}
		if (spec*tasks+task)%10 == 0 && typ == TypeTest {
			tags = append(tags, "flaky") // 1% of the artifacts
		}
		data := benchContent(200 + (spec*31+task*7)%200)
		uri := fmt.Sprintf("artifact://spec-%03d/task-%02d/%s", spec, task, typ)
		_, err := s.UploadBytes(ctx, uri, data, UploadOptions{Tags: tags, ContentType: "text/plain"})
		return err
	}
	populate := func(from, to int, created time.Time) {
		setClock(clock, created)
		n := (to - from) * tasks * len(types)
		err := s.parallel(ctx, n, func(ctx context.Context, i int) error {
			spec := from + i/(tasks*len(types))
			task := i / len(types) % tasks
			return upload(spec, task, types[i%len(types)])
		})
		if err != nil {
			b.Fatalf("populate: %v", err)
		}
	}
	populate(0, specs/2, t0)
	populate(specs/2, specs, t0.Add(20*day))
	big := benchContent(1 << 20)
	exportBytes := int64(0)
	err := s.parallel(ctx, tasks*3, func(ctx context.Context, i int) error {
		uri := fmt.Sprintf("artifact://export/task-%02d/%s", i/3, types[i%3])
		_, err := s.UploadBytes(ctx, uri, big, UploadOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("populate export: %v", err)
	}
	exportBytes = int64(tasks * 3 * len(big))
	now := t0.Add(21 * day)
	setClock(clock, now)
	b.Logf("populated %d artifacts in %v (%d uploads at once)", specs*tasks*len(types)+tasks*3, time.Since(start).Round(time.Millisecond), concurrency)

	b.Run("SearchSpecTask", func(b *testing.B) {
		i := 0
		for b.Loop() {
			f := Filter{Spec: fmt.Sprintf("spec-%03d", i%specs), Task: fmt.Sprintf("task-%02d", i%tasks)}
			mds, err := s.Search(ctx, f)
			if err != nil || len(mds) != len(types) {
				b.Fatalf("search %+v: %d results, %v", f, len(mds), err)
			}
			i++
		}
	})
	b.Run("SearchTag", func(b *testing.B) {
		for b.Loop() {
			mds, err := s.Search(ctx, Filter{Tags: []string{"flaky"}})
			if err != nil || len(mds) != specs*tasks/10 {
				b.Fatalf("search by tag: %d results, %v", len(mds), err)
			}
		}
	})
	b.Run("SearchTagCold", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			c := coldStore(b)
			b.StartTimer()
			mds, err := c.Search(ctx, Filter{Tags: []string{"flaky"}})
			if err != nil || len(mds) != specs*tasks/10 {
				b.Fatalf("search by tag: %d results, %v", len(mds), err)
			}
		}
	})
	b.Run("SearchTagType", func(b *testing.B) {
		for b.Loop() {
			mds, err := s.Search(ctx, Filter{Type: TypeLog, Tags: []string{"batch-3"}})
			if err != nil || len(mds) != specs*tasks/10 {
				b.Fatalf("search by tag and type: %d results, %v", len(mds), err)
			}
		}
	})
	b.Run("Usage", func(b *testing.B) {
		for b.Loop() {
			u, err := s.Usage(ctx)
			if err != nil || u.Total.Artifacts != int64(specs*tasks*len(types)+tasks*3) {
				b.Fatalf("usage %+v, %v", u.Total, err)
			}
		}
	})
	b.Run("UsageCold", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			c := coldStore(b)
			b.StartTimer()
			u, err := c.Usage(ctx)
			if err != nil || u.Total.Artifacts != int64(specs*tasks*len(types)+tasks*3) {
				b.Fatalf("usage %+v, %v", u.Total, err)
			}
		}
	})
	b.Run("ExportSpec", func(b *testing.B) {
		b.SetBytes(exportBytes)
		for b.Loop() {
			rep, err := s.Export(ctx, io.Discard, ExportOptions{Spec: "export"})
			if err != nil || rep.Bytes != exportBytes {
				b.Fatalf("export %+v, %v", rep, err)
			}
		}
	})
	b.Run("ExportSpecStored", func(b *testing.B) {
		b.SetBytes(exportBytes)
		for b.Loop() {
			rep, err := s.Export(ctx, io.Discard, ExportOptions{Spec: "export", NoCompression: true})
			if err != nil || rep.Bytes != exportBytes {
				b.Fatalf("export %+v, %v", rep, err)
			}
		}
	})
	b.Run("ExportSmallSpec", func(b *testing.B) {
		for b.Loop() {
			rep, err := s.Export(ctx, io.Discard, ExportOptions{Spec: "spec-077"})
			if err != nil || rep.Artifacts != tasks*len(types) {
				b.Fatalf("export %+v, %v", rep, err)
			}
		}
	})
	// Specs 0-49 hold the expired versions: log (7 days) and test (14
	// days) of each task, 20 per spec, 1,000 in all.
	b.Run("CleanupDryRun", func(b *testing.B) {
		for b.Loop() {
			rep, err := s.CleanupExpired(ctx, CleanupOptions{DryRun: true})
			if err != nil || rep.Versions != specs/2*tasks*2 {
				b.Fatalf("dry run %d versions, %v", rep.Versions, err)
			}
		}
	})
	// The real cleanup runs on one spec per iteration (20 deletions under
	// the lock, of its 100 artifacts); the next spec is used each time
	// (across the framework's runs of the sub-benchmark), and a spec's
	// expired artifacts are uploaded again, timer stopped, before it is
	// reused.
	next := 0
	b.Run("CleanupSpec", func(b *testing.B) {
		for range b.N {
			spec := next % (specs / 2)
			reuse := next >= specs/2
			next++
			if reuse {
				b.StopTimer()
				setClock(clock, t0)
				for task := range tasks {
					for _, typ := range []string{TypeLog, TypeTest} {
						if err := upload(spec, task, typ); err != nil {
							b.Fatal(err)
						}
					}
				}
				setClock(clock, now)
				b.StartTimer()
			}
			rep, err := s.CleanupExpired(ctx, CleanupOptions{Filter: Filter{Spec: fmt.Sprintf("spec-%03d", spec)}})
			if err != nil || rep.Versions != tasks*2 || rep.Artifacts != tasks*2 {
				b.Fatalf("cleanup of spec %d: %+v, %v", spec, rep, err)
			}
		}
		b.ReportMetric(float64(tasks*2), "deletions/op")
	})
	b.Run("VerifyAll", func(b *testing.B) {
		for b.Loop() {
			rep, err := s.VerifyAll(ctx, VerifyOptions{Concurrency: 32})
			if err != nil || !rep.OK() {
				b.Fatalf("verify %+v, %v", rep, err)
			}
		}
	})
	b.Run("ReconcileDryRun", func(b *testing.B) {
		for b.Loop() {
			rep, err := s.Reconcile(ctx, ReconcileOptions{})
			if err != nil || len(rep.OrphanBlobs) != 0 || len(rep.MissingBlobs) != 0 ||
				len(rep.MissingTagMarkers) != 0 || len(rep.StaleTagMarkers) != 0 {
				b.Fatalf("reconcile %+v, %v", rep, err)
			}
		}
	})
	// The cost of the tag index to writers, on artifacts of specs 50-99
	// (not expired, type diff: no other sub-benchmark depends on them).
	// An upload that keeps the artifact's tags writes no marker; adding a
	// tag writes one before the commit, removing it deletes one under the
	// lock after the commit.
	b.Run("UploadSameTags", func(b *testing.B) {
		i := 0
		for b.Loop() {
			spec := specs/2 + i%(specs/2)
			uri := fmt.Sprintf("artifact://spec-%03d/task-%02d/%s", spec, i/(specs/2)%tasks, TypeDiff)
			tags := []string{fmt.Sprintf("batch-%d", spec%10)}
			data := benchContent(300 + i%50)
			if _, err := s.UploadBytes(ctx, uri, data, UploadOptions{Tags: tags, ContentType: "text/plain"}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("AddTag", func(b *testing.B) {
		i := 0
		for b.Loop() {
			uri := fmt.Sprintf("artifact://spec-%03d/task-%02d/%s", specs/2+i%(specs/2), i/(specs/2)%tasks, TypeDiff)
			if _, err := s.AddTags(ctx, uri, "bench-added"); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if _, err := s.RemoveTags(ctx, uri, "bench-added"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			i++
		}
	})
	b.Run("RemoveTag", func(b *testing.B) {
		i := 0
		for b.Loop() {
			uri := fmt.Sprintf("artifact://spec-%03d/task-%02d/%s", specs/2+i%(specs/2), i/(specs/2)%tasks, TypeDiff)
			b.StopTimer()
			if _, err := s.AddTags(ctx, uri, "bench-removed"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := s.RemoveTags(ctx, uri, "bench-removed"); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// benchCacheEntries is Config.ManifestCacheEntries in BenchmarkStoreOps:
// room for every manifest of the population.
const benchCacheEntries = 16 << 10
