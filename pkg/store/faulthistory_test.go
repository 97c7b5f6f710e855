package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
)

// This file checks the write protocol's fault safety ("Write protocol" and
// "Reconcile" in doc.go) against a sequential model of the artifacts,
// with porcupine: several Stores (as several hosts would) on one shared
// backend and one shared lock service upload, delete whole artifacts,
// delete single versions and read, while their backends lose replies
// after the call landed, fail calls before they land, add latency, while
// leases are broken under them, and while Reconcile (on a clock moved past
// its grace period) fences and deletes what it takes for orphans.

// fhKind is the kind of an operation of the history.
type fhKind int

const (
	fhUpload        fhKind = iota // Upload of new content
	fhDeleteAll                   // Delete of the artifact
	fhDeleteVersion               // Delete of one version (?version=<n>)
	fhList                        // Versions
	fhStat                        // Stat of the current version
	fhDownload                    // Download of the current version
)

func (k fhKind) String() string {
	return [...]string{"upload", "delete", "delete-version", "versions", "stat", "download"}[k]
}

// fhInput is an operation: its kind, its artifact, the id of the content
// it uploads (a SHA-256 prefix) or the version it deletes.
type fhInput struct {
	kind    fhKind
	uri     string
	id      string
	version int
}

// fhOutput is what the operation returned.
type fhOutput struct {
	// unknown: the write failed with ErrUnknownOutcome; it may have taken
	// effect (at any time after its call) or not. See fhModel.
	unknown bool
	// notFound: the artifact (or the version) does not exist.
	notFound bool
	// version and id: the version an upload got, or the current version
	// a Stat or Download returned (its number and content id).
	version int
	id      string
	// list: what Versions returned, "<n>:<id>" oldest first,
	// comma-separated ("" for a missing artifact).
	list string
}

// fhState is the model of one artifact: the number its next version gets
// and its live versions, encoded like fhOutput.list. Comparable, so that
// porcupine's default equality works.
type fhState struct {
	next int
	list string
}

type fhVersion struct {
	n  int
	id string
}

func (s fhState) versions() []fhVersion {
	if s.list == "" {
		return nil
	}
	var out []fhVersion
	for _, e := range strings.Split(s.list, ",") {
		n, id, _ := strings.Cut(e, ":")
		v, _ := strconv.Atoi(n)
		out = append(out, fhVersion{v, id})
	}
	return out
}

func fhEncode(vs []fhVersion) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%d:%s", v.n, v.id)
	}
	return strings.Join(parts, ",")
}

// fhWith is the state holding vs. An artifact without versions does not
// exist (its manifest is a tombstone, or nothing), and the next upload
// creates it again with version 1: that is what the store does today (a
// tombstone keeps next_version, but an upload over it starts from no
// manifest).
func fhWith(next int, vs []fhVersion) fhState {
	if len(vs) == 0 {
		return fhState{next: 1}
	}
	return fhState{next: next, list: fhEncode(vs)}
}

// fhModel is the sequential specification of the artifacts of the history,
// with versioning on and no pruning, partitioned by artifact.
//
// How failed writes are modelled (the model is sound for a store that
// keeps its documented promises, and no weaker):
//
//   - A write that failed with ErrUnknownOutcome "may or may not have
//     happened": it is in the history with output unknown, its Step always
//     succeeds and applies its effect (whatever version number the model
//     is at), and its return time is set after every other operation (an
//     infinite end: it may linearize anywhere after its call). Placed after
//     every operation, its effect constrains nothing, which is "did not
//     happen"; placed anywhere earlier, it is "happened then". So no other
//     choice is needed in Step.
//   - Any other failed write "did not happen" and is left out of the
//     history: ErrConflict and ErrLockTimeout by their documentation, and
//     every other error too, since doc.go promises that a write failing
//     after its blob transfer shows nothing and deletes its blob, unless
//     its outcome is unknown (ErrUnknownOutcome). If one of them did take
//     effect, a later read shows a version (or an absence) that no
//     operation explains, and the history is not linearizable.
//   - A Delete that returned ErrNotFound is an operation whose output is
//     "not found": the artifact (or version) was absent at its
//     linearization point.
//   - A read that failed (other than not found) is left out: it has no
//     effect.
func fhModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byURI := map[string][]porcupine.Operation{}
			var order []string
			for _, op := range history {
				uri := op.Input.(fhInput).uri
				if _, ok := byURI[uri]; !ok {
					order = append(order, uri)
				}
				byURI[uri] = append(byURI[uri], op)
			}
			out := make([][]porcupine.Operation, 0, len(order))
			for _, uri := range order {
				out = append(out, byURI[uri])
			}
			return out
		},
		Init: func() any { return fhState{next: 1} },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(fhState), input.(fhInput), output.(fhOutput)
			vs := st.versions()
			switch in.kind {
			case fhUpload:
				if !out.unknown && out.version != st.next {
					return false, st
				}
				return true, fhWith(st.next+1, append(vs, fhVersion{st.next, in.id}))
			case fhDeleteAll:
				switch {
				case out.unknown:
					return true, fhWith(st.next, nil)
				case out.notFound:
					return len(vs) == 0, st
				}
				return len(vs) > 0, fhWith(st.next, nil)
			case fhDeleteVersion:
				i := slices.IndexFunc(vs, func(v fhVersion) bool { return v.n == in.version })
				switch {
				case out.notFound:
					return i < 0 && !out.unknown, st
				case i < 0:
					return out.unknown, st
				}
				return true, fhWith(st.next, slices.Delete(vs, i, i+1))
			case fhList:
				return out.list == st.list, st
			default: // fhStat, fhDownload: the current version
				if out.notFound {
					return len(vs) == 0, st
				}
				return len(vs) > 0 && vs[len(vs)-1] == fhVersion{out.version, out.id}, st
			}
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(fhInput), output.(fhOutput)
			var res string
			switch {
			case out.unknown:
				res = "unknown outcome"
			case out.notFound:
				res = "not found"
			case in.kind == fhUpload:
				res = fmt.Sprintf("v%d", out.version)
			case in.kind == fhList:
				res = "[" + out.list + "]"
			case in.kind == fhStat || in.kind == fhDownload:
				res = fmt.Sprintf("v%d:%s", out.version, out.id)
			default:
				res = "ok"
			}
			switch in.kind {
			case fhUpload:
				return fmt.Sprintf("upload(%s) -> %s", in.id, res)
			case fhDeleteVersion:
				return fmt.Sprintf("delete(v%d) -> %s", in.version, res)
			}
			return fmt.Sprintf("%s() -> %s", in.kind, res)
		},
		DescribeState: func(state any) string {
			st := state.(fhState)
			return fmt.Sprintf("next %d [%s]", st.next, st.list)
		},
	}
}

// fhHistory records the operations of the clients.
type fhHistory struct {
	base time.Time
	mu   sync.Mutex
	ops  []porcupine.Operation
	// unknown are the indexes of the operations whose outcome is unknown:
	// their return time is set to the end of the history by check.
	unknown []int
	// excluded are the writes left out of the history (they failed, so
	// they did not happen), described for the report of a failed check.
	excluded []string
}

// exclude notes a write left out of the history.
func (h *fhHistory) exclude(client int, in fhInput, call, ret int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := fhModel()
	desc := strings.TrimSuffix(m.DescribeOperation(in, fhOutput{}), " -> ok")
	if in.kind == fhUpload {
		desc = fmt.Sprintf("upload(%s)", in.id)
	}
	h.excluded = append(h.excluded, fmt.Sprintf("  [%8d, %8d] client %d %s %s -> failed: %v", call/1000, ret/1000, client,
		strings.TrimPrefix(in.uri, "artifact://"), desc, err))
}

func (h *fhHistory) now() int64 { return time.Since(h.base).Nanoseconds() }

func (h *fhHistory) add(client int, in fhInput, out fhOutput, call, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.unknown {
		h.unknown = append(h.unknown, len(h.ops))
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// operations returns the history as porcupine checks it: the operations
// whose outcome is unknown end after every other one ("infinity": they
// may linearize anywhere after their call).
func (h *fhHistory) operations() []porcupine.Operation {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	unknown := slices.Clone(h.unknown)
	h.mu.Unlock()
	end := int64(0)
	for _, op := range ops {
		end = max(end, op.Return)
	}
	for _, i := range unknown {
		ops[i].Return = end + 1
	}
	return ops
}

// check runs porcupine on the history and fails t when it is not
// linearizable, leaving a visualization in the temporary directory.
func (h *fhHistory) check(t *testing.T, label string) {
	t.Helper()
	ops := h.operations()
	res, info := porcupine.CheckOperationsVerbose(fhModel(), ops, 20*time.Second)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		t.Logf("%s: the linearizability check of %d operations timed out (inconclusive)", label, len(ops))
		return
	}
	path := fmt.Sprintf("%s/artifactstore-faulthistory-%s-%d.html", os.TempDir(), strings.ReplaceAll(label, "/", "_"), time.Now().UnixNano())
	if err := porcupine.VisualizePath(fhModel(), info, path); err == nil {
		t.Logf("visualization: %s", path)
	}
	h.mu.Lock()
	excluded := strings.Join(h.excluded, "\n")
	h.mu.Unlock()
	t.Errorf("%s: the history of %d operations is not linearizable:\n%s\nwrites left out (failed):\n%s", label, len(ops), fhDescribe(ops), excluded)
}

// fhDescribe lists a history in call order, with times in microseconds
// from the start.
func fhDescribe(ops []porcupine.Operation) string {
	ops = slices.Clone(ops)
	slices.SortStableFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	m := fhModel()
	var b strings.Builder
	for _, op := range ops {
		in := op.Input.(fhInput)
		fmt.Fprintf(&b, "  [%8d, %8d] client %d %s %s\n", op.Call/1000, op.Return/1000, op.ClientId,
			strings.TrimPrefix(in.uri, "artifact://"), m.DescribeOperation(op.Input, op.Output))
	}
	return b.String()
}

// fhWorld is the shared part of a run: one backend, one lock service,
// one clock, and a Store per client on top.
type fhWorld struct {
	clock  *fakeClock
	mem    backend.Backend // the plain backend
	shared backend.Backend // mem, reporting the fake clock's times
	locker lock.Locker
}

func newFHWorld(t *testing.T, lcfg lock.Config) *fhWorld {
	t.Helper()
	e := memEnv()
	w := &fhWorld{clock: newFakeClock(), mem: e.newBackend(t)}
	// Every Store writes through this one clockedBackend, so that every
	// Store (Reconcile's above all) sees the modification times of the
	// fake clock for every object, whoever wrote it.
	w.shared = &clockedBackend{Backend: w.mem, now: w.clock.Now, written: map[string]time.Time{}}
	l, err := memlock.New(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	w.locker = l
	return w
}

// open returns a Store of the world; wrap, when not nil, decorates its
// backend (a backendtest.Faulty).
func (w *fhWorld) open(t *testing.T, cfg Config, wrap func(backend.Backend) backend.Backend) *Store {
	t.Helper()
	cfg.Now = w.clock.Now
	return newFixtureOn(t, w.shared, w.locker, cfg, wrap).s
}

// fhMissingBlobs returns the versions of uri whose blob does not exist, on
// a manifest that did not change while its blobs were looked up (so that a
// version deleted meanwhile is not reported).
func fhMissingBlobs(ctx context.Context, b backend.Backend, uri string) ([]string, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	u = u.Artifact()
	for range 10 {
		rc, before, err := b.Get(ctx, manifestKey(u))
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		m, err := decodeManifest(u, data)
		if err != nil {
			return nil, err
		}
		var missing []string
		for _, v := range m.Versions {
			if v.inline() {
				if sha(v.Inline) != v.SHA256 {
					missing = append(missing, fmt.Sprintf("%s (content in the manifest)", u.WithVersion(v.Version)))
				}
				continue
			}
			if _, err := b.Stat(ctx, v.Blob); errors.Is(err, ErrNotFound) {
				missing = append(missing, fmt.Sprintf("%s (blob %s)", u.WithVersion(v.Version), v.Blob))
			}
		}
		after, err := b.Stat(ctx, manifestKey(u))
		if err == nil && after.ETag == before.ETag {
			return missing, nil
		}
	}
	return nil, nil // the manifest kept changing: nothing confirmed
}

// fhListOf encodes what Versions returned like fhOutput.list.
func fhListOf(mds []Metadata) string {
	vs := make([]fhVersion, len(mds))
	for i, md := range mds {
		vs[i] = fhVersion{md.Version, md.SHA256[:12]}
	}
	return fhEncode(vs)
}

// fhResult turns the error of a write into its output, and whether it
// belongs in the history (see fhModel).
func fhResult(err error) (out fhOutput, record bool) {
	switch {
	case err == nil:
		return fhOutput{}, true
	case errors.Is(err, ErrUnknownOutcome): // before ErrConflict: an unknown outcome may match it too
		return fhOutput{unknown: true}, true
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
		return fhOutput{notFound: true}, true
	}
	return fhOutput{}, false
}

// TestFaultHistoryResentCommitAfterTombstoneRemoved: a writer whose
// manifest Put landed but whose reply was lost reads the manifest back to
// learn its outcome. If, before that read, its lease is broken, another
// writer reads the new version, deletes the artifact (a tombstone commit,
// then the deletion of the blobs, the writer's own included) and Reconcile
// removes the tombstone (older than its grace period by the backend's
// clock), the read-back finds no manifest, which does not mean that the
// commit did not land: the write must fail with ErrUnknownOutcome.
//
// This is the minimized form of what the randomized check found: the
// store took "no object" for "my commit did not land", so that an upload
// that created the artifact sent its if-absent Put again, which landed a
// second time, resurrecting the deleted artifact with an acknowledged
// version whose blob the Delete had removed ("create"); and an upload over
// an existing manifest reported ErrConflict ("never visible") for a
// version a reader had seen ("update"). Both histories are not
// linearizable.
func TestFaultHistoryResentCommitAfterTombstoneRemoved(t *testing.T) {
	for _, existing := range []bool{false, true} {
		name := "create"
		if existing {
			name = "update"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			w := newFHWorld(t, lock.Config{})
			var fa *backendtest.Faulty
			a := w.open(t, Config{Versioning: true, WriterID: "a"}, func(b backend.Backend) backend.Backend {
				fa = backendtest.NewFaulty(b)
				return fa
			})
			other := w.open(t, Config{Versioning: true, WriterID: "b"}, nil)
			const uri = "artifact://fh/t/log"
			h := &fhHistory{base: time.Now()}
			upload := func(client int, s *Store, data []byte) (Metadata, error) {
				in := fhInput{kind: fhUpload, uri: uri, id: sha(data)[:12]}
				call := h.now()
				md, err := s.UploadBytes(ctx, uri, data, UploadOptions{})
				out, ok := fhResult(err)
				out.version = md.Version
				if ok {
					h.add(client, in, out, call, h.now())
				}
				return md, err
			}
			if existing {
				// The next upload builds on this manifest, which its
				// Store wrote, without reading it (commitOnce).
				if _, err := upload(0, a, []byte("first")); err != nil {
					t.Fatal(err)
				}
			}

			var hookErr error
			fa.Inject(
				// The reply of the manifest Put is lost: it landed.
				backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Err: backendtest.Transient("reply lost"), At: backendtest.After},
				// The read-back after it is slow: meanwhile the lease is
				// broken, another host reads and deletes the artifact,
				// and Reconcile removes the tombstone once it is old.
				backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
					hookErr = func() error {
						if _, err := other.ForceUnlock(ctx, uri); err != nil {
							return err
						}
						call := h.now()
						md, err := other.Stat(ctx, uri)
						if err != nil {
							return fmt.Errorf("stat: %w", err)
						}
						h.add(1, fhInput{kind: fhStat, uri: uri}, fhOutput{version: md.Version, id: md.SHA256[:12]}, call, h.now())
						call = h.now()
						if err := other.Delete(ctx, uri); err != nil {
							return fmt.Errorf("delete: %w", err)
						}
						h.add(1, fhInput{kind: fhDeleteAll, uri: uri}, fhOutput{}, call, h.now())
						w.clock.Advance(2 * time.Hour)
						rep, err := other.Reconcile(ctx, ReconcileOptions{Apply: true, GracePeriod: time.Hour})
						if err != nil || rep.TombstonesRemoved != 1 {
							return fmt.Errorf("reconcile: %+v, %v", rep, err)
						}
						return nil
					}()
				}},
			)
			md, err := upload(0, a, []byte("second"))
			if hookErr != nil {
				t.Fatalf("the other host's steps: %v", hookErr)
			}
			if !errors.Is(err, ErrUnknownOutcome) {
				t.Errorf("upload whose commit landed, was read, deleted, and whose tombstone was removed before its read-back: %+v, %v; want ErrUnknownOutcome", md, err)
			}

			call := h.now()
			vs, err := other.Versions(ctx, uri)
			out, ok := fhResult(err)
			if err != nil && !ok {
				t.Fatal(err)
			}
			out.list = fhListOf(vs)
			h.add(1, fhInput{kind: fhList, uri: uri}, out, call, h.now())
			h.check(t, t.Name())
			if missing, err := fhMissingBlobs(ctx, w.mem, uri); err != nil || len(missing) > 0 {
				t.Errorf("versions without content: %v, %v", missing, err)
			}
		})
	}
}

// TestFaultHistory runs, per seed, several clients (goroutines), each with
// its own Store on one shared in-memory backend and one shared in-memory
// lock service, that upload (versioning on), delete artifacts, delete
// versions and read (Versions, Stat, Download) on four artifacts, while:
//
//   - the backends of all Stores but one lose replies of manifest and blob
//     Puts after they landed (and then read the manifest back slowly),
//     fail some before they land (up to every retry, so that some writes
//     end with ErrUnknownOutcome), fail manifest reads (read-backs
//     included) and add latency;
//   - leases are lost: they expire quickly (no automatic refresh) and
//     another goroutine breaks random locks with ForceUnlock;
//   - a reconciler moves the clock and runs Reconcile with Apply: by a
//     third of the grace period mostly (leftovers and tombstones go once
//     they are a few cycles old), past it at once sometimes, so that the
//     blobs of uploads in flight are orphans by age and get fenced and
//     deleted under them.
//
// The history of the operations must be linearizable under fhModel, every
// version listed at the end must download with its checksum, and so must
// every one of them after a last Reconcile with Apply, which must find no
// missing blob and leave no orphan.
//
// The seed fixes each client's operations and each backend's fault plan
// (faults strike at given call counts); the interleaving is the
// scheduler's. ARTIFACTSTORE_FAULTHISTORY_SEED=<n> runs one seed and
// ARTIFACTSTORE_FAULTHISTORY_OPS=<n> sets the number of operations per
// seed (200).
func TestFaultHistory(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if v := os.Getenv("ARTIFACTSTORE_FAULTHISTORY_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ARTIFACTSTORE_FAULTHISTORY_SEED: %v", err)
		}
		seeds = []uint64{n}
	}
	ops := 200
	if v := os.Getenv("ARTIFACTSTORE_FAULTHISTORY_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ARTIFACTSTORE_FAULTHISTORY_OPS: %q", v)
		}
		ops = n
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (rerun with ARTIFACTSTORE_FAULTHISTORY_SEED=%d), %d operations", seed, seed, ops)
			runFaultHistory(t, seed, ops)
		})
	}
}

// fhStats counts what happened in a run.
type fhStats struct {
	uploads, deletes, versionDeletes, notFound, reads atomic.Int64
	unknown, conflicts, lockTimeouts, injected        atomic.Int64
	unknownConflicts                                  atomic.Int64 // unknown outcomes whose error matches ErrConflict too
	readFailures, forceUnlocks, reconciles            atomic.Int64
	reconcileErrors, reclaimed, tombstonesRemoved     atomic.Int64
}

// fhFaults is the fault plan of one client's backend, drawn from rng. calls
// is about how many manifest Puts the client makes.
func fhFaults(rng *rand.Rand, calls int) []backendtest.Fault {
	at := func() int { return rng.IntN(max(calls, 1)) }
	var fs []backendtest.Fault
	// The read-back after a lost reply is slow, so that other writers,
	// lease losses and Reconcile act between the commit and its
	// resolution.
	var lost atomic.Bool
	markLost := func(context.Context, backendtest.Op, string) { lost.Store(true) }
	fs = append(fs, backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Hook: func(context.Context, backendtest.Op, string) {
		if lost.CompareAndSwap(true, false) {
			time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		}
	}})
	for range 6 { // a lost reply: the manifest Put landed
		fs = append(fs, backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: at(), Times: 1,
			Err: backendtest.Transient("manifest put: reply lost"), At: backendtest.After, Hook: markLost})
	}
	for range 2 { // a failure before it lands: resent, up to every retry
		fs = append(fs, backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: at(), Times: 1 + rng.IntN(4),
			Err: backendtest.Transient("manifest put: connection reset")})
	}
	for range 2 { // blob Puts: lost replies (the decorator resends) and failures
		fs = append(fs, backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Skip: at(), Times: 1,
			Err: backendtest.Transient("blob put: reply lost"), At: backendtest.After})
	}
	fs = append(fs, backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Skip: at(), Times: 4,
		Err: backendtest.Transient("blob put: unavailable")})
	for range 2 { // manifest reads failing every retry (a read-back among them, sometimes)
		fs = append(fs, backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Skip: 2 * at(), Times: 4,
			Err: backendtest.Transient("manifest get: unavailable")})
	}
	ops := []backendtest.Op{backendtest.OpPut, backendtest.OpGet, backendtest.OpDelete}
	for range 8 { // latency
		fs = append(fs, backendtest.Fault{Op: ops[rng.IntN(len(ops))], KeyPrefix: []string{"manifests/", "blobs/"}[rng.IntN(2)],
			Skip: at(), Times: 1 + rng.IntN(3), Delay: time.Duration(1+rng.IntN(15)) * time.Millisecond})
	}
	return fs
}

// fhRecordWrite records a write in the history according to its error
// (see fhModel) and counts it; an error no fault explains fails t.
func fhRecordWrite(t *testing.T, h *fhHistory, st *fhStats, client int, in fhInput, out fhOutput, call, ret int64, err error) {
	res, record := fhResult(err)
	switch {
	case err == nil:
	case res.unknown:
		st.unknown.Add(1)
		if errors.Is(err, ErrConflict) {
			st.unknownConflicts.Add(1)
		}
	case res.notFound:
		if in.kind == fhUpload {
			t.Errorf("%s %s: %v", in.kind, in.uri, err)
		}
		st.notFound.Add(1)
	case errors.Is(err, ErrConflict):
		st.conflicts.Add(1)
	case errors.Is(err, ErrLockTimeout):
		st.lockTimeouts.Add(1)
	case errors.Is(err, backendtest.ErrInjected):
		st.injected.Add(1) // a fault that outlasted the retries, before the commit
	default:
		t.Errorf("%s %s: unexpected error: %v", in.kind, in.uri, err)
	}
	if !record {
		h.exclude(client, in, call, ret, err)
		return
	}
	res.version, res.id, res.list = out.version, out.id, out.list
	if res.unknown || res.notFound {
		res.version = 0
	}
	h.add(client, in, res, call, ret)
}

// fhRecordRead records a read in the history (not found is a result; any
// other failure leaves it out) and calls suspect on an integrity error.
func fhRecordRead(h *fhHistory, st *fhStats, client int, in fhInput, out fhOutput, call, ret int64, err error, suspect func(uri string, err error)) {
	switch {
	case err == nil:
	case errors.Is(err, ErrIntegrity):
		st.readFailures.Add(1)
		suspect(in.uri, err)
		return
	case errors.Is(err, ErrNotFound):
		out = fhOutput{notFound: true}
	default:
		st.readFailures.Add(1)
		return
	}
	st.reads.Add(1)
	if in.kind == fhList {
		out = fhOutput{list: out.list} // a missing artifact lists nothing
	}
	h.add(client, in, out, call, ret)
}

func runFaultHistory(t *testing.T, seed uint64, totalOps int) {
	const (
		clients = 5
		grace   = time.Minute
	)
	uris := []string{"artifact://fh/a/log", "artifact://fh/a/diff", "artifact://fh/b/test", "artifact://fh/b/log"}
	perClient := (totalOps + clients - 1) / clients
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w := newFHWorld(t, lock.Config{Expiry: 80 * time.Millisecond, DisableAutoRefresh: true,
		RetryInterval: time.Millisecond, MaxRetryInterval: 4 * time.Millisecond})
	cfg := func(name string) Config {
		// Odd seeds store contents of up to 64 bytes inside the manifests
		// (about half of them; older ones move to blobs as more come).
		inline := []int{-1, 64}[seed%2]
		return Config{Versioning: true, LockTimeout: 250 * time.Millisecond, ConflictBackoff: time.Millisecond, WriterID: name, InlineMaxBytes: inline}
	}
	stores := make([]*Store, clients)
	for c := range clients {
		var wrap func(backend.Backend) backend.Backend
		if c > 0 { // client 0's backend is faultless
			faults := fhFaults(rand.New(rand.NewPCG(seed, uint64(1000+c))), perClient/2)
			wrap = func(b backend.Backend) backend.Backend {
				f := backendtest.NewFaulty(b)
				f.Inject(faults...)
				return f
			}
		}
		stores[c] = w.open(t, cfg(fmt.Sprintf("client-%d", c)), wrap)
	}
	reconciler := w.open(t, cfg("reconciler"), nil)

	var (
		st   fhStats
		h    = &fhHistory{base: time.Now()}
		wg   sync.WaitGroup
		done atomic.Bool
	)
	// suspect is called when a read suggests a missing blob: it fails the
	// test when the backend confirms a live version without its blob.
	suspect := func(uri string, err error) {
		missing, merr := fhMissingBlobs(ctx, w.mem, uri)
		switch {
		case merr != nil:
			t.Errorf("check %s after %v: %v", uri, err, merr)
		case len(missing) > 0:
			t.Errorf("live versions without content %v (a read failed with: %v)", missing, err)
		default:
			t.Logf("read of %s failed with an integrity error that the manifest no longer explains (a version deleted during the read): %v", uri, err)
		}
	}

	for c := range clients {
		wg.Go(func() {
			s := stores[c]
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			known := map[string][]int{} // versions this client has seen, per artifact
			for i := range perClient {
				if ctx.Err() != nil {
					return
				}
				uri := uris[rng.IntN(len(uris))]
				var in fhInput
				switch p := rng.IntN(100); {
				case p < 40:
					data := fmt.Appendf(nil, "seed %d client %d op %d %s", seed, c, i, strings.Repeat("x", rng.IntN(64)))
					in = fhInput{kind: fhUpload, uri: uri, id: sha(data)[:12]}
					call := h.now()
					md, err := s.UploadBytes(ctx, uri, data, UploadOptions{})
					ret := h.now()
					if err == nil {
						st.uploads.Add(1)
						known[uri] = append(known[uri], md.Version)
						if md.SHA256 != sha(data) {
							t.Errorf("upload %s returned SHA-256 %s, want %s", uri, md.SHA256, sha(data))
						}
					}
					fhRecordWrite(t, h, &st, c, in, fhOutput{version: md.Version}, call, ret, err)
				case p < 55:
					n := 1 + rng.IntN(8)
					if k := known[uri]; len(k) > 0 && rng.IntN(5) > 0 {
						n = k[rng.IntN(len(k))]
					}
					in = fhInput{kind: fhDeleteVersion, uri: uri, version: n}
					call := h.now()
					err := s.Delete(ctx, fmt.Sprintf("%s?version=%d", uri, n))
					ret := h.now()
					if err == nil {
						st.versionDeletes.Add(1)
					}
					fhRecordWrite(t, h, &st, c, in, fhOutput{}, call, ret, err)
				case p < 62:
					in = fhInput{kind: fhDeleteAll, uri: uri}
					call := h.now()
					err := s.Delete(ctx, uri)
					ret := h.now()
					if err == nil {
						st.deletes.Add(1)
					}
					fhRecordWrite(t, h, &st, c, in, fhOutput{}, call, ret, err)
				case p < 77:
					in = fhInput{kind: fhList, uri: uri}
					call := h.now()
					vs, err := s.Versions(ctx, uri)
					ret := h.now()
					known[uri] = known[uri][:0]
					for _, v := range vs {
						known[uri] = append(known[uri], v.Version)
					}
					fhRecordRead(h, &st, c, in, fhOutput{list: fhListOf(vs)}, call, ret, err, suspect)
				case p < 87:
					in = fhInput{kind: fhStat, uri: uri}
					call := h.now()
					md, err := s.Stat(ctx, uri)
					ret := h.now()
					out := fhOutput{version: md.Version}
					if err == nil {
						out.id = md.SHA256[:12]
					}
					fhRecordRead(h, &st, c, in, out, call, ret, err, suspect)
				default:
					in = fhInput{kind: fhDownload, uri: uri}
					call := h.now()
					data, md, err := s.Download(ctx, uri)
					ret := h.now()
					out := fhOutput{version: md.Version}
					if err == nil {
						out.id = md.SHA256[:12]
						if got := sha(data); got != md.SHA256 {
							t.Errorf("download %s: content %s, metadata says %s", md.URI, got, md.SHA256)
						}
					}
					fhRecordRead(h, &st, c, in, out, call, ret, err, suspect)
				}
			}
		})
	}
	var chaos sync.WaitGroup
	// Lease losses: locks broken under their holders.
	chaos.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 2000))
		for i := 0; i < totalOps/6 && !done.Load(); i++ {
			time.Sleep(time.Duration(1+rng.IntN(6)) * time.Millisecond)
			if ls, err := stores[0].ForceUnlock(ctx, uris[rng.IntN(len(uris))]); err == nil && ls.Held {
				st.forceUnlocks.Add(1)
			}
		}
	})
	// Reconcile racing the writers: every blob written before the clock
	// moved is older than the grace period.
	chaos.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 3000))
		for i := 0; i < max(16, totalOps/12) && !done.Load(); i++ {
			time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
			// Mostly a third of the grace period, so that what it
			// reclaims is a few cycles old (the leftovers of failed
			// writes) and the tombstones of artifacts without any go;
			// sometimes past it at once, so that the blobs of the
			// uploads in flight are reclaimed under them.
			if rng.IntN(4) == 0 {
				w.clock.Advance(2 * grace)
			} else {
				w.clock.Advance(grace / 3)
			}
			rep, err := reconciler.Reconcile(ctx, ReconcileOptions{Apply: true, GracePeriod: grace})
			st.reconciles.Add(1)
			st.reclaimed.Add(int64(rep.Deleted))
			st.tombstonesRemoved.Add(int64(rep.TombstonesRemoved))
			if err != nil {
				st.reconcileErrors.Add(1)
				t.Logf("reconcile during the run: %v", err)
			}
			for _, m := range rep.MissingBlobs {
				u, _ := ParseURI(m.URI)
				suspect(u.Artifact().String(), fmt.Errorf("reconcile reported %s missing blob %s", m.URI, m.BlobKey))
			}
		}
	})
	wg.Wait()
	done.Store(true)
	chaos.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the run did not finish in time: %v", ctx.Err())
	}

	// The final state, read by a faultless Store, closes the history.
	final := w.open(t, cfg("final"), nil)
	lists := map[string]string{}
	for _, uri := range uris {
		call := h.now()
		vs, err := final.Versions(ctx, uri)
		if err != nil && !(errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity)) {
			t.Fatalf("final versions of %s: %v", uri, err)
		}
		lists[uri] = fhListOf(vs)
		h.add(clients, fhInput{kind: fhList, uri: uri}, fhOutput{list: lists[uri]}, call, h.now())
	}
	h.check(t, t.Name())
	// The check is not vacuous: a final listing showing a version that no
	// upload made is refused.
	{
		bad := h.operations()
		last := &bad[len(bad)-1]
		out := last.Output.(fhOutput)
		out.list = strings.TrimPrefix(out.list+",99:000000000000", ",")
		last.Output = out
		if res := porcupine.CheckOperationsTimeout(fhModel(), bad, 20*time.Second); res != porcupine.Illegal {
			t.Errorf("a history whose last listing shows a version nobody uploaded was judged %v, want Illegal", res)
		}
	}

	// Every version listed downloads with its checksum.
	checkContent := func(when string) {
		t.Helper()
		for _, uri := range uris {
			vs, err := final.Versions(ctx, uri)
			if err != nil && !(errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity)) {
				t.Fatalf("%s: versions of %s: %v", when, uri, err)
			}
			if got := fhListOf(vs); got != lists[uri] {
				t.Errorf("%s: %s holds [%s], held [%s] at the end of the run", when, uri, got, lists[uri])
			}
			for _, v := range vs {
				data, md, err := final.Download(ctx, v.URI)
				switch {
				case err != nil:
					t.Errorf("%s: download %s: %v", when, v.URI, err)
				case sha(data) != v.SHA256 || md.SHA256 != v.SHA256:
					t.Errorf("%s: download %s: content %s, want %s", when, v.URI, sha(data), v.SHA256)
				}
			}
			if missing, err := fhMissingBlobs(ctx, w.mem, uri); err != nil || len(missing) > 0 {
				t.Errorf("%s: versions without content: %v, %v", when, missing, err)
			}
		}
	}
	checkContent("after the run")

	// Reconcile, past the grace period of every blob: nothing acknowledged
	// is lost, the orphans (of the uploads that failed with an unknown
	// outcome, or whose cleanup failed) go, and none is left.
	w.clock.Advance(2 * grace)
	rep, err := final.Reconcile(ctx, ReconcileOptions{Apply: true, GracePeriod: grace})
	if err != nil || len(rep.MissingBlobs) > 0 || len(rep.InvalidManifests) > 0 || len(rep.Strays) > 0 {
		t.Errorf("final reconcile: %+v, %v", rep, err)
	}
	st.reclaimed.Add(int64(rep.Deleted))
	st.tombstonesRemoved.Add(int64(rep.TombstonesRemoved))
	checkContent("after the final reconcile")
	w.clock.Advance(2 * grace)
	again, err := final.Reconcile(ctx, ReconcileOptions{GracePeriod: grace})
	if err != nil || len(again.OrphanBlobs) > 0 || again.Pending > 0 || len(again.MissingBlobs) > 0 {
		t.Errorf("reconcile after the final one: %+v, %v", again, err)
	}

	t.Logf("%d operations in the history: %d uploads, %d deletes, %d version deletes, %d not found, %d reads acknowledged; "+
		"%d unknown outcomes (%d of them matching ErrConflict too), %d conflicts, %d lock timeouts, %d injected failures, %d failed reads; "+
		"%d locks broken, %d reconciles (%d with errors), %d blobs reclaimed, %d tombstones removed",
		len(h.ops), st.uploads.Load(), st.deletes.Load(), st.versionDeletes.Load(), st.notFound.Load(), st.reads.Load(),
		st.unknown.Load(), st.unknownConflicts.Load(), st.conflicts.Load(), st.lockTimeouts.Load(), st.injected.Load(), st.readFailures.Load(),
		st.forceUnlocks.Load(), st.reconciles.Load(), st.reconcileErrors.Load(), st.reclaimed.Load(), st.tombstonesRemoved.Load())
}
