//go:build !unix

package filelock

import (
	"context"
	"errors"
	"os"
)

// flock(2) is missing here: New refuses to build a Locker.
const supported = false

const (
	lockShared    = 1
	lockExclusive = 2
)

func flock(context.Context, *os.File, int) error { return errors.ErrUnsupported }

func tryFlock(*os.File, int) (bool, error) { return false, errors.ErrUnsupported }
