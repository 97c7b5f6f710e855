package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/filebackend"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/filelock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// Opened is a store with the backend and locker Open made for it. Close
// releases all of them.
type Opened struct {
	// Store is the artifact store.
	Store *store.Store
	// Backend is the backend the store uses (after Config.WrapBackend),
	// for tools that look at the raw objects.
	Backend backend.Backend
	// Locker is the locker the store uses (after Config.WrapLocker); nil
	// with LockNone.
	Locker lock.Locker
	// Config is the configuration Open used, with defaults applied.
	Config Config

	closers   []io.Closer // in the order they are closed
	closeOnce sync.Once
	closeErr  error
}

// Open builds the backend and the locker c describes and a store over them.
// It validates c first (an error matching store.ErrInvalidArgument), then
// connects: the S3 backend creates its bucket when c.S3.CreateBucket is
// set. Nothing else is written: the store checks that the backend enforces
// conditional writes at its first write (store.Store.PrepareWrites).
// On failure everything made so far is closed.
func Open(ctx context.Context, c Config) (_ *Opened, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	if c.Logger != nil {
		if c.Store.Logger == nil {
			c.Store.Logger = c.Logger
		}
		if c.S3.Logger == nil {
			c.S3.Logger = c.Logger
		}
		if c.LockConfig.Logger == nil {
			c.LockConfig.Logger = c.Logger
		}
	}
	o := &Opened{Config: c}
	defer func() {
		if err != nil {
			_ = o.Close()
		}
	}()

	var b backend.Backend
	switch c.Backend {
	case BackendFile:
		fb, err := filebackend.New(filebackend.Config{Root: c.FileDir, CreateRoot: true, NoSync: c.FileNoSync})
		if err != nil {
			return nil, fmt.Errorf("setup: file backend: %w", err)
		}
		b = fb
	case BackendS3:
		sb, err := s3backend.New(ctx, c.S3)
		if err != nil {
			return nil, fmt.Errorf("setup: s3 backend: %w", err)
		}
		b = sb
	case BackendMemory:
		b = membackend.New()
	}
	o.closers = append(o.closers, b)
	if c.WrapBackend != nil {
		b = c.WrapBackend(b)
	}
	o.Backend = b

	var l lock.Locker
	switch c.Lock {
	case LockFile:
		fl, err := filelock.New(filelock.Config{Dir: c.LockDir, Lock: c.LockConfig})
		if err != nil {
			return nil, fmt.Errorf("setup: file locks: %w", err)
		}
		l = fl
	case LockRedis:
		rl, err := redislock.Open(c.Redis, c.LockConfig)
		if err != nil {
			return nil, fmt.Errorf("setup: redis locks: %w", err)
		}
		l = rl
	case LockMemory:
		ml, err := memlock.New(c.LockConfig)
		if err != nil {
			return nil, fmt.Errorf("setup: memory locks: %w", err)
		}
		l = ml
	}
	if l != nil {
		if cl, ok := l.(io.Closer); ok {
			// Close the locker before the backend: a locker may still
			// release leases.
			o.closers = append([]io.Closer{cl}, o.closers...)
		}
		if c.WrapLocker != nil {
			l = c.WrapLocker(l)
		}
		o.Locker = l
	}

	s, err := store.New(ctx, b, l, c.Store)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	o.Store = s
	return o, nil
}

// Close closes the locker (and with Redis locks its clients), then the
// backend. It returns their errors joined; calling it again returns the
// same result.
func (o *Opened) Close() error {
	o.closeOnce.Do(func() {
		var errs []error
		if o.Store != nil {
			_ = o.Store.Close() // first: later calls get ErrClosed, not a closed client's error
		}
		for _, c := range o.closers {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		o.closeErr = errors.Join(errs...)
	})
	return o.closeErr
}
