package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// plan is what the parent tells every worker (as JSON in envPlan).
type plan struct {
	// Spec is the spec name of every artifact of this run.
	Spec    string `json:"spec"`
	Workers int    `json:"workers"`
	Ops     int    `json:"ops"`
	Size    int    `json:"size"`
	Shared  int    `json:"shared"`
	// JournalDir holds one journal per worker.
	JournalDir string `json:"journal_dir"`
	// MetricsAddr is -metrics-addr: worker i serves its metrics on its
	// port + 1 + i (see metricsAddr). Empty: no metrics.
	MetricsAddr string `json:"metrics_addr,omitempty"`
}

// privateTypes are the artifact types of each worker's private artifacts.
func privateTypes() [3]string { return [...]string{"diff", "log", "test"} }

// sharedURI is the i-th artifact all workers write to.
func (p plan) sharedURI(i int) string {
	return fmt.Sprintf("artifact://%s/shared-%d/log", p.Spec, i)
}

// privateURI is the private artifact of worker w of type number t.
func (p plan) privateURI(w, t int) string {
	types := privateTypes()
	return fmt.Sprintf("artifact://%s/worker-%d/%s", p.Spec, w, types[t%len(types)])
}

// artifacts lists every artifact of the run.
func (p plan) artifacts() []string {
	var uris []string
	for i := range p.Shared {
		uris = append(uris, p.sharedURI(i))
	}
	for w := range p.Workers {
		for t := range len(privateTypes()) {
			uris = append(uris, p.privateURI(w, t))
		}
	}
	return uris
}

// target is the artifact of worker w's operation i: even operations go to
// the shared artifacts, odd ones to the worker's private ones.
func (p plan) target(w, i int) (uri string, shared bool) {
	if i%2 == 0 {
		return p.sharedURI((i/2 + w) % p.Shared), true
	}
	return p.privateURI(w, i/2), false
}

func (p plan) journalPath(w int) string {
	return fmt.Sprintf("%s/worker-%d.jsonl", p.JournalDir, w)
}

// content is the distinct content of worker w's operation i: a header
// naming them, then pseudo-random bytes seeded by both.
func content(spec string, w, i, size int) []byte {
	head := fmt.Sprintf("demo %s worker %d op %d\n", spec, w, i)
	buf := make([]byte, size)
	n := copy(buf, head)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(w)<<32|uint64(i))
	copy(seed[8:], spec)
	r := rand.NewChaCha8(seed)
	_, _ = r.Read(buf[n:])
	return buf
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// entry is one line of a worker's journal.
type entry struct {
	Kind string `json:"kind"` // "ack" or "stats"

	// ack: an upload the store acknowledged.
	URI     string `json:"uri,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Version int    `json:"version,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Op      int    `json:"op,omitempty"`

	// stats: written once, at the end.
	Ops        int     `json:"ops,omitempty"`
	Uploads    int     `json:"uploads,omitempty"`
	Reuploads  int     `json:"reuploads,omitempty"`
	Idempotent int     `json:"idempotent,omitempty"`
	Tags       int     `json:"tags,omitempty"`
	Downloads  int     `json:"downloads,omitempty"`
	Conflicts  int     `json:"conflicts,omitempty"`
	BytesUp    int64   `json:"bytes_up,omitempty"`
	BytesDown  int64   `json:"bytes_down,omitempty"`
	LockWaitNS []int64 `json:"lock_wait_ns,omitempty"`
}

// journal appends JSON lines to a file, one write per line, so a line is
// never torn by a crash of the process.
type journal struct {
	f *os.File
}

func (j *journal) add(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = j.f.Write(append(b, '\n'))
	return err
}

// timingLocker records how long each Acquire waited. It hides the
// locker's Inspect and ForceUnlock, which the workers do not use.
type timingLocker struct {
	lock.Locker
	mu    sync.Mutex
	waits []int64
}

func (t *timingLocker) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	start := time.Now()
	l, err := t.Locker.Acquire(ctx, key)
	if err == nil {
		t.mu.Lock()
		t.waits = append(t.waits, int64(time.Since(start)))
		t.mu.Unlock()
	}
	return l, err
}

func (t *timingLocker) samples() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int64(nil), t.waits...)
}

// maxAttempts bounds the retries of one operation lost to a conflict or a
// lock timeout.
const maxAttempts = 20

// runWorker is the worker mode: it performs the plan's operations as worker
// id, journals them and prints one "progress <n>" line per operation.
func runWorker(ctx context.Context, idText, planJSON string, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "demo worker %s: "+format+"\n", append([]any{idText}, a...)...)
		return exitInvariant
	}
	id, err := strconv.Atoi(idText)
	if err != nil {
		return fail("bad worker id: %v", err)
	}
	var p plan
	if err := json.Unmarshal([]byte(planJSON), &p); err != nil {
		return fail("bad plan: %v", err)
	}
	cfg, err := setup.FromEnv(nil)
	if err != nil {
		return fail("%v", err)
	}
	timing := &timingLocker{}
	cfg.WrapLocker = func(l lock.Locker) lock.Locker { timing.Locker = l; return timing }
	cfg.Logger = logger(stderr)
	_, stopMetrics, err := serveMetrics(p.MetricsAddr, id, &cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer stopMetrics()
	opened, err := setup.Open(ctx, cfg)
	if err != nil {
		return fail("open: %v", err)
	}
	defer opened.Close()
	f, err := os.OpenFile(p.journalPath(id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fail("journal: %v", err)
	}
	defer f.Close()
	w := &worker{id: id, p: p, s: opened.Store, j: &journal{f: f}}
	err = w.run(ctx, stdout)
	w.stats.Kind = "stats"
	w.stats.LockWaitNS = timing.samples()
	if jerr := w.j.add(w.stats); err == nil {
		err = jerr
	}
	if err != nil {
		return fail("%v", err)
	}
	return exitOK
}

type worker struct {
	id    int
	p     plan
	s     *store.Store
	j     *journal
	stats entry
}

func (w *worker) run(ctx context.Context, progress io.Writer) error {
	for i := range w.p.Ops {
		if err := w.op(ctx, i); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		w.stats.Ops++
		fmt.Fprintf(progress, "progress %d\n", i+1)
	}
	return nil
}

// op is one operation: upload, re-upload, tag, download and verify.
func (w *worker) op(ctx context.Context, i int) error {
	uri, shared := w.p.target(w.id, i)
	data := content(w.p.Spec, w.id, i, w.p.Size)
	sum := sha(data)
	opts := store.UploadOptions{
		ContentType: "application/octet-stream",
		Tags:        []string{"worker-" + strconv.Itoa(w.id)},
		Metadata:    map[string]string{"worker": strconv.Itoa(w.id), "op": strconv.Itoa(i)},
	}
	md, err := w.upload(ctx, uri, data, opts, i)
	if err != nil {
		return err
	}
	w.stats.Uploads++

	// The same content again: a no-op when nobody committed in between
	// (always, for a private artifact).
	md2, err := w.upload(ctx, uri, data, opts, i)
	if err != nil {
		return err
	}
	w.stats.Reuploads++
	switch {
	case md2.Version == md.Version:
		w.stats.Idempotent++
	case !shared:
		return fmt.Errorf("re-upload of identical content to private %s made version %d after %d", uri, md2.Version, md.Version)
	}

	if err := w.retry(ctx, func() error {
		_, err := w.s.AddTags(ctx, uri, "round-"+strconv.Itoa(i%4))
		return err
	}); err != nil {
		return fmt.Errorf("tag %s: %w", uri, err)
	}
	w.stats.Tags++

	got, gmd, err := w.s.Download(ctx, md.URI)
	if err != nil {
		return fmt.Errorf("download %s: %w", md.URI, err)
	}
	if sha(got) != sum || gmd.SHA256 != sum || !bytes.Equal(got, data) {
		return fmt.Errorf("download %s: content differs from what was uploaded", md.URI)
	}
	w.stats.Downloads++
	w.stats.BytesDown += int64(len(got))
	return nil
}

// upload uploads data to uri, retrying a conflict or a lock timeout, and
// journals the acknowledged version.
func (w *worker) upload(ctx context.Context, uri string, data []byte, opts store.UploadOptions, op int) (store.Metadata, error) {
	var md store.Metadata
	err := w.retry(ctx, func() error {
		var err error
		md, err = w.s.UploadBytes(ctx, uri, data, opts)
		return err
	})
	if err != nil {
		return store.Metadata{}, fmt.Errorf("upload %s: %w", uri, err)
	}
	w.stats.BytesUp += int64(len(data))
	if md.SHA256 != sha(data) {
		return store.Metadata{}, fmt.Errorf("upload %s: acknowledged sha256 %s, uploaded %s", uri, md.SHA256, sha(data))
	}
	u, err := store.ParseURI(md.URI)
	if err != nil {
		return store.Metadata{}, err
	}
	e := entry{Kind: "ack", URI: u.Artifact().String(), SHA256: md.SHA256, Version: md.Version, Size: md.Size, Op: op}
	if err := w.j.add(e); err != nil {
		return store.Metadata{}, fmt.Errorf("journal: %w", err)
	}
	return md, nil
}

// retry runs fn until it succeeds, retrying what another writer caused (a
// conflict, a lock timeout) up to maxAttempts times; unreachable lock
// servers are not retried.
func (w *worker) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= maxAttempts || ctx.Err() != nil || errors.Is(err, lock.ErrUnavailable) ||
			!(errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrLockTimeout)) {
			return err
		}
		w.stats.Conflicts++
	}
}
