package integration

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// TestReadOnlyS3User: a user whose bucket policy allows only GetObject and
// ListBucket opens the store and reads everything, sending no write
// request (counted by a decorator under the store); its first write is
// refused by the server and changes nothing.
func TestReadOnlyS3User(t *testing.T) {
	e := &env{s3: testenv.StartVersityGW(t), redis: testenv.RedisAddrs(t, 1), keyPrefix: uniquePrefix()}
	ctx := t.Context()
	w := e.open(t, nil).Store
	const uri = "artifact://ro/t1/log"
	for _, v := range []string{"hi", "hello"} {
		if _, err := w.UploadBytes(ctx, uri, []byte(v), store.UploadOptions{Tags: []string{"green"}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close() // waits for its background catalog compaction
	ro := e.s3.AddReadOnlyUser(t)
	raw := e.raw(t)
	before := backendtest.Objects(t, raw, "")

	var counter *backendtest.Faulty
	s := e.open(t, func(c *setup.Config) {
		c.S3.AccessKey, c.S3.SecretKey, c.S3.CreateBucket = ro.AccessKey, ro.SecretKey, false
		c.WrapBackend = func(b backend.Backend) backend.Backend { counter = backendtest.NewFaulty(b); return counter }
	}).Store
	reads := map[string]func() error{
		"download": func() error {
			data, _, err := s.Download(ctx, uri)
			if err == nil && string(data) != "hello" {
				t.Errorf("download = %q, want hello", data)
			}
			return err
		},
		"versions": func() error { _, err := s.Versions(ctx, uri); return err },
		"search": func() error {
			mds, err := s.Search(ctx, store.Filter{Tags: []string{"green"}})
			if err == nil && len(mds) != 1 {
				t.Errorf("search by tag found %d artifacts, want 1", len(mds))
			}
			return err
		},
		"ls":    func() error { _, err := s.ListSpec(ctx, "ro"); return err },
		"usage": func() error { _, err := s.Usage(ctx); return err },
		"verify": func() error {
			rep, err := s.VerifyAll(ctx, store.VerifyOptions{})
			return errors.Join(err, okErr(rep.OK()))
		},
		"export": func() error { _, err := s.Export(ctx, io.Discard, store.ExportOptions{Spec: "ro"}); return err },
		"expired": func() error {
			_, err := s.ExpiringWithin(ctx, 24*time.Hour, store.Filter{})
			return err
		},
		"reconcile (dry run)": func() error { _, err := s.Reconcile(ctx, store.ReconcileOptions{}); return err },
		"ping":                func() error { _, err := s.Ping(ctx); return err },
	}
	for name, read := range reads {
		if err := read(); err != nil {
			t.Errorf("%s with read-only credentials: %v", name, err)
		}
	}
	for _, op := range []backendtest.Op{backendtest.OpPut, backendtest.OpDelete, backendtest.OpDeleteIfMatch} {
		if n := counter.Calls(op); n != 0 {
			t.Errorf("opening and reading sent %d %s requests, want none", n, op)
		}
	}

	_, err := s.UploadBytes(context.WithoutCancel(ctx), uri, []byte("new"), store.UploadOptions{})
	if !errors.Is(err, store.ErrPermissionDenied) {
		t.Errorf("upload with read-only credentials: %v, want ErrPermissionDenied", err)
	}
	if after := backendtest.Objects(t, raw, ""); !slices.Equal(after, before) {
		t.Errorf("the bucket changed:\nbefore %v\nafter  %v", before, after)
	}
}

// okErr is an error when a report is not OK.
func okErr(ok bool) error {
	if ok {
		return nil
	}
	return errors.New("report not OK")
}
