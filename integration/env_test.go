package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// env is the servers one test uses: an S3 bucket, Redis masters, and a
// lock key prefix no other test uses.
type env struct {
	s3        testenv.S3Server
	redis     []string
	keyPrefix string
	// lockExpiry and lockTimeout, when set, apply to every store and
	// worker of the test.
	lockExpiry  time.Duration
	lockTimeout time.Duration
	// inline lets stores and workers keep small contents in the
	// manifests (store.Config.InlineMaxBytes, the default); off, every
	// content is a blob, which most tests count, damage or lose.
	inline bool
}

// inlineMaxBytes is store.Config.InlineMaxBytes in e.
func (e *env) inlineMaxBytes() int {
	if e.inline {
		return store.DefaultInlineMaxBytes
	}
	return -1
}

// newEnv returns servers for a test that does not kill them: the external
// ones when the environment names them, otherwise servers started for t.
func newEnv(t *testing.T, redisMasters int) *env {
	t.Helper()
	return &env{s3: testenv.StartS3(t), redis: testenv.RedisAddrs(t, redisMasters), keyPrefix: uniquePrefix()}
}

func uniquePrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "it-" + hex.EncodeToString(b[:]) + ":"
}

// config is the setup.Config of a store in e, with versioning on.
func (e *env) config() setup.Config {
	return setup.Config{
		Backend: setup.BackendS3,
		S3: s3backend.Config{
			Endpoint: e.s3.Endpoint, Bucket: e.s3.Bucket, Region: e.s3.Region,
			AccessKey: e.s3.AccessKey, SecretKey: e.s3.SecretKey, UseSSL: e.s3.UseSSL,
			CreateBucket: true,
		},
		Lock:       setup.LockRedis,
		Redis:      redislock.Config{Addrs: e.redis, DialTimeout: time.Second},
		LockConfig: lock.Config{KeyPrefix: e.keyPrefix, Expiry: e.lockExpiry, RetryInterval: 20 * time.Millisecond},
		Store:      store.Config{Versioning: true, LockTimeout: e.lockTimeout, InlineMaxBytes: e.inlineMaxBytes()},
	}
}

// open opens a store in e (after mod, when not nil) and closes it when t
// ends.
func (e *env) open(t *testing.T, mod func(*setup.Config)) *setup.Opened {
	t.Helper()
	c := e.config()
	if mod != nil {
		mod(&c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := setup.Open(ctx, c)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// raw returns a backend on e's bucket without the store's retries, to look
// at (and damage) the objects directly.
func (e *env) raw(t *testing.T) backend.Backend {
	t.Helper()
	b, err := s3backend.New(context.Background(), e.config().S3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// environ is the environment of a worker process: the test's, without its
// ARTIFACTSTORE_* variables, plus the ones that describe e to
// setup.FromEnv.
func (e *env) environ(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARTIFACTSTORE_") {
			out = append(out, kv)
		}
	}
	out = append(out,
		setup.EnvBackend+"=s3",
		s3backend.EnvEndpoint+"="+e.s3.Endpoint,
		s3backend.EnvBucket+"="+e.s3.Bucket,
		s3backend.EnvRegion+"="+e.s3.Region,
		s3backend.EnvAccessKey+"="+e.s3.AccessKey,
		s3backend.EnvSecretKey+"="+e.s3.SecretKey,
		s3backend.EnvUseSSL+"="+strconv.FormatBool(e.s3.UseSSL),
		s3backend.EnvCreateBucket+"=true",
		setup.EnvLock+"=redis",
		redislock.EnvAddrs+"="+strings.Join(e.redis, ","),
		setup.EnvLockKeyPrefix+"="+e.keyPrefix,
		setup.EnvLockRetryInterval+"=20ms",
		"ARTIFACTSTORE_VERSIONING=true",
		"ARTIFACTSTORE_INLINE_MAX_BYTES="+strconv.Itoa(e.inlineMaxBytes()),
	)
	if e.lockExpiry > 0 {
		out = append(out, setup.EnvLockExpiry+"="+e.lockExpiry.String())
	}
	if e.lockTimeout > 0 {
		out = append(out, "ARTIFACTSTORE_LOCK_TIMEOUT="+e.lockTimeout.String())
	}
	return append(out, extra...)
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// payload is distinct content naming who wrote it.
func payload(who string, i int) []byte {
	var r [16]byte
	_, _ = rand.Read(r[:])
	return fmt.Appendf(nil, "%s op %d %x\n", who, i, r)
}

// ack is an upload the store acknowledged.
type ack struct {
	URI     string `json:"uri"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
}

// ackOf is the ack of an upload's metadata.
func ackOf(t testing.TB, md store.Metadata) ack {
	u, err := store.ParseURI(md.URI)
	if err != nil {
		t.Fatalf("upload returned URI %q: %v", md.URI, err)
	}
	return ack{URI: u.Artifact().String(), Version: md.Version, SHA256: md.SHA256}
}

// acks collects acknowledgements from many goroutines.
type acks struct {
	mu   sync.Mutex
	list []ack
}

func (a *acks) add(x ack) {
	a.mu.Lock()
	a.list = append(a.list, x)
	a.mu.Unlock()
}

func (a *acks) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.list)
}

func (a *acks) all() []ack {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.list)
}

// checkAcked asserts the D1 invariants on the artifacts uris: versions
// numbered 1..n without a gap, every acknowledged upload present with its
// SHA-256, every version's content verifying. With exact, every version
// must have been acknowledged (no other writer, no uncertain outcome). It
// returns the number of versions.
func checkAcked(t *testing.T, s *store.Store, uris []string, acked []ack, exact bool) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type key struct {
		uri string
		v   int
	}
	stored := map[key]string{}
	total := 0
	for _, uri := range uris {
		vs, err := s.Versions(ctx, uri)
		if err != nil {
			t.Fatalf("versions of %s: %v", uri, err)
		}
		for i, v := range vs {
			if v.Version != i+1 {
				t.Fatalf("%s: version #%d is numbered %d: a gap", uri, i+1, v.Version)
			}
			stored[key{uri, v.Version}] = v.SHA256
		}
		total += len(vs)
		if err := s.VerifyChecksum(ctx, uri); err != nil {
			t.Fatalf("verify %s: %v", uri, err)
		}
	}
	seen := map[key]bool{}
	for _, a := range acked {
		k := key{a.URI, a.Version}
		got, ok := stored[k]
		switch {
		case !ok:
			t.Fatalf("lost update: acknowledged %s version %d is not stored", a.URI, a.Version)
		case got != a.SHA256:
			t.Fatalf("lost update: %s version %d holds %s, acknowledged %s", a.URI, a.Version, got, a.SHA256)
		case seen[k]:
			t.Fatalf("%s version %d acknowledged twice", a.URI, a.Version)
		}
		seen[k] = true
	}
	if exact && len(seen) != total {
		t.Fatalf("%d versions stored, %d acknowledged", total, len(seen))
	}
	return total
}

// hookBackend calls hooks around the Puts and Gets of the backend it wraps:
// the fault-injection decorator of these tests (a hook may block, to hold
// a writer inside its critical section).
type hookBackend struct {
	backend.Backend
	beforePut func(ctx context.Context, key string) error
	afterPut  func(key string, err error)
	beforeGet func(ctx context.Context, key string) error
}

func (h *hookBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if h.beforePut != nil {
		if err := h.beforePut(ctx, key); err != nil {
			return backend.ObjectInfo{}, err
		}
	}
	info, err := h.Backend.Put(ctx, key, r, size, opts)
	if h.afterPut != nil {
		h.afterPut(key, err)
	}
	return info, err
}

func (h *hookBackend) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	if h.beforeGet != nil {
		if err := h.beforeGet(ctx, key); err != nil {
			return nil, backend.ObjectInfo{}, err
		}
	}
	return h.Backend.Get(ctx, key)
}

// gate holds the first armed call it sees until released.
type gate struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) arm() { g.mu.Lock(); g.armed = true; g.mu.Unlock() }

// hold blocks the first call after arm until release is closed (or ctx
// ends).
func (g *gate) hold(ctx context.Context) error {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if !armed {
		return nil
	}
	close(g.entered)
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onPrefix returns a hook that holds g for keys under prefix.
func (g *gate) onPrefix(prefix string) func(ctx context.Context, key string) error {
	return func(ctx context.Context, key string) error {
		if strings.HasPrefix(key, prefix) {
			return g.hold(ctx)
		}
		return nil
	}
}

// waitFor waits for ch, failing the test after d.
func waitFor(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// poll calls cond every 10ms until it returns true, failing the test after
// d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workerProc is a worker process started by a test.
type workerProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWorker runs this test binary as a worker (see TestMain) with job,
// in e's environment plus extra variables. The process is killed by PID
// when t ends.
func startWorker(t *testing.T, e *env, job workerJob, extra ...string) *workerProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = e.environ(append([]string{envWorker + "=" + string(spec)}, extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w := &workerProc{t: t, cmd: cmd, lines: make(chan string, 1024), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		w.err = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
			return
		default:
		}
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		_ = cmd.Process.Kill()
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("worker %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	return w
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// expect reads the worker's output lines until one starts with prefix and
// returns it; acks read on the way are added to into (when not nil).
func (w *workerProc) expect(prefix string, d time.Duration, into *acks) string {
	w.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				w.t.Fatalf("worker %d exited before printing %q: %v\n%s", w.pid(), prefix, w.waitErr(), w.stderr.String())
			}
			if a, isAck := parseAck(line); isAck && into != nil {
				into.add(a)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			w.t.Fatalf("worker %d printed no %q within %v\n%s", w.pid(), prefix, d, w.stderr.String())
		}
	}
}

// wait reads the rest of the output (acks into into) and waits for the
// worker to exit, within d; it returns the exit error.
func (w *workerProc) wait(d time.Duration, into *acks) error {
	w.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				return w.waitErr()
			}
			if a, isAck := parseAck(line); isAck && into != nil {
				into.add(a)
			}
		case <-timeout:
			w.t.Fatalf("worker %d still running after %v\n%s", w.pid(), d, w.stderr.String())
		}
	}
}

func (w *workerProc) waitErr() error {
	<-w.exited
	return w.err
}

// parseAck reads an "ack <json>" line.
func parseAck(line string) (ack, bool) {
	rest, ok := strings.CutPrefix(line, "ack ")
	if !ok {
		return ack{}, false
	}
	var a ack
	if err := json.Unmarshal([]byte(rest), &a); err != nil {
		return ack{}, false
	}
	return a, true
}

// typedWriteError reports whether err is one of the errors a writer may
// get while servers fail: a lock that could not be had, a conflict, a
// transient backend error, or the context's end.
func typedWriteError(err error) bool {
	return errors.Is(err, store.ErrLockTimeout) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, lock.ErrUnavailable) || backend.IsTransient(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
