package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetentionQueries(t *testing.T) {
	f := newFixture(t, memEnv(), Config{Versioning: true}, nil)
	ctx := context.Background()
	t0 := f.clock.Now()
	mustUpload(t, f.s, "artifact://s/t1/log", []byte("old log"), UploadOptions{})                      // expires t0+7d
	mustUpload(t, f.s, "artifact://s/t1/diff", []byte("diff"), UploadOptions{})                        // t0+30d
	mustUpload(t, f.s, "artifact://s/t1/custom", []byte("c"), UploadOptions{})                         // never
	mustUpload(t, f.s, "artifact://s/t2/log", []byte("kept"), UploadOptions{Tags: []string{"retain"}}) // never
	f.clock.Advance(2 * day)
	mustUpload(t, f.s, "artifact://s/t1/log", []byte("new log"), UploadOptions{}) // version 2: t0+9d
	mustUpload(t, f.s, "artifact://s/t1/test", []byte("test"), UploadOptions{})   // t0+16d

	for _, tc := range []struct {
		uri  string
		want time.Time
	}{
		{"artifact://s/t1/log", t0.Add(9 * day)},
		{"artifact://s/t1/log?version=1", t0.Add(7 * day)},
		{"artifact://s/t1/diff", t0.Add(30 * day)},
		{"artifact://s/t1/test", t0.Add(16 * day)},
		{"artifact://s/t1/custom", time.Time{}},
		{"artifact://s/t2/log", time.Time{}},
	} {
		e, err := f.s.ExpiresAt(ctx, tc.uri)
		if err != nil || !e.ExpiresAt.Equal(tc.want) {
			t.Errorf("ExpiresAt(%s) = %v, %v; want %v", tc.uri, e.ExpiresAt, err, tc.want)
		}
	}
	for _, uri := range []string{"artifact://s/none/log", "artifact://s/t1/log?version=7"} {
		if _, err := f.s.ExpiresAt(ctx, uri); !errors.Is(err, ErrNotFound) {
			t.Errorf("ExpiresAt(%s) = %v, want ErrNotFound", uri, err)
		}
	}

	// Now t0+2d.
	for _, tc := range []struct {
		window time.Duration
		f      Filter
		want   []string
	}{
		{0, Filter{}, nil},
		{5 * day, Filter{}, nil}, // t0+7d: not before it
		{5*day + time.Second, Filter{}, []string{"artifact://s/t1/log?version=1"}},
		{15 * day, Filter{}, []string{"artifact://s/t1/log?version=1", "artifact://s/t1/log?version=2", "artifact://s/t1/test?version=1"}},
		{15 * day, Filter{Type: TypeLog}, []string{"artifact://s/t1/log?version=1", "artifact://s/t1/log?version=2"}},
		{100 * day, Filter{Task: "t1"}, []string{"artifact://s/t1/diff?version=1", "artifact://s/t1/log?version=1", "artifact://s/t1/log?version=2", "artifact://s/t1/test?version=1"}},
		{100 * day, Filter{Task: "t2"}, nil},
	} {
		es, err := f.s.ExpiringWithin(ctx, tc.window, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Version.URI)
			if want, _ := f.s.ExpiresAt(ctx, e.Version.URI); !e.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("ExpiringWithin: %s expires at %v, ExpiresAt says %v", e.Version.URI, e.ExpiresAt, want.ExpiresAt)
			}
		}
		if !equalStrings(got, tc.want) {
			t.Errorf("ExpiringWithin(%v, %+v) = %v, want %v", tc.window, tc.f, got, tc.want)
		}
	}
	// ExpiringWithin(0) is Expired, at any time.
	f.clock.Advance(10 * day)
	es, err := f.s.ExpiringWithin(ctx, 0, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	mds, err := f.s.Expired(ctx, Filter{})
	if err != nil || len(mds) != len(es) || len(es) != 2 {
		t.Fatalf("Expired = %d versions (%v), ExpiringWithin(0) = %d; want 2 each (the two logs)", len(mds), err, len(es))
	}
	for i := range mds {
		if mds[i].URI != es[i].Version.URI {
			t.Errorf("#%d: Expired %s, ExpiringWithin %s", i, mds[i].URI, es[i].Version.URI)
		}
	}
	if _, err := f.s.ExpiringWithin(ctx, -time.Second, Filter{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative window: %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
