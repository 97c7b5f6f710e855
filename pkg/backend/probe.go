package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// ErrUnfencedWrites reports a backend that accepted a conditional Put it
// should have refused: it would let a writer whose lock expired overwrite a
// newer commit, so the store refuses it unless told to accept unfenced
// writes.
var ErrUnfencedWrites = errors.New("backend does not enforce conditional writes")

// probeRacers is how many conditional Puts the probes race on one key.
const probeRacers = 32

// ProbeConditionalPut proves that b enforces both conditions of PutOptions,
// one request at a time and under contention. It uses scratch objects
// whose keys are key and key followed by "-missing", "-create" and
// "-match" (never key+"/...": on some servers a key cannot also be a
// folder), and deletes them afterwards, on a context detached from ctx's
// cancellation. It makes the checks of ProbeConditionalPutSequential, then
// checks that:
//
//   - of 32 concurrent IfAbsent Puts of one missing key exactly one wins,
//     and of 32 concurrent IfMatch Puts against the same current ETag
//     exactly one wins; the others fail with ErrPreconditionFailed (or,
//     like S3's 409 ConditionalRequestConflict, with a transient error),
//     and the object then holds the winner's content.
//
// When a condition is not enforced the error matches ErrUnfencedWrites and
// says what was seen, for example "7 of 32 concurrent if-absent puts won".
// Other failures are returned as they are; a race in which no Put won and
// some failed with transient errors proves nothing either way, and its
// error matches ErrTransient. The whole probe sends about 70 requests.
func ProbeConditionalPut(ctx context.Context, b Backend, key string) error {
	return probeConditionalPut(ctx, b, key, true)
}

// ProbeConditionalPutSequential makes the one-request-at-a-time checks of
// ProbeConditionalPut (about ten requests, no race), on the scratch objects
// key and key+"-missing", deleted afterwards. It checks that:
//
//   - an IfAbsent Put on an existing key fails with ErrPreconditionFailed;
//   - an IfMatch Put with the current ETag succeeds and changes the ETag,
//     and one with a stale ETag then fails with ErrPreconditionFailed;
//   - an IfMatch Put on a missing key fails with ErrPreconditionFailed
//     and creates nothing.
//
// It catches a server that ignores the conditions, not one that checks
// them without atomicity: only the races of ProbeConditionalPut do. Errors
// are those of ProbeConditionalPut.
func ProbeConditionalPutSequential(ctx context.Context, b Backend, key string) error {
	return probeConditionalPut(ctx, b, key, false)
}

func probeConditionalPut(ctx context.Context, b Backend, key string, races bool) (err error) {
	// scratch holds the keys a Put was sent for, to delete afterwards.
	var scratch []string
	defer func() {
		if cerr := cleanup(ctx, b, scratch...); cerr != nil && err == nil {
			err = fmt.Errorf("probe conditional writes: %w", cerr)
		}
	}()
	put := func(key, body string, opts PutOptions) (ObjectInfo, error) {
		if !slices.Contains(scratch, key) {
			scratch = append(scratch, key)
		}
		return b.Put(ctx, key, bytes.NewReader([]byte(body)), int64(len(body)), opts)
	}
	missingKey, createKey, matchKey := key+"-missing", key+"-create", key+"-match"

	// One request at a time.
	first, err := put(key, "probe-1", PutOptions{})
	if err != nil {
		return fmt.Errorf("probe conditional writes: %w", err)
	}
	_, err = put(key, "probe-2", PutOptions{IfAbsent: true})
	if err == nil {
		return fmt.Errorf("%w: a Put with IfAbsent replaced the existing object %q", ErrUnfencedWrites, key)
	}
	if !errors.Is(err, ErrPreconditionFailed) {
		return fmt.Errorf("probe conditional writes: if-absent put: %w", err)
	}
	second, err := put(key, "probe-3", PutOptions{IfMatch: first.ETag})
	if err != nil {
		return fmt.Errorf("probe conditional writes: if-match put with the current ETag: %w", err)
	}
	if second.ETag == first.ETag {
		return fmt.Errorf("%w: the ETag of %q did not change when its content did", ErrUnfencedWrites, key)
	}
	_, err = put(key, "probe-4", PutOptions{IfMatch: first.ETag})
	if err == nil {
		return fmt.Errorf("%w: a Put with a stale IfMatch ETag replaced the object %q", ErrUnfencedWrites, key)
	}
	if !errors.Is(err, ErrPreconditionFailed) {
		return fmt.Errorf("probe conditional writes: stale if-match put: %w", err)
	}
	_, err = put(missingKey, "probe-5", PutOptions{IfMatch: second.ETag})
	if err == nil {
		return fmt.Errorf("%w: a Put with IfMatch created the missing object %q", ErrUnfencedWrites, missingKey)
	}
	if !errors.Is(err, ErrPreconditionFailed) {
		return fmt.Errorf("probe conditional writes: if-match put on a missing key: %w", err)
	}
	if _, serr := b.Stat(ctx, missingKey); serr == nil {
		return fmt.Errorf("%w: a Put with IfMatch on the missing key %q failed (%v) but created the object", ErrUnfencedWrites, missingKey, err)
	} else if !errors.Is(serr, ErrNotFound) {
		return fmt.Errorf("probe conditional writes: %w", serr)
	}

	if !races {
		return nil
	}

	// Under contention.
	scratch = append(scratch, createKey)
	if err := probeRace(ctx, b, createKey, "if-absent", PutOptions{IfAbsent: true}); err != nil {
		return err
	}
	base, err := put(matchKey, "probe-base", PutOptions{})
	if err != nil {
		return fmt.Errorf("probe conditional writes: %w", err)
	}
	return probeRace(ctx, b, matchKey, "if-match", PutOptions{IfMatch: base.ETag})
}

// probeRace starts probeRacers Puts of key with opts at once, each with its
// own content, and checks that exactly one won and that the object holds
// its content.
func probeRace(ctx context.Context, b Backend, key, what string, opts PutOptions) error {
	prefix := "probe-" + what + "-"
	body := func(i int) string { return fmt.Sprintf("%s%02d", prefix, i) }
	var (
		mu        sync.Mutex
		wins      []int
		winInfo   ObjectInfo
		refused   int
		transient []error
		other     error
		start     = make(chan struct{})
		wg        sync.WaitGroup
	)
	for i := range probeRacers {
		wg.Go(func() {
			<-start
			data := body(i)
			info, err := b.Put(ctx, key, bytes.NewReader([]byte(data)), int64(len(data)), opts)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, i)
				winInfo = info
			case errors.Is(err, ErrPreconditionFailed):
				refused++
			case IsTransient(err):
				transient = append(transient, err)
			case other == nil:
				other = err
			}
		})
	}
	close(start)
	wg.Wait()
	if other != nil {
		return fmt.Errorf("probe conditional writes: concurrent %s puts: %w", what, other)
	}
	if len(wins) > 1 {
		return fmt.Errorf("%w: %d of %d concurrent %s puts won (%d refused, %d failed with transient errors)",
			ErrUnfencedWrites, len(wins), probeRacers, what, refused, len(transient))
	}
	stored, info, err := readAll(ctx, b, key)
	if err != nil && !(len(wins) == 0 && errors.Is(err, ErrNotFound)) {
		return fmt.Errorf("probe conditional writes: read back after concurrent %s puts: %w", what, err)
	}
	if len(wins) == 0 {
		if len(transient) > 0 {
			return fmt.Errorf("probe conditional writes: inconclusive: none of %d concurrent %s puts won, %d were refused and %d failed with transient errors: %w",
				probeRacers, what, refused, len(transient), transient[0])
		}
		if err == nil && strings.HasPrefix(stored, prefix) {
			return fmt.Errorf("%w: all %d concurrent %s puts were refused, but the object then held %q",
				ErrUnfencedWrites, probeRacers, what, stored)
		}
		return fmt.Errorf("probe conditional writes: none of %d concurrent %s puts won: all were refused with ErrPreconditionFailed", probeRacers, what)
	}
	if want := body(wins[0]); stored != want || info.ETag != winInfo.ETag {
		return fmt.Errorf("%w: concurrent %s put %d won with ETag %q, but the object then held %q with ETag %q: a losing put overwrote it",
			ErrUnfencedWrites, what, wins[0], winInfo.ETag, stored, info.ETag)
	}
	return nil
}

// ProbeConditionalDelete reports whether b enforces the condition of
// ConditionalDeleter.DeleteIfMatch. It is true only when b implements
// ConditionalDeleter (the decorators Retrying and backendtest.Faulty
// always do, and answer errors.ErrUnsupported when what they wrap does
// not: that is a false), and on the scratch object key+"-delete":
//
//   - a DeleteIfMatch of the missing key fails with ErrNotFound;
//   - a DeleteIfMatch with a stale ETag fails with ErrPreconditionFailed
//     and leaves the object there, unchanged;
//   - a DeleteIfMatch with the current ETag deletes it.
//
// A backend that behaves otherwise (an S3 server that accepts If-Match on
// DELETE and deletes anyway, one that answers a missing key with success)
// gets false with a nil error: the capability is unusable, which is an
// answer, not a failure. The error is for a probe that could not finish
// (the backend failed, ctx ended). The scratch object is deleted
// afterwards, on a context detached from ctx's cancellation.
func ProbeConditionalDelete(ctx context.Context, b Backend, key string) (ok bool, err error) {
	cd, isCD := b.(ConditionalDeleter)
	if !isCD {
		return false, nil
	}
	scratch := key + "-delete"
	written := false
	defer func() {
		if !written {
			return
		}
		if cerr := cleanup(ctx, b, scratch); cerr != nil && err == nil {
			ok, err = false, fmt.Errorf("probe conditional deletes: %w", cerr)
		}
	}()
	put := func(body string) (ObjectInfo, error) {
		written = true
		return b.Put(ctx, scratch, bytes.NewReader([]byte(body)), int64(len(body)), PutOptions{})
	}
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("probe conditional deletes: %w", err)
	}

	// A missing key.
	err = cd.DeleteIfMatch(ctx, scratch, "probe-etag")
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return false, nil
	case err == nil, errors.Is(err, ErrPreconditionFailed):
		return false, nil // a missing key must be ErrNotFound
	case !errors.Is(err, ErrNotFound):
		return fail(err)
	}

	// A stale ETag.
	stale, err := put("probe-delete-1")
	if err != nil {
		return fail(err)
	}
	current, err := put("probe-delete-2")
	if err != nil {
		return fail(err)
	}
	if stale.ETag == current.ETag {
		return fail(fmt.Errorf("the ETag of %q did not change when its content did", scratch))
	}
	err = cd.DeleteIfMatch(ctx, scratch, stale.ETag)
	switch {
	case err == nil:
		return false, nil // deleted with a stale ETag
	case errors.Is(err, errors.ErrUnsupported):
		return false, nil
	case !errors.Is(err, ErrPreconditionFailed):
		return fail(err)
	}
	info, err := b.Stat(ctx, scratch)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil // refused, but deleted anyway
	case err != nil:
		return fail(err)
	case info.ETag != current.ETag:
		return false, nil
	}

	// The current ETag.
	err = cd.DeleteIfMatch(ctx, scratch, current.ETag)
	switch {
	case errors.Is(err, ErrPreconditionFailed), errors.Is(err, ErrNotFound):
		return false, nil // the current ETag does not match
	case err != nil:
		return fail(err)
	}
	_, err = b.Stat(ctx, scratch)
	switch {
	case err == nil:
		return false, nil // reported deleted, still there
	case !errors.Is(err, ErrNotFound):
		return fail(err)
	}
	return true, nil
}

// cleanup deletes the scratch objects of a probe on a context that ctx's
// cancellation does not end.
func cleanup(ctx context.Context, b Backend, keys ...string) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readAll returns the content and info of the object under key.
func readAll(ctx context.Context, b Backend, key string) (string, ObjectInfo, error) {
	rc, info, err := b.Get(ctx, key)
	if err != nil {
		return "", ObjectInfo{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return "", ObjectInfo{}, err
	}
	return string(data), info, nil
}
