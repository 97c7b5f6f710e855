package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/store"
)

// envSoak, set to 1, runs TestSoakReconcileLoop in full (at least
// soakFullCycles reconcile cycles); otherwise it runs a short, bounded
// form fit for CI.
const envSoak = "ARTIFACTSTORE_SOAK"

const (
	soakShortCycles = 40
	soakShortBudget = 60 * time.Second
	soakFullCycles  = 1000
	soakFullBudget  = 20 * time.Minute
	// soakWorkerOps and soakWorkerTimeout bound a soak worker process in
	// operations and time, whatever the test does.
	soakWorkerOps     = 200000
	soakWorkerTimeout = 30 * time.Minute
	// soakPauseMax bounds the random pause between two reconcile cycles,
	// so that the cycles meet the writers at every phase of their
	// operations and the run lasts long enough for them to do many.
	soakPauseMax = 200 * time.Millisecond
)

// soakEvent is one operation of a soak worker, printed as a "soak <json>"
// line: its kind ("upload", "delete", "delete-version"), artifact, the
// version it named (delete-version) or got (upload), the SHA-256 of the
// content it uploaded (also when it failed), its call and return times
// (Unix nanoseconds: the workers run on one host), and how it ended.
type soakEvent struct {
	Worker  string `json:"worker"`
	Op      string `json:"op"`
	URI     string `json:"uri"`
	Version int    `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Call    int64  `json:"call"`
	Return  int64  `json:"return"`
	// Class is "ok", "conflict", "lock-timeout", "unknown" (ErrUnknownOutcome),
	// "not-found" or "other"; Err the error's text.
	Class string `json:"class"`
	Err   string `json:"err,omitempty"`
}

// soakClass classifies a write's error. An unknown outcome comes first:
// its error may match ErrConflict too (a lease found lost before a resend).
func soakClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrUnknownOutcome):
		return "unknown"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, store.ErrLockTimeout):
		return "lock-timeout"
	case errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrIntegrity):
		return "not-found"
	}
	return "other"
}

// runSoakWorker is the "soak" worker mode: until job.HoldFile exists (or
// soakWorkerOps operations, or soakWorkerTimeout), pick a random artifact
// of job.URIs and upload new content to it, or, on the others than the
// first, delete a version of it (20%) or the artifact (10%); print a soak
// line per operation. The first artifact stands for the append-only
// artifacts soakKept(i), only ever uploaded to, so that every upload
// acknowledged on them must be there at the end; a new one every
// soakKeptOps operations keeps the manifests small.
func runSoakWorker(s *store.Store, job workerJob, o *out) int {
	ctx, cancel := context.WithTimeout(context.Background(), soakWorkerTimeout)
	defer cancel()
	h := fnv.New64a()
	h.Write([]byte(job.Name))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), h.Sum64()))
	known := map[string][]int{} // versions this worker uploaded, per artifact
	n := job.N
	if n <= 0 {
		n = soakWorkerOps
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if _, err := os.Stat(job.HoldFile); err == nil {
			break
		}
		uri := job.URIs[rng.IntN(len(job.URIs))]
		ev := soakEvent{Worker: job.Name, URI: uri, Call: time.Now().UnixNano()}
		var err error
		p := rng.IntN(100)
		if uri == job.URIs[0] {
			uri, p = soakKept(i), 0
			ev.URI = uri
		}
		switch {
		case p < 70:
			data := payload(job.Name, i)
			ev.Op, ev.SHA256 = "upload", sha(data)
			var md store.Metadata
			md, err = s.UploadBytes(ctx, uri, data, store.UploadOptions{})
			if err == nil {
				ev.Version = md.Version
				known[uri] = append(known[uri], md.Version)
			}
		case p < 90:
			ev.Op, ev.Version = "delete-version", 1+rng.IntN(4)
			if k := known[uri]; len(k) > 0 && rng.IntN(4) > 0 {
				ev.Version = k[rng.IntN(len(k))]
			}
			err = s.Delete(ctx, fmt.Sprintf("%s?version=%d", uri, ev.Version))
		default:
			ev.Op = "delete"
			err = s.Delete(ctx, uri)
			if err == nil {
				known[uri] = nil
			}
		}
		ev.Return = time.Now().UnixNano()
		ev.Class = soakClass(err)
		if err != nil {
			ev.Err = err.Error()
		}
		line, _ := json.Marshal(ev)
		o.println("soak %s", line)
	}
	o.println("done")
	return 0
}

// soakKeptOps is how many operations of a soak worker go to one
// append-only artifact.
const soakKeptOps = 100

// soakKept is the append-only artifact of a soak worker's operation i.
func soakKept(i int) string { return fmt.Sprintf("artifact://soak/kept-%d/log", i/soakKeptOps) }

// soakBackend is the backend decorator of the soak workers: after 15% of
// the blob Puts it waits 0.5 to 2.5s, so that the upload reaches its
// commit with a blob older than Reconcile's grace period (a slow or
// paused writer): Reconcile may fence and delete it meanwhile, and the
// upload must then fail with ErrConflict.
func soakBackend(b backend.Backend) backend.Backend {
	return &hookBackend{Backend: b, afterPut: func(key string, err error) {
		if err == nil && strings.HasPrefix(key, "blobs/") && rand.IntN(100) < 15 {
			time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
		}
	}}
}

// soakLog collects the events of the workers.
type soakLog struct {
	mu     sync.Mutex
	events []soakEvent
	bad    []string // lines that did not parse
}

func (l *soakLog) add(line string) {
	rest, ok := strings.CutPrefix(line, "soak ")
	if !ok {
		return
	}
	var ev soakEvent
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := json.Unmarshal([]byte(rest), &ev); err != nil {
		l.bad = append(l.bad, line)
		return
	}
	l.events = append(l.events, ev)
}

func (l *soakLog) all() []soakEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// count returns how many events are of op (any op when "") and class.
func (l *soakLog) count(op, class string) int {
	n := 0
	for _, ev := range l.all() {
		if (op == "" || ev.Op == op) && ev.Class == class {
			n++
		}
	}
	return n
}

// soakConfirmMissing reports whether version m.Version of m.URI still
// names blob m.BlobKey and the blob does not exist, on a manifest that
// stays the same around the look-up: a missing blob, not a version
// deleted while Reconcile looked.
func soakConfirmMissing(ctx context.Context, s *store.Store, raw backend.Backend, m store.MissingBlob) (bool, error) {
	u, err := store.ParseURI(m.URI)
	if err != nil {
		return false, err
	}
	uri := u.Artifact().String()
	blobs := func() ([]string, error) {
		vs, err := s.Versions(ctx, uri)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		var keys []string
		for _, v := range vs {
			keys = append(keys, fmt.Sprintf("%d:%s", v.Version, v.BlobKey))
		}
		return keys, err
	}
	before, err := blobs()
	if err != nil || !slices.Contains(before, fmt.Sprintf("%d:%s", m.Version, m.BlobKey)) {
		return false, err
	}
	if _, err := raw.Stat(ctx, m.BlobKey); !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	after, err := blobs()
	return err == nil && slices.Equal(before, after), err
}

// TestSoakReconcileLoop: writer processes (each its own store, as
// separate hosts) upload and delete (artifacts and single versions) on a
// few artifacts with versioning on, while this process runs Reconcile with
// Apply and a grace period of one second in a loop, so that it races the
// writers: the blobs of slow uploads (soakBackend) are orphans by age and
// get fenced and deleted under them, blobs left by deletes get reclaimed
// as the writers delete them, and tombstones go as soon as they are a
// second old (when they record no reclaimed blob). Afterwards:
//
//   - no acknowledged upload is lost: every one that no acknowledged (or
//     unknown-outcome) delete could have removed, one that returned after
//     the upload was called, is stored, under its version number, with its
//     content;
//   - no version comes from an upload that failed other than with an
//     unknown outcome, or from nowhere;
//   - no version's blob is missing: not in any cycle's report (each
//     confirmed against the manifest), nor in VerifyAll, nor in a last
//     Reconcile;
//   - uploads fail only with ErrConflict, ErrLockTimeout or
//     ErrUnknownOutcome (deletes also with ErrNotFound).
//
// With ARTIFACTSTORE_SOAK=1 it runs soakFullCycles reconcile cycles (within
// soakFullBudget); otherwise soakShortCycles (within soakShortBudget).
func TestSoakReconcileLoop(t *testing.T) {
	cycles, budget := soakShortCycles, soakShortBudget
	if os.Getenv(envSoak) == "1" {
		cycles, budget = soakFullCycles, soakFullBudget
	}
	const (
		writers = 3
		grace   = time.Second
	)
	e := newEnv(t, 3)
	e.lockTimeout = 5 * time.Second
	// The first artifact stands for the append-only ones (see
	// runSoakWorker).
	uris := []string{"artifact://soak/kept/log", "artifact://soak/a/log", "artifact://soak/a/diff", "artifact://soak/b/test"}
	stop := filepath.Join(t.TempDir(), "stop")
	s := e.open(t, nil).Store
	raw := e.raw(t)

	var log soakLog
	procs := make([]*workerProc, writers)
	var drained sync.WaitGroup
	for w := range writers {
		procs[w] = startWorker(t, e, workerJob{Mode: "soak", Name: fmt.Sprintf("writer-%d", w), URIs: uris, HoldFile: stop})
		p := procs[w]
		drained.Go(func() {
			for line := range p.lines {
				log.add(line)
			}
		})
	}
	// Whatever happens, the writers stop (and cleanup kills them by PID).
	t.Cleanup(func() { _ = os.WriteFile(stop, nil, 0o644) })
	poll(t, time.Minute, "every writer's first operation", func() bool {
		seen := map[string]bool{}
		for _, ev := range log.all() {
			seen[ev.Worker] = true
		}
		return len(seen) == writers
	})

	ctx, cancel := context.WithTimeout(context.Background(), budget+2*time.Minute)
	defer cancel()
	start := time.Now()
	var (
		done, reclaimed, tombstones, pending, failedCycles int
		missing                                            []string
	)
	for done < cycles && time.Since(start) < budget {
		time.Sleep(rand.N(soakPauseMax))
		rep, err := s.Reconcile(ctx, store.ReconcileOptions{Apply: true, GracePeriod: grace})
		done++
		reclaimed += rep.Deleted
		tombstones += rep.TombstonesRemoved
		pending += rep.Pending
		if err != nil {
			failedCycles++
			if !typedWriteError(err) && !errors.Is(err, store.ErrUnknownOutcome) {
				t.Errorf("reconcile cycle %d: %v", done, err)
			} else {
				t.Logf("reconcile cycle %d: %v", done, err)
			}
		}
		for _, m := range rep.MissingBlobs {
			ok, cerr := soakConfirmMissing(ctx, s, raw, m)
			switch {
			case cerr != nil:
				t.Errorf("reconcile cycle %d reported %s (blob %s) missing; confirming it failed: %v", done, m.URI, m.BlobKey, cerr)
			case ok:
				missing = append(missing, fmt.Sprintf("cycle %d: %s (blob %s)", done, m.URI, m.BlobKey))
			}
		}
		if len(rep.InvalidManifests) > 0 || len(rep.Strays) > 0 {
			t.Errorf("reconcile cycle %d: invalid manifests %v, strays %v", done, rep.InvalidManifests, rep.Strays)
		}
	}
	elapsed := time.Since(start)
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitDrained := make(chan struct{})
	go func() { drained.Wait(); close(waitDrained) }()
	waitFor(t, waitDrained, 2*time.Minute, "the writers to stop")
	for w, p := range procs {
		if err := p.waitErr(); err != nil {
			t.Errorf("writer %d: %v\n%s", w, err, p.stderr.String())
		}
	}
	if len(log.bad) > 0 {
		t.Errorf("unreadable worker lines: %q", log.bad)
	}
	if done < cycles {
		t.Errorf("%d reconcile cycles in %v, want %d", done, budget, cycles)
	}
	for _, m := range missing {
		t.Errorf("missing blob: %s", m)
	}

	events := log.all()
	checkSoakErrors(t, events)
	all := slices.Clone(uris[1:])
	for _, ev := range events {
		if !slices.Contains(all, ev.URI) {
			all = append(all, ev.URI)
		}
	}
	checkSoakState(t, s, all, events)

	vctx, vcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer vcancel()
	vrep, err := s.VerifyAll(vctx, store.VerifyOptions{})
	if err != nil || !vrep.OK() {
		t.Errorf("verify all: %+v, %v", vrep, err)
	}
	last, err := s.Reconcile(vctx, store.ReconcileOptions{Apply: true, GracePeriod: grace})
	if err != nil || len(last.MissingBlobs) > 0 || len(last.InvalidManifests) > 0 {
		t.Errorf("last reconcile: %s, %v", jsonOf(last), err)
	}

	t.Logf("%d reconcile cycles in %v (%d failed, %d blobs reclaimed, %d tombstones removed, %d pending blobs seen); "+
		"%d operations by %d writer processes: uploads %d acknowledged, %d conflicts, %d lock timeouts, %d unknown outcomes; "+
		"deletes %d acknowledged (%d of versions), %d not found, %d conflicts, %d lock timeouts, %d unknown outcomes; "+
		"%d versions checked by VerifyAll; %d missing blobs",
		done, elapsed.Round(time.Millisecond), failedCycles, reclaimed, tombstones, pending,
		len(events), writers, log.count("upload", "ok"), log.count("upload", "conflict"), log.count("upload", "lock-timeout"), log.count("upload", "unknown"),
		log.count("delete", "ok")+log.count("delete-version", "ok"), log.count("delete-version", "ok"),
		log.count("delete", "not-found")+log.count("delete-version", "not-found"),
		log.count("delete", "conflict")+log.count("delete-version", "conflict"),
		log.count("delete", "lock-timeout")+log.count("delete-version", "lock-timeout"),
		log.count("delete", "unknown")+log.count("delete-version", "unknown"),
		vrep.Checked, len(missing))
}

// checkSoakErrors asserts that every failed operation failed with a typed
// error: uploads with ErrConflict, ErrLockTimeout or ErrUnknownOutcome,
// deletes with those or ErrNotFound.
func checkSoakErrors(t *testing.T, events []soakEvent) {
	t.Helper()
	reported := 0
	for _, ev := range events {
		bad := ev.Class == "other" || ev.Op == "upload" && ev.Class == "not-found"
		if bad && reported < 10 {
			t.Errorf("%s %s by %s failed with an untyped error: %s", ev.Op, ev.URI, ev.Worker, ev.Err)
			reported++
		}
	}
}

// checkSoakState checks the artifacts against the events: no acknowledged
// upload lost, no version from a failed upload.
func checkSoakState(t *testing.T, s *store.Store, uris []string, events []soakEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type key struct {
		uri string
		v   int
	}
	stored := map[key]string{}
	for _, uri := range uris {
		vs, err := s.Versions(ctx, uri)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("versions of %s: %v", uri, err)
		}
		for _, v := range vs {
			stored[key{uri, v.Version}] = v.SHA256
		}
	}
	// The content each upload may have stored: acknowledged, or of unknown
	// outcome.
	mayExist := map[string]bool{}
	for _, ev := range events {
		if ev.Op == "upload" && (ev.Class == "ok" || ev.Class == "unknown") {
			mayExist[ev.SHA256] = true
		}
	}
	for k, sum := range stored {
		if !mayExist[sum] {
			t.Errorf("%s version %d holds %s, which no acknowledged (or unknown-outcome) upload wrote", k.uri, k.v, sum)
		}
	}
	// An acknowledged upload may be gone only if a delete that took
	// effect (acknowledged, or of unknown outcome: it may take effect at
	// any time after its call) of its artifact or its version number
	// returned after the upload was called.
	const never = int64(1<<63 - 1)
	lost, checked := 0, 0
	for _, up := range events {
		if up.Op != "upload" || up.Class != "ok" {
			continue
		}
		removable := slices.ContainsFunc(events, func(d soakEvent) bool {
			if d.URI != up.URI || (d.Op != "delete" && d.Op != "delete-version") || (d.Op == "delete-version" && d.Version != up.Version) {
				return false
			}
			ret := d.Return
			switch d.Class {
			case "ok":
			case "unknown":
				ret = never
			default:
				return false
			}
			return ret > up.Call
		})
		if removable {
			continue
		}
		checked++
		switch got, ok := stored[key{up.URI, up.Version}]; {
		case !ok:
			lost++
			t.Errorf("lost acknowledged upload: %s version %d (%s, by %s) is not stored, and no delete could have removed it", up.URI, up.Version, up.SHA256, up.Worker)
		case got != up.SHA256:
			lost++
			t.Errorf("lost acknowledged upload: %s version %d holds %s, acknowledged %s (by %s)", up.URI, up.Version, got, up.SHA256, up.Worker)
		}
	}
	t.Logf("%d versions stored at the end; %d acknowledged uploads that no delete could have removed, %d of them lost", len(stored), checked, lost)
}
