//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filebackend

import (
	"errors"
	"os"
)

// flockSupported reports whether this platform has flock(2); New refuses
// to run without it, since conditional Puts would not hold across
// processes.
const flockSupported = false

var errNoFlock = errors.New("filebackend: flock(2) is not available on this platform")

func tryLock(*os.File) (bool, error) { return false, errNoFlock }

func unlock(*os.File) error { return errNoFlock }
