package telemetry

import (
	"context"
	"errors"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// kinds names the sentinels of packages backend and lock, most specific
// first: a lock timeout ended by a deadline is a lock_timeout, not a
// deadline_exceeded.
var kinds = [...]struct {
	name string
	err  error
}{
	{"lock_timeout", lock.ErrTimeout},
	{"locked", lock.ErrLocked},
	{"lease_lost", lock.ErrLeaseLost},
	{"lock_unavailable", lock.ErrUnavailable},
	{"not_held", lock.ErrNotHeld},
	{"not_found", backend.ErrNotFound},
	{"precondition_failed", backend.ErrPreconditionFailed},
	{"invalid_key", backend.ErrInvalidKey},
	{"invalid_key", lock.ErrInvalidKey},
	{"invalid_argument", backend.ErrInvalidArgument},
	{"permission_denied", backend.ErrPermissionDenied},
	{"storage_full", backend.ErrStorageFull},
	{"too_large", backend.ErrTooLarge},
	{"size_mismatch", backend.ErrSizeMismatch},
	{"closed", backend.ErrClosed},
	{"closed", lock.ErrClosed},
	{"unsupported", errors.ErrUnsupported},
	{"canceled", context.Canceled},
	{"deadline_exceeded", context.DeadlineExceeded},
	{"transient", backend.ErrTransient},
}

// ErrorKind names the kind of err for the "kind" label of
// artifactstore_operation_errors_total and the error.type span attribute:
// the snake_case name of the first sentinel of packages backend and lock
// (or a context error, or errors.ErrUnsupported) it matches, in this
// order: lock_timeout, locked, lease_lost, lock_unavailable, not_held,
// not_found, precondition_failed, invalid_key, invalid_argument,
// permission_denied, storage_full, too_large, size_mismatch, closed,
// unsupported, canceled, deadline_exceeded, transient; "other" when it
// matches none, "" for nil. Package store checks its own sentinels
// (integrity, conflict, unknown_outcome) before these.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}
