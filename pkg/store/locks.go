package store

import (
	"context"
	"fmt"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// IsLocked reports the state of the artifact's lock (who holds it, until
// when). It needs a locker that implements lock.Inspector; otherwise, and
// when locking is disabled, the error matches ErrUnsupported.
func (s *Store) IsLocked(ctx context.Context, uri string) (st lock.Status, err error) {
	ctx, end := s.begin(ctx, "is-locked", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return lock.Status{}, err
	}
	in, ok := s.locker.(lock.Inspector)
	if !ok {
		return lock.Status{}, fmt.Errorf("inspect lock of %s: %w", u.Artifact(), ErrUnsupported)
	}
	st, err = in.Inspect(ctx, lockKey(u))
	if err != nil {
		return lock.Status{}, fmt.Errorf("inspect lock of %s: %w", u.Artifact(), err)
	}
	return st, nil
}

// ForceUnlock breaks the artifact's lock whoever holds it, for recovery,
// and returns the state it found. The broken holder's commit is then
// refused (ErrConflict): it cannot overwrite anything committed after it.
// It needs a locker that implements lock.ForceUnlocker; otherwise, and when
// locking is disabled, the error matches ErrUnsupported.
func (s *Store) ForceUnlock(ctx context.Context, uri string) (st lock.Status, err error) {
	ctx, end := s.begin(ctx, "force-unlock", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return lock.Status{}, err
	}
	fu, ok := s.locker.(lock.ForceUnlocker)
	if !ok {
		return lock.Status{}, fmt.Errorf("force unlock of %s: %w", u.Artifact(), ErrUnsupported)
	}
	st, err = fu.ForceUnlock(ctx, lockKey(u))
	if err != nil {
		return lock.Status{}, fmt.Errorf("force unlock of %s: %w", u.Artifact(), err)
	}
	s.log.Warn("store: lock broken by ForceUnlock", "uri", u.Artifact().String(), "held", st.Held, "holder", st.Holder.String(), "fence", st.Fence)
	return st, nil
}
