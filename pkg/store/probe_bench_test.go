package store

import (
	"context"
	"testing"
)

// BenchmarkOpenAndFirstWrite is what a CLI invocation pays before its
// work, on the real S3 server: "open" is New (what every read pays),
// "prepare-recorded" is New and the checks of a first write within a day
// of the bucket's probe record (the sequential checks), and
// "prepare-full" the same without a record (the race probe). See
// BENCHMARKS.md ("Opening a store").
func BenchmarkOpenAndFirstWrite(b *testing.B) {
	ctx := context.Background()
	be, _ := newBenchBackend(b)
	open := func() *Store {
		s, err := New(ctx, be, nil, Config{DisableLocking: true})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	prepare := func() {
		if err := open().PrepareWrites(ctx); err != nil {
			b.Fatal(err)
		}
	}
	ops := map[string]func(){
		"open":             func() { open() },
		"prepare-recorded": prepare,
		"prepare-full": func() {
			if err := be.Delete(ctx, probeRecordKey); err != nil {
				b.Fatal(err)
			}
			prepare()
		},
	}
	interleaved(b, ops, []string{"open", "prepare-recorded", "prepare-full"})
}
