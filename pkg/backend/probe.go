package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// ErrUnfencedWrites reports a backend that accepted a conditional Put it
// should have refused: it would let a writer whose lock expired overwrite a
// newer commit, so the store refuses it unless told to accept unfenced
// writes.
var ErrUnfencedWrites = errors.New("backend does not enforce conditional writes")

// ProbeConditionalPut proves that b enforces both conditions of PutOptions,
// using key as a scratch object that it deletes afterwards: an IfAbsent Put
// on an existing key must fail with ErrPreconditionFailed, and so must an
// IfMatch Put with a stale ETag, while an IfMatch Put with the current ETag
// must succeed. When a condition is ignored the error matches
// ErrUnfencedWrites; other failures are returned as they are.
func ProbeConditionalPut(ctx context.Context, b Backend, key string) (err error) {
	put := func(body string, opts PutOptions) (ObjectInfo, error) {
		return b.Put(ctx, key, bytes.NewReader([]byte(body)), int64(len(body)), opts)
	}
	first, err := put("probe-1", PutOptions{})
	if err != nil {
		return fmt.Errorf("probe conditional writes: %w", err)
	}
	defer func() {
		if derr := b.Delete(context.WithoutCancel(ctx), key); derr != nil && err == nil {
			err = fmt.Errorf("probe conditional writes: cleanup: %w", derr)
		}
	}()
	_, err = put("probe-2", PutOptions{IfAbsent: true})
	if err == nil {
		return fmt.Errorf("%w: a Put with IfAbsent replaced the existing object %q", ErrUnfencedWrites, key)
	}
	if !errors.Is(err, ErrPreconditionFailed) {
		return fmt.Errorf("probe conditional writes: if-absent put: %w", err)
	}
	second, err := put("probe-3", PutOptions{IfMatch: first.ETag})
	if err != nil {
		return fmt.Errorf("probe conditional writes: if-match put with the current ETag: %w", err)
	}
	if second.ETag == first.ETag {
		return fmt.Errorf("%w: the ETag of %q did not change when its content did", ErrUnfencedWrites, key)
	}
	_, err = put("probe-4", PutOptions{IfMatch: first.ETag})
	if err == nil {
		return fmt.Errorf("%w: a Put with a stale IfMatch ETag replaced the object %q", ErrUnfencedWrites, key)
	}
	if !errors.Is(err, ErrPreconditionFailed) {
		return fmt.Errorf("probe conditional writes: stale if-match put: %w", err)
	}
	return nil
}
