//go:build !linux

package filelock

import "errors"

// watchDirs has no portable file-system watch to use: waiters of a key
// released by another process wake at their next backoff retry.
func watchDirs(string, string, func(string), func()) (func(), error) {
	return nil, errors.ErrUnsupported
}
