package filelock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// watchDirs watches two directories with inotify. It calls fire with the
// name of every file of keysDir that is written or removed, and fireAll
// when a file of holdersDir is closed after writing or removed (a Locker
// closed, or its process died: any key may be free now) or when events were
// dropped. The returned stop ends the watch and waits for its goroutine.
func watchDirs(keysDir, holdersDir string, fire func(name string), fireAll func()) (stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	keysWD, err := unix.InotifyAddWatch(fd, keysDir, unix.IN_MODIFY|unix.IN_DELETE)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", keysDir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, holdersDir, unix.IN_CLOSE_WRITE|unix.IN_DELETE); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", holdersDir, err)
	}
	// A non-blocking descriptor becomes a pollable file: Read parks in the
	// runtime's poller and Close wakes it.
	f := os.NewFile(uintptr(fd), "inotify:"+keysDir)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					fireAll() // the watch is gone: let waiters retry
				}
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				start := off + unix.SizeofInotifyEvent
				end := min(start+nameLen, n)
				off = start + nameLen
				if mask&unix.IN_Q_OVERFLOW != 0 || wd != keysWD {
					fireAll()
					continue
				}
				if name := strings.TrimRight(string(buf[start:end]), "\x00"); name != "" {
					fire(name)
				}
			}
		}
	}()
	return func() {
		_ = f.Close()
		<-done
	}, nil
}
