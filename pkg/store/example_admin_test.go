package store_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// manualClock is a clock the examples move by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openAdminStore opens a store on the in-memory backend and lock.
func openAdminStore(cfg store.Config) (*store.Store, error) {
	locker, err := memlock.New(lock.Config{})
	if err != nil {
		return nil, err
	}
	return store.New(context.Background(), membackend.New(), locker, cfg)
}

func ExampleStore_CleanupExpired() {
	ctx := context.Background()
	clock := &manualClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s, err := openAdminStore(store.Config{Now: clock.Now})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, uri := range []string{"artifact://spec-1/task-1/log", "artifact://spec-1/task-1/diff", "artifact://spec-1/task-2/log"} {
		opts := store.UploadOptions{}
		if uri == "artifact://spec-1/task-2/log" {
			opts.Tags = []string{"retain"} // the default exempt tag
		}
		if _, err := s.UploadBytes(ctx, uri, []byte("content of "+uri), opts); err != nil {
			fmt.Println(err)
			return
		}
	}

	clock.Advance(10 * 24 * time.Hour) // logs are kept 7 days, diffs 30
	rep, err := s.CleanupExpired(ctx, store.CleanupOptions{DryRun: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("dry run: %d artifact(s), %d bytes\n", rep.Artifacts, rep.Bytes)
	for _, md := range rep.Deleted {
		fmt.Println("would delete", md.URI)
	}
	ok, _ := s.Exists(ctx, "artifact://spec-1/task-1/log")
	fmt.Println("still there:", ok)
	// Output:
	// dry run: 1 artifact(s), 39 bytes
	// would delete artifact://spec-1/task-1/log?version=1
	// still there: true
}

func ExampleStore_Usage() {
	ctx := context.Background()
	s, err := openAdminStore(store.Config{Quota: store.QuotaConfig{MaxBytes: 100}})
	if err != nil {
		fmt.Println(err)
		return
	}
	uploads := map[string]int{
		"artifact://spec-1/task-1/log":  40,
		"artifact://spec-1/task-1/diff": 10,
		"artifact://spec-2/task-1/log":  30,
	}
	for _, uri := range []string{"artifact://spec-1/task-1/log", "artifact://spec-1/task-1/diff", "artifact://spec-2/task-1/log"} {
		if _, err := s.UploadBytes(ctx, uri, bytes.Repeat([]byte("x"), uploads[uri]), store.UploadOptions{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	u, err := s.Usage(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("total: %d artifacts, %d bytes\n", u.Total.Artifacts, u.Total.StoredBytes)
	fmt.Printf("spec-1: %d bytes, spec-2: %d bytes\n", u.BySpec["spec-1"].StoredBytes, u.BySpec["spec-2"].StoredBytes)
	fmt.Printf("log: %d bytes, diff: %d bytes\n", u.ByType["log"].StoredBytes, u.ByType["diff"].StoredBytes)

	// 80 of 100 bytes are used: 30 more do not fit.
	_, err = s.UploadBytes(ctx, "artifact://spec-2/task-2/test", bytes.Repeat([]byte("x"), 30), store.UploadOptions{})
	fmt.Println("storage full:", errors.Is(err, store.ErrStorageFull))
	// Output:
	// total: 3 artifacts, 80 bytes
	// spec-1: 50 bytes, spec-2: 30 bytes
	// log: 70 bytes, diff: 10 bytes
	// storage full: true
}

func ExampleStore_Export() {
	ctx := context.Background()
	s, err := openAdminStore(store.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, uri := range []string{"artifact://spec-1/task-1/log", "artifact://spec-1/task-2/test", "artifact://spec-2/task-1/log"} {
		if _, err := s.UploadBytes(ctx, uri, []byte("content"), store.UploadOptions{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	var buf bytes.Buffer
	rep, err := s.Export(ctx, &buf, store.ExportOptions{Spec: "spec-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rep.Artifacts, "artifacts,", rep.Bytes, "bytes")
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range zr.File {
		fmt.Println(f.Name)
	}
	// Output:
	// 2 artifacts, 14 bytes
	// spec-1/task-1/log
	// spec-1/task-1/log@metadata.json
	// spec-1/task-2/test
	// spec-1/task-2/test@metadata.json
}
