package store

import (
	"context"
	"errors"

	"github.com/necrocode/artifactstore/pkg/telemetry"
)

// begin starts the operation op on uri (empty for operations on many
// artifacts): its span, a child of ctx's, rides on the returned context,
// so the lock and backend calls made with it are its children (see
// Config.Telemetry). end logs a failure once (logResult), then ends the
// span and records the operation's metrics.
//
//	ctx, end := s.begin(ctx, "delete", uri)
//	defer func() { end(err) }()
func (s *Store) begin(ctx context.Context, op, uri string) (_ context.Context, end func(error)) {
	ctx, o := s.tel.Start(ctx, op, uri)
	return ctx, func(err error) {
		s.logResult(ctx, op, uri, err)
		o.End(err, errorKind(err))
	}
}

// retried reports one of the store's own retries (op "download",
// "blob-upload" or "read-back") like the backend decorator's: to
// Config.Retry.OnRetry and the telemetry.
func (s *Store) retried(ctx context.Context, op string, retry int, err error) {
	if s.onRetry != nil {
		s.onRetry(ctx, op, retry, err)
	}
}

// errorKind names err's kind for the metrics and spans: the store's own
// sentinels first (a missing blob is an integrity failure before it is a
// not found, a refused commit a conflict before a lost lease), then those
// of packages backend and lock (telemetry.ErrorKind).
func errorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrIntegrity):
		return "integrity"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrUnknownOutcome):
		return "unknown_outcome"
	}
	return telemetry.ErrorKind(err)
}
