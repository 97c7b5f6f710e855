package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/necrocode/artifactstore/pkg/store"
)

// A read-modify-write under the artifact's lock: no other writer commits
// between the read and the upload, and the upload inside reuses the held
// lock (it would otherwise wait for it).
func ExampleStore_WithLock() {
	ctx := context.Background()
	s, err := newStore(store.Config{Versioning: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	const uri = "artifact://spec-1/task-7/log"
	if _, err := s.UploadBytes(ctx, uri, []byte("line 1\n"), store.UploadOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	err = s.WithLock(ctx, uri, store.LockOptions{Timeout: 10 * time.Second}, func(ctx context.Context) error {
		st, err := s.IsLocked(ctx, uri)
		if err != nil {
			return err
		}
		fmt.Println("locked:", st.Held)
		old, _, err := s.Download(ctx, uri)
		if err != nil {
			return err
		}
		md, err := s.UploadBytes(ctx, uri, append(old, "line 2\n"...), store.UploadOptions{})
		if err != nil {
			return err // ctx is cancelled, and the upload refused, if the lock is lost
		}
		fmt.Println("appended:", md.URI)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, _ := s.IsLocked(ctx, uri)
	fmt.Println("locked after:", st.Held)
	data, _, _ := s.Download(ctx, uri)
	fmt.Printf("%q\n", data)
	// Output:
	// locked: true
	// appended: artifact://spec-1/task-7/log?version=2
	// locked after: false
	// "line 1\nline 2\n"
}
