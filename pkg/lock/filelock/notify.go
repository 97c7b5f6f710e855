package filelock

import (
	"log/slog"
	"sync"
)

// notifier wakes the waiters of a key file when it may have become free:
// when a process releases it (a file-system watch, where the OS has one),
// when this process releases it, or when its lease expires.
type notifier struct {
	mu   sync.Mutex
	subs map[string]chan struct{} // by file name
	stop func()                   // stops the file-system watch; nil without one (guarded by mu)
}

// newNotifier returns a notifier without a watch: waiters wake on this
// process's releases and expiries until watch starts one.
func newNotifier() *notifier {
	return &notifier{subs: make(map[string]chan struct{})}
}

// watch watches keysDir for changes of key files and holdersDir for
// vanished holders when the OS allows it; without a watch, waiters of a key
// released by another process wake at their next backoff retry. Call it
// once, before close.
func (n *notifier) watch(keysDir, holdersDir string, logger *slog.Logger) {
	stop, err := watchDirs(keysDir, holdersDir, n.fire, n.fireAll)
	if err != nil {
		logger.Warn("filelock: no file-system watch, waiters poll", "dir", keysDir, "err", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stop = stop
}

// subscribe returns a channel closed at the next fire of name.
func (n *notifier) subscribe(name string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := n.subs[name]
	if ch == nil {
		ch = make(chan struct{})
		n.subs[name] = ch
	}
	return ch
}

// fire wakes the waiters of name.
func (n *notifier) fire(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch := n.subs[name]; ch != nil {
		close(ch)
		delete(n.subs, name)
	}
}

// fireAll wakes every waiter.
func (n *notifier) fireAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, ch := range n.subs {
		close(ch)
		delete(n.subs, name)
	}
}

// close stops the watch and wakes every waiter.
func (n *notifier) close() {
	n.mu.Lock()
	stop := n.stop
	n.stop = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
	n.fireAll()
}
