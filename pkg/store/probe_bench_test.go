package store

import (
	"context"
	"testing"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
)

// BenchmarkOpenAndFirstWrite is what a CLI invocation pays before its
// work, on the real S3 server: "open" is New (what every read pays),
// "prepare-recorded" is New and the checks of a first write within a day
// of the bucket's probe record (the sequential checks), and
// "prepare-full" the same without a record (the race probe). See
// BENCHMARKS.md ("Opening a store").
func BenchmarkOpenAndFirstWrite(b *testing.B) {
	ctx := context.Background()
	srv := testenv.StartS3(b)
	be, err := s3backend.New(ctx, s3backend.Config{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UseSSL: srv.UseSSL, CreateBucket: true,
	})
	if err != nil {
		b.Fatalf("s3backend: %v", err)
	}
	b.Cleanup(func() { _ = be.Close() })
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
