package redislock

import (
	"context"
	"crypto/rand"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// hub delivers a Locker's wake-ups over one pub/sub connection per master.
// It subscribes
//   - the Locker's own channel (<prefix>wake:<locker id>), on which a
//     release tells one of its waiters that the lock was handed to it (on
//     that master), or that it is now the head of a queue: a release wakes
//     one waiter, not every waiting process;
//   - the release channel of a key while one of its waiters waits outside
//     the queue (the queue master did not answer), kept one second after
//     the last such waiter.
type hub struct {
	l        *Locker
	id       string // random, per locker; waiters are id.<token>...
	own      string // the Locker's channel
	mu       sync.Mutex
	byID     map[string]*waiter              // every waiting Acquire
	chans    map[string]map[*waiter]struct{} // key channel -> waiters outside the queue
	subs     []*redis.PubSub                 // by master, created on first use
	closed   bool
	subMu    sync.Mutex      // orders SUBSCRIBE and UNSUBSCRIBE
	subbed   map[string]bool // guarded by subMu
	dispatch sync.WaitGroup
	syncs    sync.WaitGroup // subscriptions being made for register
}

// linger is how long a key channel stays subscribed after its last waiter:
// a waiter of the same key often comes back at once (a holder asking again).
const linger = time.Second

func newHub(l *Locker) *hub {
	id := rand.Text()[:12]
	return &hub{
		l:      l,
		id:     id,
		own:    l.wakePrefix + id,
		byID:   make(map[string]*waiter),
		chans:  make(map[string]map[*waiter]struct{}),
		subs:   make([]*redis.PubSub, len(l.clients)),
		subbed: make(map[string]bool),
	}
}

// newWaiter returns the wake-up state of one Acquire call on names, with
// the token all its attempts use. Its queue id names its Locker, carries
// what a release needs to hand it the lock (token, claim window, holder;
// see scripts.go) and is unique because the token is.
func (h *hub) newWaiter(names keyNames) *waiter {
	token, _ := newToken()
	id := h.id + "." + token + "." + strconv.FormatInt(h.l.claimWindow.Milliseconds(), 10) + "." + h.l.holder
	w := &waiter{h: h, names: names, id: id, token: token, grants: make([]int64, len(h.l.clients))}
	// Reachable at once: a hand-off can reach w before the reply to the
	// attempt that queued it.
	h.mu.Lock()
	if !h.closed {
		h.byID[id] = w
	}
	h.mu.Unlock()
	return w
}

// register makes w reachable on the Locker's channel and, when keyChan, on
// its key's channel; it subscribes what is not subscribed yet, off the
// caller's path: a SUBSCRIBE to each master (a dial on first use) can take
// longer than the caller's wait on a loaded machine, and Acquire must end
// at its timeout. The confirmation of the subscription wakes w (see
// confirm), and w polls meanwhile, so no release is missed.
func (h *hub) register(w *waiter, keyChan bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.byID[w.id] = w
	first := false
	if keyChan {
		set := h.chans[w.names.channel]
		if set == nil {
			set = make(map[*waiter]struct{})
			h.chans[w.names.channel] = set
		}
		first = len(set) == 0
		set[w] = struct{}{}
	}
	// Under h.mu, before close sets h.closed: close waits for these.
	h.syncs.Go(func() {
		h.sync(h.own)
		if first {
			h.sync(w.names.channel)
		}
	})
}

// unregister forgets w; its key channel is unsubscribed a little after its
// last waiter left, off the caller's path.
func (h *hub) unregister(w *waiter) {
	h.mu.Lock()
	delete(h.byID, w.id)
	set := h.chans[w.names.channel]
	_, ok := set[w]
	delete(set, w)
	last := ok && len(set) == 0
	if last {
		delete(h.chans, w.names.channel)
	}
	h.mu.Unlock()
	if last {
		time.AfterFunc(linger, func() { h.sync(w.names.channel) })
	}
}

// sync makes the subscription of channel match the need for it. The
// confirmation of a new subscription wakes the waiters it serves (see
// dispatch), so a release published just before it took effect is not
// missed.
func (h *hub) sync(channel string) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.Lock()
	want := !h.closed && (channel == h.own || h.chans[channel] != nil)
	h.mu.Unlock()
	if want == h.subbed[channel] {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.l.attemptTimeout)
	defer cancel()
	for i := range h.l.clients {
		ps := h.pubsub(i)
		if ps == nil {
			return
		}
		// An error (master down) is not fatal: go-redis subscribes again
		// when it reconnects, and waiters also poll.
		if want {
			_ = ps.Subscribe(ctx, channel)
		} else {
			_ = ps.Unsubscribe(ctx, channel)
		}
	}
	if want {
		h.subbed[channel] = true
	} else {
		delete(h.subbed, channel)
	}
}

// pubsub returns master i's pub/sub connection, starting it on first use;
// nil after close.
func (h *hub) pubsub(i int) *redis.PubSub {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	if h.subs[i] == nil {
		ps := h.l.clients[i].Subscribe(context.Background())
		ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
		h.subs[i] = ps
		h.dispatch.Go(func() { h.run(i, ch) })
	}
	return h.subs[i]
}

// run delivers master i's notifications until its pub/sub closes.
func (h *hub) run(i int, ch <-chan any) {
	for m := range ch {
		switch m := m.(type) {
		case *redis.Message:
			h.deliver(i, m.Channel, m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				h.confirm(m.Channel)
			}
		}
	}
}

// deliver handles a message from master i: on the Locker's channel a
// grant ("=<fence> <waiter id>") or a turn ("<waiter id>"), on a key's
// channel a release.
func (h *hub) deliver(i int, channel, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if channel == h.own {
		if g, ok := strings.CutPrefix(payload, "="); ok {
			f, id, _ := strings.Cut(g, " ")
			fence, err := strconv.ParseInt(f, 10, 64)
			if w := h.byID[id]; w != nil && err == nil && fence > 0 {
				w.granted(i, fence)
			}
		} else if w := h.byID[payload]; w != nil {
			w.fire()
		}
		return
	}
	for w := range h.chans[channel] {
		w.notify(payload)
	}
}

func (h *hub) confirm(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if channel == h.own {
		for _, w := range h.byID {
			w.confirmed()
		}
		return
	}
	for w := range h.chans[channel] {
		w.confirmed()
	}
}

// close wakes every waiter and stops the pub/sub connections.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for _, w := range h.byID {
		w.fire()
	}
	subs := h.subs
	h.subs = make([]*redis.PubSub, len(subs))
	h.mu.Unlock()
	for _, ps := range subs {
		if ps != nil {
			_ = ps.Close()
		}
	}
	h.syncs.Wait()
	h.dispatch.Wait()
}

// waiter is the wake-up state of one Acquire call, given to lock.Wait as
// its WakeFunc. It wakes the wait when
//   - a quorum of masters handed it the lock (grants);
//   - the queue master names it the new head of the key's queue;
//   - a release is announced on the key's channel while it waits outside
//     the queue;
//   - a subscription it relies on is confirmed (a release may have come
//     just before);
//   - every beat, to keep its place in the queue and to notice a lock that
//     expired without a release.
type waiter struct {
	h     *hub
	names keyNames
	id    string // its member name in the waiting queue
	token string // the Redsync value of its attempts, and of a lock handed to it

	mu        sync.Mutex
	sig       chan struct{} // returned by the last wake; closed by fire
	timer     *time.Timer   // the beat, once registered
	stopped   bool          // done: the beat is not re-armed
	inQueue   bool          // w may have an entry in the waiting queue
	queued    bool          // the queue master answered the last attempt and kept w queued
	rank      int64         // w's place in the queue then (0: head)
	ticket    string        // w's queue ticket, kept across attempts (see enqueue in scripts.go)
	events    uint64        // wake-ups so far (fire calls)
	seen      uint64        // events when the last attempt started
	onOwn     bool          // registered for the Locker's channel
	onKeyChan bool          // registered for the key's channel
	trying    bool          // an attempt is under way
	grants    []int64       // by master: the fence of a hand-off to w there, 0 for none
	queuedAt  time.Time     // start of the last attempt after which w was queued
}

// handoff is a lock handed to a waiter by a quorum of masters.
type handoff struct {
	fences []int64   // by master, 0 where it was not handed over
	after  time.Time // the masters set the keys after this (zero: unknown)
}

// granted records that master i handed the lock to w, with fence f, and
// wakes w once a quorum did.
func (w *waiter) granted(i int, f int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.grants[i] = f
	if !w.trying && w.grantCount() >= w.h.l.quorum {
		w.fireLocked()
	}
}

func (w *waiter) grantCount() int {
	n := 0
	for _, f := range w.grants {
		if f > 0 {
			n++
		}
	}
	return n
}

// takeHandoff returns the lock handed to w when a quorum of masters did,
// and forgets it (w is no longer queued: the hand-off took it out).
func (w *waiter) takeHandoff() (handoff, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.grantCount() < w.h.l.quorum {
		return handoff{}, false
	}
	g := handoff{fences: append([]int64(nil), w.grants...), after: w.queuedAt}
	clear(w.grants)
	w.inQueue, w.queued, w.rank = false, false, 0
	return g, true
}

// wake is the lock.WakeFunc: a channel closed at the next event.
func (w *waiter) wake() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sig = make(chan struct{})
	return w.sig
}

// tick is the beat: it wakes w and re-arms itself. It runs at its own
// pace, not from wake: lock.Wait's backoff may call wake more often than
// the beat, and a beat re-armed there would never fire.
func (w *waiter) tick() {
	w.fire()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.timer.Reset(w.interval())
	}
}

// interval is how long w sleeps between attempts when nothing wakes it
// (w.mu held). The head of the queue, and a waiter outside it, re-check at
// the beat: the lock may have expired without a release. A waiter behind
// others only keeps its place, at the slower idle beat: it cannot win
// before the queue master names it the head, which wakes it. Were every
// queued waiter to poll at the retry interval, N waiters would cost the
// masters and the waiting processes N attempts per interval, CPU taken
// from the holder, whose critical section then lasts longer, which keeps
// more waiters queued: under CPU starvation that loop made a hot key's
// queue crawl.
func (w *waiter) interval() time.Duration {
	if w.queued && w.rank > 0 {
		return w.h.l.idleBeat
	}
	return w.h.l.beat
}

func (w *waiter) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fireLocked()
}

func (w *waiter) fireLocked() {
	w.events++
	if w.sig != nil {
		close(w.sig)
		w.sig = nil
	}
}

// notify handles a message on the key's channel: ” (nobody queued) wakes
// every waiter, '~' (a master other than the queue master) only waiters
// outside the queue.
func (w *waiter) notify(payload string) {
	w.mu.Lock()
	queued := w.queued
	w.mu.Unlock()
	if !queued || payload == "" {
		w.fire()
	}
}

// confirmed: a subscription took effect. A release just before it would
// have been missed, so the waiter tries again, unless it waits behind
// others in the queue (that release would not have been for it).
func (w *waiter) confirmed() {
	w.mu.Lock()
	behind := w.queued && w.rank > 0
	w.mu.Unlock()
	if !behind {
		w.fire()
	}
}

// beforeAttempt reports whether an attempt would be pointless: w waits
// behind others in the queue and nothing happened since its last attempt
// (lock.Wait's own backoff timer fired). Only the head of the queue and
// waiters with news (a wake-up, a confirmation, the beat) ask Redis.
// ticket is w's queue ticket from an earlier attempt, which the attempt
// passes on so that w keeps its place.
func (w *waiter) beforeAttempt() (skip bool, rank int64, ticket string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queued && w.rank > 0 && w.events == w.seen {
		return true, w.rank, ""
	}
	w.seen = w.events
	// A partial hand-off seen before the attempt may be undone by it (its
	// cleanup deletes w's token where it won): only what the attempt's
	// results confirm is kept (see afterAttempt).
	clear(w.grants)
	w.trying = true
	return false, 0, w.ticket
}

// afterAttempt tracks whether w has an entry in the waiting queue and,
// after a refusal, registers it for the wake-ups it needs.
func (w *waiter) afterAttempt(o *op, won bool) {
	res := o.snapshot()
	r := res[o.names.queueNode]
	w.mu.Lock()
	w.trying = false
	// A hand-off reported during the attempt holds where the attempt did
	// not take the key: elsewhere the attempt found w's token (and used
	// it) or its cleanup deleted it.
	for i, ri := range res {
		if won || (ri.status != stHeld && ri.status != stRefused) {
			w.grants[i] = 0
		}
	}
	if !won && w.grantCount() >= w.h.l.quorum {
		w.fireLocked()
	}
	switch r.status {
	case stRefused, stHeld:
		// The queue master put (or kept) w in the queue. A win is still
		// possible on the other masters (w was the head, or the queue
		// master was slow), so w then leaves the queue in done. A later
		// hand-off to w happens after this attempt started.
		w.inQueue, w.queued, w.rank = true, true, r.rank
		w.queuedAt = o.start
		if r.ticket != "" {
			w.ticket = r.ticket
		}
	case stOK:
		// The script took w out of the queue; the cleanup of a failed
		// attempt puts it back, at the head, with its ticket.
		w.inQueue = !won && r.ticket != ""
		w.queued, w.rank = w.inQueue, 0
		if r.ticket != "" {
			w.ticket = r.ticket
		}
	default:
		// The queue master did not answer: its queue cannot order the
		// waiters now, so w listens to every release and tries at every
		// chance (an entry it may have there is kept until done).
		w.queued, w.rank = false, 0
	}
	var own, keyChan bool
	if !won {
		own = !w.onOwn
		keyChan = !w.queued && !w.onKeyChan
		w.onOwn = true
		w.onKeyChan = w.onKeyChan || keyChan
		if w.timer == nil {
			w.timer = time.AfterFunc(w.interval(), w.tick)
		}
	}
	w.mu.Unlock()
	if own || keyChan {
		w.h.register(w, keyChan)
	}
}

// done ends the wait: it unregisters w and, when w may still have an entry
// in the queue (it gives up, or won without the queue master), leaves the
// queue on a context the caller's cancellation cannot break, freeing a lock
// handed to it meanwhile and passing the key on when it is free. A lock
// handed to a waiter that gave up on the other masters frees itself at the
// end of the waiter's claim window.
func (w *waiter) done() {
	w.mu.Lock()
	inQueue := w.inQueue
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.h.unregister(w)
	if !inQueue || w.h.l.isClosed() {
		return
	}
	l := w.h.l
	ctx, cancel := context.WithTimeout(context.Background(), l.attemptTimeout)
	defer cancel()
	c := l.clients[w.names.queueNode]
	_ = leaveScript.Run(ctx, c, w.names.keys(), w.id, l.wakePrefix, w.token, w.names.channel).Err()
}
