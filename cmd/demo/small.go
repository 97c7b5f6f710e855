package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// smallRuns is how many small artifacts the parent writes and reads to
// measure the small-artifact rates, each next to the same request made on
// the backend directly.
const smallRuns = 50

// smallSize is the size of those artifacts: a diff or a test summary.
const smallSize = 4 << 10

// smallRates are the mean times of the store's small uploads (new
// artifacts) and downloads (current version) and of the backend's own Put
// and Get of the same bytes, measured alternately in one loop so that a
// changing load weighs on both alike.
type smallRates struct {
	runs                 int
	upload, put          time.Duration
	download, get        time.Duration
	measureErr           error // the measurement stopped early
	uploadRatio, dlRatio float64
}

// measureSmall runs the small-artifact measurement on artifacts of spec
// (not the workers' spec, so the checks do not count them) and on raw keys
// under _demo/, which it deletes.
func measureSmall(ctx context.Context, o *setup.Opened, spec string) smallRates {
	var r smallRates
	data := bytes.Repeat([]byte("--- a/pkg/x.go\n+++ b/pkg/x.go\n@@ -1 +1 @@\n-old\n+new\n"), smallSize/48+1)[:smallSize]
	timed := func(total *time.Duration, fn func() error) error {
		start := time.Now()
		err := fn()
		*total += time.Since(start)
		return err
	}
	for i := range smallRuns {
		uri := fmt.Sprintf("artifact://%s/small-%03d/diff", spec, i)
		raw := fmt.Sprintf("_demo/%s/raw-%03d", spec, i)
		err := timed(&r.upload, func() error {
			_, err := o.Store.UploadBytes(ctx, uri, data, store.UploadOptions{ContentType: "text/x-diff"})
			return err
		})
		if err == nil {
			err = timed(&r.put, func() error {
				_, err := o.Backend.Put(ctx, raw, bytes.NewReader(data), int64(len(data)), backend.PutOptions{})
				return err
			})
		}
		if err == nil {
			err = timed(&r.download, func() error {
				_, _, err := o.Store.Download(ctx, uri)
				return err
			})
		}
		if err == nil {
			err = timed(&r.get, func() error {
				rc, _, err := o.Backend.Get(ctx, raw)
				if err != nil {
					return err
				}
				defer rc.Close()
				_, err = io.Copy(io.Discard, rc)
				return err
			})
		}
		_ = o.Backend.Delete(context.WithoutCancel(ctx), raw)
		if err != nil {
			r.measureErr = err
			break
		}
		r.runs++
	}
	if r.runs > 0 {
		n := time.Duration(r.runs)
		r.upload, r.put, r.download, r.get = r.upload/n, r.put/n, r.download/n, r.get/n
		r.uploadRatio = float64(r.put) / float64(r.upload)
		r.dlRatio = float64(r.get) / float64(r.download)
	}
	return r
}

// print writes the small-artifact lines of the report.
func (r smallRates) print(w io.Writer) {
	if r.runs == 0 {
		fmt.Fprintf(w, "small artifacts not measured: %v\n", r.measureErr)
		return
	}
	round := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	fmt.Fprintf(w, "small artifacts %s, %d each, alternating with the backend's own requests:\n", humanBytes(smallSize), r.runs)
	fmt.Fprintf(w, "                upload new   %v  (backend Put %v: %.2fx its speed)\n", round(r.upload), round(r.put), r.uploadRatio)
	fmt.Fprintf(w, "                download     %v  (backend Get %v: %.2fx its speed)\n", round(r.download), round(r.get), r.dlRatio)
	if r.measureErr != nil {
		fmt.Fprintf(w, "                (stopped early: %v)\n", r.measureErr)
	}
}
