package memlock_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
)

func Example() {
	ctx := context.Background()
	locker, err := memlock.New(lock.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	const key = "artifact://spec-1/task-7/diff"

	lease, err := locker.Acquire(ctx, key)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("fence:", lease.Fence())

	// A second writer is refused while the lease is held.
	_, err = locker.TryAcquire(ctx, key)
	fmt.Println("second writer locked out:", errors.Is(err, lock.ErrLocked))

	st, err := locker.Inspect(ctx, key)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held:", st.Held, "fence:", st.Fence)

	if err := lease.Release(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// Every later lease of the key has a greater fence.
	next, err := locker.TryAcquire(ctx, key)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer next.Release(ctx)
	fmt.Println("next fence:", next.Fence())

	// Output:
	// fence: 1
	// second writer locked out: true
	// held: true fence: 1
	// next fence: 2
}
