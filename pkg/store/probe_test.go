package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
)

// writeOps are the backend operations that write.
var writeOps = []backendtest.Op{backendtest.OpPut, backendtest.OpDelete, backendtest.OpDeleteIfMatch}

// refuseWrites makes every write of fb fail as a read-only user's would.
func refuseWrites(fb *backendtest.Faulty) {
	for _, op := range writeOps {
		fb.Inject(backendtest.Fault{Op: op, Err: backendtest.Permanent("read-only", backend.ErrPermissionDenied)})
	}
}

// writes counts the write calls that reached fb.
func writes(fb *backendtest.Faulty) int {
	n := 0
	for _, op := range writeOps {
		n += fb.Calls(op)
	}
	return n
}

// readEverything runs every read of the Store on a bucket with artifacts
// and fails the test on an error.
func readEverything(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	uri := "artifact://spec/task/log"
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	data, md, err := s.Download(ctx, uri)
	check("Download", err)
	if string(data) != "hello" {
		t.Errorf("Download = %q, want hello", data)
	}
	rc, _, err := s.Open(ctx, uri)
	check("Open", err)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		check("read", errors.Join(err, rc.Close()))
	}
	_, err = s.Stat(ctx, uri)
	check("Stat", err)
	_, err = s.Exists(ctx, uri)
	check("Exists", err)
	_, err = s.Versions(ctx, uri)
	check("Versions", err)
	check("VerifyChecksum", s.VerifyChecksum(ctx, uri))
	mds, err := s.Search(ctx, Filter{Tags: []string{"green"}})
	check("Search", err)
	if len(mds) != 1 || mds[0].URI != md.URI {
		t.Errorf("Search by tag = %v, want %s", mds, md.URI)
	}
	_, _, err = s.SearchPage(ctx, Filter{Type: "log"}, Page{Limit: 10})
	check("SearchPage", err)
	_, err = s.ListTask(ctx, "spec", "task")
	check("ListTask", err)
	_, err = s.ListSpec(ctx, "spec")
	check("ListSpec", err)
	_, err = s.Usage(ctx)
	check("Usage", err)
	rep, err := s.VerifyAll(ctx, VerifyOptions{})
	check("VerifyAll", err)
	if !rep.OK() || rep.Checked != 2 {
		t.Errorf("VerifyAll = %+v, want 2 versions checked and OK", rep)
	}
	var buf bytes.Buffer
	_, err = s.Export(ctx, &buf, ExportOptions{Spec: "spec"})
	check("Export", err)
	_, err = s.ExpiresAt(ctx, uri)
	check("ExpiresAt", err)
	_, err = s.ExpiringWithin(ctx, time.Hour, Filter{})
	check("ExpiringWithin", err)
	_, err = s.Expired(ctx, Filter{})
	check("Expired", err)
	_, err = s.CleanupExpired(ctx, CleanupOptions{DryRun: true})
	check("CleanupExpired (dry run)", err)
	_, err = s.Reconcile(ctx, ReconcileOptions{})
	check("Reconcile (dry run)", err)
	_, err = s.IsLocked(ctx, uri)
	check("IsLocked", err)
	_, err = s.Ping(ctx)
	check("Ping", err)
}

// Opening a Store and every read write nothing, to the bucket or to the
// lock service: a read-only user can read everything. The first write
// then fails as the user's permissions say, and works once they allow it
// (a failed probe is not final).
func TestReadOnlyUse(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		name := map[bool]string{false: "bucket with artifacts", true: "empty bucket"}[fresh]
		t.Run(name, func(t *testing.T) {
			mem := membackend.New()
			if !fresh {
				w := newFixtureOn(t, mem, mustMemlock(t), Config{Versioning: true}, nil)
				mustUpload(t, w.s, "artifact://spec/task/log", []byte("hi"), UploadOptions{Tags: []string{"green"}})
				mustUpload(t, w.s, "artifact://spec/task/log", []byte("hello"), UploadOptions{Tags: []string{"green"}})
				_ = w.s.Close() // waits for its background catalog compaction
			}
			before := backendtest.Keys(t, mem, "")
			fb := backendtest.NewFaulty(mem)
			refuseWrites(fb)
			cl := &countingLocker{Locker: mustMemlock(t)}
			cfg := Config{Versioning: true, Quota: QuotaConfig{MaxBytes: 1 << 20}, Now: newFakeClock().Now}
			s, err := New(t.Context(), fb, cl, cfg)
			if err != nil {
				t.Fatalf("New on a read-only bucket: %v", err)
			}
			if !fresh {
				readEverything(t, s)
			} else if _, err := s.Search(t.Context(), Filter{Tags: []string{"green"}}); err != nil {
				t.Errorf("Search: %v", err)
			}
			if n := writes(fb); n != 0 {
				t.Errorf("New and the reads sent %d writes, want none", n)
			}
			if n := cl.n.Load(); n != 0 {
				t.Errorf("New and the reads took %d locks, want none", n)
			}
			if st := s.ProbeStatus(); st.State != ProbeNotRun {
				t.Errorf("ProbeStatus after reads = %+v, want not run", st)
			}

			// The first write: refused, and nothing changed.
			_, err = s.UploadBytes(t.Context(), "artifact://spec/task/diff", []byte("d"), UploadOptions{})
			if !errors.Is(err, ErrPermissionDenied) {
				t.Fatalf("upload on a read-only bucket: %v, want ErrPermissionDenied", err)
			}
			// (The probe's error is the permission denied, or the
			// cancellation of the blob's Put once the quota's failed.)
			if st := s.ProbeStatus(); st.State != ProbeFailed || st.Err == nil {
				t.Errorf("ProbeStatus after a refused write = %+v, want failed", st)
			}
			if after := backendtest.Keys(t, mem, ""); !slices.Equal(after, before) {
				t.Errorf("keys after a refused write %v, want %v", after, before)
			}

			// Permissions granted: the next write probes again and works.
			fb.Clear()
			mustUpload(t, s, "artifact://spec/task/diff", []byte("d"), UploadOptions{})
			if st := s.ProbeStatus(); st.State != ProbePassed {
				t.Errorf("ProbeStatus after a write = %+v, want passed", st)
			}
			if _, err := mem.Stat(t.Context(), tagIndexReadyKey); err != nil && fresh {
				t.Errorf("the first write into an empty bucket did not mark the tag index complete: %v", err)
			}
		})
	}
}

func mustMemlock(t *testing.T) *memlock.Locker {
	t.Helper()
	l, err := memlock.New(lock.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A backend that ignores conditions opens; its first write is refused
// before anything is stored, and the verdict is final for the Store.
func TestProbeAtFirstWrite(t *testing.T) {
	for _, fault := range []backendtest.Fault{{Op: backendtest.OpPut, IgnoreIfAbsent: true}, {Op: backendtest.OpPut, IgnoreIfMatch: true}} {
		mem := membackend.New()
		fb := backendtest.NewFaulty(mem)
		fb.Inject(fault)
		s, err := New(t.Context(), fb, mustMemlock(t), Config{})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		_, err = s.UploadBytes(t.Context(), "artifact://s/t/log", []byte("x"), UploadOptions{})
		if !errors.Is(err, backend.ErrUnfencedWrites) {
			t.Fatalf("upload on a backend ignoring %+v: %v, want ErrUnfencedWrites", fault, err)
		}
		if keys := backendtest.Keys(t, mem, ""); len(keys) != 0 {
			t.Fatalf("a refused first write left %v", keys)
		}
		if st := s.ProbeStatus(); st.State != ProbeRefused || !errors.Is(st.Err, backend.ErrUnfencedWrites) {
			t.Errorf("ProbeStatus = %+v, want refused", st)
		}
		puts := fb.Calls(backendtest.OpPut)
		if err := s.PrepareWrites(t.Context()); !errors.Is(err, backend.ErrUnfencedWrites) {
			t.Errorf("PrepareWrites after a refusal: %v, want ErrUnfencedWrites", err)
		}
		if n := fb.Calls(backendtest.OpPut); n != puts {
			t.Errorf("a refused Store probed again (%d Puts)", n-puts)
		}

		s, err = New(t.Context(), fb, mustMemlock(t), Config{AllowUnfencedWrites: true})
		if err != nil {
			t.Fatalf("New with AllowUnfencedWrites: %v", err)
		}
		mustUpload(t, s, "artifact://s/t/log", []byte("x"), UploadOptions{})
		if st := s.ProbeStatus(); st.State != ProbeUnfencedAccepted {
			t.Errorf("ProbeStatus with AllowUnfencedWrites = %+v, want unfenced accepted", st)
		}
		// No record: the next Store probes the races again.
		if _, err := mem.Stat(t.Context(), probeRecordKey); !errors.Is(err, ErrNotFound) {
			t.Errorf("an unfenced backend got a probe record: %v", err)
		}
	}
	if _, err := New(t.Context(), membackend.New(), nil, Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil locker: %v", err)
	}
	if _, err := New(t.Context(), nil, nil, Config{DisableLocking: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil backend: %v", err)
	}
	if _, err := New(t.Context(), membackend.New(), nil, Config{DisableLocking: true, MaxVersions: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("invalid config: %v", err)
	}
}

// The race probe's result is recorded in the bucket and trusted for a
// day: later Stores make only the sequential checks.
func TestProbeRecord(t *testing.T) {
	mem := membackend.New()
	clock := newFakeClock()
	open := func() (*Store, *backendtest.Faulty) {
		fb := backendtest.NewFaulty(mem)
		s, err := New(t.Context(), fb, nil, Config{DisableLocking: true, Now: clock.Now, WriterID: "w"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PrepareWrites(t.Context()); err != nil {
			t.Fatalf("PrepareWrites: %v", err)
		}
		return s, fb
	}
	readRecord := func() probeRecord {
		t.Helper()
		rc, _, err := mem.Get(t.Context(), probeRecordKey)
		if err != nil {
			t.Fatalf("probe record: %v", err)
		}
		defer rc.Close()
		var rec probeRecord
		if err := json.NewDecoder(rc).Decode(&rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}

	s, fb := open()
	if st := s.ProbeStatus(); st.State != ProbePassed || st.FromRecord || !st.RacesCheckedAt.Equal(clock.Now()) {
		t.Errorf("first Store's ProbeStatus = %+v, want passed by itself now", st)
	}
	if n := fb.Calls(backendtest.OpPut); n < 64 {
		t.Errorf("first Store sent %d Puts, want the race probe's 64 and more", n)
	}
	if rec := readRecord(); !rec.Checked.Equal(clock.Now()) || rec.Writer != "w" {
		t.Errorf("record %+v", rec)
	}
	first := clock.Now()

	clock.Advance(23 * time.Hour)
	s, fb = open()
	if st := s.ProbeStatus(); st.State != ProbePassed || !st.FromRecord || !st.RacesCheckedAt.Equal(first) {
		t.Errorf("second Store's ProbeStatus = %+v, want passed from the record", st)
	}
	if n := fb.Calls(backendtest.OpPut); n != 5 {
		t.Errorf("second Store sent %d Puts, want the 5 of the sequential checks", n)
	}

	// Past a day, or a record that is not JSON: the races run again.
	clock.Advance(2 * time.Hour)
	s, fb = open()
	if st := s.ProbeStatus(); st.FromRecord || fb.Calls(backendtest.OpPut) < 64 {
		t.Errorf("a stale record was trusted: %+v", st)
	}
	if rec := readRecord(); !rec.Checked.Equal(clock.Now()) {
		t.Errorf("record after a new race probe %+v, want checked now", rec)
	}
	if _, err := mem.Put(t.Context(), probeRecordKey, strings.NewReader("{"), 1, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	s, fb = open()
	if st := s.ProbeStatus(); st.FromRecord || fb.Calls(backendtest.OpPut) < 64 {
		t.Errorf("an invalid record was trusted: %+v", st)
	}

	// The sequential checks still catch a server that ignores conditions.
	fb = backendtest.NewFaulty(mem)
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, IgnoreIfMatch: true})
	s, err := New(t.Context(), fb, nil, Config{DisableLocking: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PrepareWrites(t.Context()); !errors.Is(err, backend.ErrUnfencedWrites) {
		t.Errorf("PrepareWrites with a fresh record on a server ignoring If-Match: %v, want ErrUnfencedWrites", err)
	}
}

// Concurrent first writes probe once; a probe cut short by its context is
// not final.
func TestProbeOnceConcurrently(t *testing.T) {
	mem := membackend.New()
	fb := backendtest.NewFaulty(mem)
	var (
		mu     sync.Mutex
		probes = map[string]bool{}
	)
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: probeRoot, Hook: func(_ context.Context, _ backendtest.Op, key string) {
		if key == probeRecordKey || strings.HasPrefix(key, probeRoot+"clock-") {
			return // the record, and a compaction's reading of the backend's clock
		}
		mu.Lock()
		defer mu.Unlock()
		probes[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(key, "-missing"), "-create"), "-match")] = true
	}})
	s, err := New(t.Context(), fb, mustMemlock(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PrepareWrites(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("PrepareWrites with a cancelled context: %v", err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			uri := "artifact://s/t" + string(rune('a'+i)) + "/log"
			if _, err := s.UploadBytes(t.Context(), uri, []byte("x"), UploadOptions{}); err != nil {
				t.Errorf("upload %s: %v", uri, err)
			}
		})
	}
	wg.Wait()
	_ = s.Close() // waits for the background compaction the commits started
	mu.Lock()
	defer mu.Unlock()
	if len(probes) != 1 {
		t.Errorf("concurrent first writes ran %d probes (%v), want 1", len(probes), probes)
	}
}
