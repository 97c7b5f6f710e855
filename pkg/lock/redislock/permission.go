package redislock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// PermissionHook is a go-redis hook that marks the replies refusing the
// client's credentials or rights (WRONGPASS, NOAUTH, NOPERM, the older
// "ERR invalid password" / "ERR AUTH ...", and "ERR Protocol error:
// unauthenticated ..." that a server with a password answers to a large
// command sent without AUTH) with lock.ErrPermissionDenied,
// the reply kept in the chain. The locker's errors then match
// lock.ErrPermissionDenied and Acquire fails at once instead of waiting for
// a service that will never accept it. Clients made by Config.NewClients
// (and so by Open) have it; add it to clients given to New with
// client.AddHook(redislock.PermissionHook{}).
type PermissionHook struct{}

var _ redis.Hook = PermissionHook{}

// DialHook implements redis.Hook; dialling sends no credentials.
func (PermissionHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook. A new connection authenticates
// inside the first command that needs it, so a refused password shows here.
func (PermissionHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if perr := permissionError(err); perr != err {
			cmd.SetErr(perr)
			return perr
		}
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (PermissionHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if perr := permissionError(cmd.Err()); perr != cmd.Err() {
				cmd.SetErr(perr)
			}
		}
		return permissionError(err)
	}
}

// permissionReplies start the Redis error replies that refuse credentials
// or rights.
var permissionReplies = [...]string{
	"WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password", "ERR AUTH", "ERR Protocol error: unauthenticated",
}

// permissionError returns err marked with lock.ErrPermissionDenied when it
// is a Redis reply refusing credentials or rights, otherwise err itself.
func permissionError(err error) error {
	var re redis.Error
	if err == nil || errors.Is(err, lock.ErrPermissionDenied) || !errors.As(err, &re) {
		return err
	}
	for _, p := range permissionReplies {
		if strings.HasPrefix(re.Error(), p) {
			return fmt.Errorf("%w: %w", lock.ErrPermissionDenied, err)
		}
	}
	return err
}
