package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/store"
)

// D1: worker processes (separate OS processes, each its own store and Redis
// connections) on the same artifacts: every acknowledged upload is present,
// versions are numbered without a gap, and every version was acknowledged.
func TestWorkerProcessesLoseNoUpdate(t *testing.T) {
	e := newEnv(t, 3)
	const workers, uploads = 4, 20
	uris := []string{"artifact://d1/shared/log", "artifact://d1/shared/diff"}
	procs := make([]*workerProc, workers)
	for w := range workers {
		procs[w] = startWorker(t, e, workerJob{Mode: "hammer", Name: fmt.Sprintf("process %d", w), URIs: uris, N: uploads})
	}
	var got acks
	for w, p := range procs {
		if err := p.wait(2*time.Minute, &got); err != nil {
			t.Fatalf("worker %d: %v\n%s", w, err, p.stderr.String())
		}
	}
	if got.len() != workers*uploads {
		t.Fatalf("%d acknowledged uploads, want %d", got.len(), workers*uploads)
	}
	s := e.open(t, nil).Store
	if n := checkAcked(t, s, uris, got.all(), true); n != workers*uploads {
		t.Fatalf("%d versions, want %d", n, workers*uploads)
	}
	blobs := backendtest.Keys(t, e.raw(t), "blobs/d1/")
	if len(blobs) != workers*uploads {
		t.Fatalf("%d blobs for %d versions", len(blobs), workers*uploads)
	}
}

// D2: a worker process stopped with SIGSTOP while it holds the lock (its
// manifest read, its commit not sent), kept stopped past its lock expiry,
// then resumed. Meanwhile another worker process and the test commit
// versions. The resumed worker's commit is refused by the conditional put
// (ErrConflict), nothing it wrote becomes visible, the others are intact.
func TestStoppedWorkerCannotCommitAfterExpiry(t *testing.T) {
	e := newEnv(t, 3)
	e.lockExpiry = time.Second
	s := e.open(t, nil).Store
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const uri = "artifact://d2/paused/diff"
	v1, err := s.UploadBytes(ctx, uri, []byte("before the pause"), store.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}

	holdFile := filepath.Join(t.TempDir(), "go")
	paused := startWorker(t, e, workerJob{Mode: "gated", Name: "paused", URIs: []string{uri}, HoldFile: holdFile})
	blobLine := paused.expect("blob ", time.Minute, nil)
	pausedBlob := strings.TrimPrefix(blobLine, "blob ")
	paused.expect("hold", time.Minute, nil)
	if err := syscall.Kill(paused.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	st, err := s.IsLocked(ctx, uri)
	if err != nil || !st.Held || st.Holder.PID != paused.pid() {
		t.Fatalf("lock while the worker is stopped: %+v, %v; want held by pid %d", st, err, paused.pid())
	}

	// Other writers go on once the stopped worker's lease expires: a worker
	// process and this test.
	var got acks
	other := startWorker(t, e, workerJob{Mode: "hammer", Name: "other", URIs: []string{uri}, N: 3})
	if err := other.wait(time.Minute, &got); err != nil {
		t.Fatalf("other worker: %v\n%s", err, other.stderr.String())
	}
	last, err := s.UploadBytes(ctx, uri, []byte("after the pause"), store.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.add(ackOf(t, v1))
	got.add(ackOf(t, last))

	// Resume the stopped worker inside its critical section.
	if err := os.WriteFile(holdFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(paused.pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	result := paused.expect("result ", time.Minute, nil)
	// Its lease looked valid when it stopped, so it sent its commit: the
	// object store refused it (the conditional put), not the lock.
	if !strings.HasPrefix(result, "result err conflict=true") || !strings.Contains(result, "precondition=true") {
		t.Fatalf("resumed worker: %s, want its commit refused by the conditional put (ErrConflict)", result)
	}
	if err := paused.wait(time.Minute, nil); err != nil {
		t.Fatalf("resumed worker: %v\n%s", err, paused.stderr.String())
	}

	n := checkAcked(t, s, []string{uri}, got.all(), true)
	if n != 5 {
		t.Fatalf("%d versions, want 5 (v1, 3 from the other worker, the last)", n)
	}
	blobs := backendtest.Keys(t, e.raw(t), "blobs/d2/paused/diff/")
	if len(blobs) != n || slices.Contains(blobs, pausedBlob) {
		t.Fatalf("blobs %v: the refused writer's blob %s must be gone and every version's kept", blobs, pausedBlob)
	}
}

// A worker killed (SIGKILL) between its blob upload and its commit, while
// holding the lock: the artifact does not change, the next writer gets the
// lock once the lease expires, and Reconcile reports the orphan blob (and
// deletes it when applied).
func TestKilledWorkerLeavesOrphanForReconcile(t *testing.T) {
	e := newEnv(t, 3)
	e.lockExpiry = time.Second
	s := e.open(t, nil).Store
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const uri = "artifact://killed/task/log"
	v1, err := s.UploadBytes(ctx, uri, []byte("before the kill"), store.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}

	victim := startWorker(t, e, workerJob{Mode: "gated", Name: "victim", URIs: []string{uri}, HoldFile: filepath.Join(t.TempDir(), "never")})
	orphan := strings.TrimPrefix(victim.expect("blob ", time.Minute, nil), "blob ")
	victim.expect("hold", time.Minute, nil)
	if err := syscall.Kill(victim.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := victim.wait(30*time.Second, nil); err == nil {
		t.Fatal("the killed worker exited cleanly")
	}

	checkOnlyVersions(t, s, uri, v1)
	if blobs := backendtest.Keys(t, e.raw(t), "blobs/killed/"); !slices.Contains(blobs, orphan) || len(blobs) != 2 {
		t.Fatalf("blobs %v, want v1's and the orphan %s", blobs, orphan)
	}

	// The next writer waits for the dead holder's lease to expire.
	v2, err := s.UploadBytes(ctx, uri, []byte("after the kill"), store.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyVersions(t, s, uri, v1, v2)

	rep, err := s.Reconcile(ctx, store.ReconcileOptions{GracePeriod: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.OrphanBlobs, []string{orphan}) || len(rep.MissingBlobs) != 0 || rep.Applied {
		t.Fatalf("reconcile (dry run): %s", jsonOf(rep))
	}
	if blobs := backendtest.Keys(t, e.raw(t), "blobs/killed/"); len(blobs) != 3 {
		t.Fatalf("the dry run deleted something: %v", blobs)
	}
	rep, err = s.Reconcile(ctx, store.ReconcileOptions{GracePeriod: time.Nanosecond, Apply: true})
	if err != nil || rep.Deleted != 1 {
		t.Fatalf("reconcile (apply): %s, %v", jsonOf(rep), err)
	}
	if blobs := backendtest.Keys(t, e.raw(t), "blobs/killed/"); len(blobs) != 2 || slices.Contains(blobs, orphan) {
		t.Fatalf("blobs after reconcile: %v", blobs)
	}
	checkOnlyVersions(t, s, uri, v1, v2)
}

// checkOnlyVersions asserts that uri has exactly the versions want, intact.
func checkOnlyVersions(t *testing.T, s *store.Store, uri string, want ...store.Metadata) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vs, err := s.Versions(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(want) {
		t.Fatalf("%d versions, want %d", len(vs), len(want))
	}
	for i := range vs {
		if vs[i].Version != want[i].Version || vs[i].SHA256 != want[i].SHA256 || vs[i].BlobKey != want[i].BlobKey {
			t.Fatalf("version %d = %+v, want %+v", i, vs[i], want[i])
		}
	}
	if err := s.VerifyChecksum(ctx, uri); err != nil {
		t.Fatal(err)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
