package redislock

import (
	"context"
	"fmt"
	"log/slog"
)

// GoRedisLogger routes go-redis's own log lines (failed dials, dropped
// pub/sub connections, ...) into a slog.Logger, at Warn level with
// component=go-redis. Install it with redis.SetLogger.
//
// go-redis has a single logger per process (redis.SetLogger; v9 has no
// per-client option), and it writes to stderr by default. This package never
// sets it, since a library must not change process-wide state: programs do,
// once, in main (cmd/artifacts and cmd/demo route it into their own logger),
// and the test helpers of internal/testenv silence it.
type GoRedisLogger struct {
	// Logger receives the lines; nil discards them.
	Logger *slog.Logger
}

// Printf implements go-redis's logging interface.
func (g GoRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if g.Logger == nil || !g.Logger.Enabled(ctx, slog.LevelWarn) {
		return
	}
	g.Logger.Log(ctx, slog.LevelWarn, fmt.Sprintf(format, v...), "component", "go-redis")
}
