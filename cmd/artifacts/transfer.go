package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// transferBarMin is the smallest transfer that gets a progress bar: the bar
// appears once this many bytes have passed, so small transfers never draw.
const transferBarMin = 4 << 20

// transferProgress counts the bytes read through it and draws a progress
// bar of them on stderr once transferBarMin bytes have passed
// (schollz/progressbar; a byte counter when the size is unknown).
type transferProgress struct {
	r      io.Reader
	origin int64 // r's offset at the start, when it seeks
	n      int64 // bytes read past origin
	bar    *progressbar.ProgressBar
	start  func() *progressbar.ProgressBar
}

// trackTransfer returns r with a progress bar of a transfer of size bytes
// (backend.SizeUnknown when unknown) described by label, and the function
// to call when the transfer ends (ok: it completed). The bar is drawn
// only when show is true (the caller's --json and where the content goes)
// and both stdout and stderr are terminals; otherwise r is returned as it
// is and the tool stays quiet.
func (a *app) trackTransfer(r io.Reader, size int64, label string, show bool) (io.Reader, func(ok bool)) {
	if !show || !a.isTerminal(a.stderr) || !a.isTerminal(a.stdout) {
		return r, func(bool) {}
	}
	max := size
	if size == backend.SizeUnknown {
		max = -1
	}
	t := &transferProgress{r: r}
	if sk, ok := r.(io.Seeker); ok {
		t.origin, _ = sk.Seek(0, io.SeekCurrent)
	}
	t.start = func() *progressbar.ProgressBar {
		return progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseIECUnits(true),
			// No spinner goroutine for an unknown size: redraws follow
			// the reads.
			progressbar.OptionSetSpinnerChangeInterval(0),
		)
	}
	return t, func(ok bool) {
		if t.bar == nil {
			return
		}
		if ok {
			_ = t.bar.Finish()
		} else {
			_ = t.bar.Exit() // the error follows on its own line
		}
		fmt.Fprintln(a.stderr)
	}
}

func (t *transferProgress) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	switch {
	case t.bar != nil:
		_ = t.bar.Add64(int64(n))
	case t.n >= transferBarMin:
		t.bar = t.start()
		_ = t.bar.Add64(t.n)
	}
	return n, err
}

// Seek keeps the reader rewindable for the store's retries (a file is);
// the bar follows the new offset.
func (t *transferProgress) Seek(offset int64, whence int) (int64, error) {
	sk, ok := t.r.(io.Seeker)
	if !ok {
		return 0, errors.New("not seekable")
	}
	pos, err := sk.Seek(offset, whence)
	if err != nil {
		return pos, err
	}
	t.n = pos - t.origin
	if t.bar != nil {
		_ = t.bar.Set64(t.n)
	}
	return pos, nil
}

// contextReader returns what r reads until ctx is done, then ctx's error
// at once, even while a Read of r is blocked (a terminal or a pipe that
// nobody writes to: put - waiting on stdin). Each Read of r runs in a
// goroutine into a buffer of the reader's own, so that a Read abandoned
// on cancellation (it ends with the process) never writes into the
// caller's slice.
type contextReader struct {
	ctx     context.Context
	r       io.Reader
	buf     []byte
	results chan readResult
}

type readResult struct {
	n   int
	err error
}

func newContextReader(ctx context.Context, r io.Reader) *contextReader {
	return &contextReader{ctx: ctx, r: r, results: make(chan readResult, 1)}
}

func (c *contextReader) Read(p []byte) (int, error) {
	// After a cancellation a Read of r may still be running: never start
	// another.
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	buf := c.buf[:len(p)]
	go func() {
		n, err := c.r.Read(buf)
		c.results <- readResult{n, err}
	}()
	select {
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	case res := <-c.results:
		return copy(p, buf[:res.n]), res.err
	}
}
