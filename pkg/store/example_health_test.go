package store_test

import (
	"context"
	"fmt"

	"github.com/necrocode/artifactstore/pkg/store"
)

// A store checks conditional writes at its first write, not when it opens;
// Ping reports where the check stands, writing nothing.
func ExampleStore_Ping() {
	ctx := context.Background()
	s, err := newStore(store.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := s.Ping(ctx)
	fmt.Println("healthy:", err == nil, "lock checked:", h.LockChecked, "probe:", h.Probe.State)

	if err := s.PrepareWrites(ctx); err != nil { // what the first write would run
		fmt.Println(err)
		return
	}
	h, err = s.Ping(ctx)
	fmt.Println("healthy:", err == nil, "probe:", h.Probe.State, "recorded:", !h.ProbeRecord.IsZero(), "tag index ready:", h.TagIndexReady)
	// Output:
	// healthy: true lock checked: true probe: not run
	// healthy: true probe: passed recorded: true tag index ready: true
}
