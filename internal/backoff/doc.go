// Package backoff computes retry delays: exponential growth from an initial
// interval, capped, with full jitter (a uniform random delay between zero and
// the capped exponential value), as described in "Exponential Backoff And
// Jitter" (AWS Architecture Blog). The backend retry decorator, the lock
// acquisition loop and the store's optimistic commits all use it.
//
// # Errors
//
// Sleep returns ctx.Err() when the context ends the wait; nothing else
// fails.
//
// # Concurrency
//
// A Policy is a plain value and holds no state; it is safe for concurrent
// use.
package backoff
