package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/setup"
)

// logger logs the store's warnings and errors to w when ARTIFACTSTORE_DEMO_VERBOSE
// is set (the -v flag sets it for the workers too), and discards otherwise.
func logger(w io.Writer) *slog.Logger {
	if os.Getenv("ARTIFACTSTORE_DEMO_VERBOSE") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// applyFlags turns the flags that choose the backend and the lock into the
// ARTIFACTSTORE_* variables package setup reads, in this process's
// environment, which the workers inherit. The demo always runs with
// versioning on.
func applyFlags(o options) (cleanup func(), err error) {
	cleanup = func() {}
	set := func(k, v string) {
		if err == nil && v != "" {
			err = os.Setenv(k, v)
		}
	}
	set("ARTIFACTSTORE_VERSIONING", "true")
	if o.verbose {
		set("ARTIFACTSTORE_DEMO_VERBOSE", "1")
	}
	if o.s3Endpoint != "" && o.backend == "" {
		o.backend = setup.BackendS3
	}
	if o.redis != "" && o.lock == "" {
		o.lock = setup.LockRedis
	}
	set(setup.EnvBackend, o.backend)
	set(setup.EnvLock, o.lock)
	set(redislock.EnvAddrs, o.redis)
	set(s3backend.EnvEndpoint, o.s3Endpoint)
	set(s3backend.EnvBucket, o.s3Bucket)
	if _, ok := os.LookupEnv(s3backend.EnvCreateBucket); !ok {
		set(s3backend.EnvCreateBucket, "true")
	}
	backend := os.Getenv(setup.EnvBackend)
	if backend == "" || backend == setup.BackendFile {
		dir := o.dir
		if dir == "" {
			dir = os.Getenv(setup.EnvDir)
		}
		if dir == "" {
			tmp, terr := os.MkdirTemp("", "artifactstore-demo-")
			if terr != nil {
				return cleanup, terr
			}
			dir = tmp
			if !o.keep {
				cleanup = func() { _ = os.RemoveAll(tmp) }
			}
		}
		set(setup.EnvDir, dir)
	}
	return cleanup, err
}

// newRunID names this run: its artifacts live under spec "demo-<id>", so
// runs against a shared bucket never mix.
func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func runParent(ctx context.Context, o options, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "demo: "+format+"\n", a...)
		return exitSetup
	}
	cleanup, err := applyFlags(o)
	defer cleanup()
	if err != nil {
		return fail("%v", err)
	}
	cfg, err := setup.FromEnv(nil)
	if err != nil {
		return fail("%v", err)
	}
	switch d := cfg.WithDefaults(); {
	case d.Backend == setup.BackendMemory:
		return fail("the memory backend cannot be shared by worker processes: use file or s3")
	case d.Lock == setup.LockMemory:
		return fail("memory locks cannot serialize worker processes: use file, redis or none")
	}
	cfg.Logger = logger(stderr)
	metricsURL, stopMetrics, err := serveMetrics(o.metricsAddr, -1, &cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer stopMetrics()
	opened, err := setup.Open(ctx, cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer opened.Close()
	if err := preflight(ctx, opened); err != nil {
		return fail("%v", err)
	}

	journalDir, err := os.MkdirTemp("", "artifactstore-demo-journal-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(journalDir)
	p := plan{Spec: "demo-" + newRunID(), Workers: o.workers, Ops: o.ops, Size: o.size, Shared: o.shared, JournalDir: journalDir, MetricsAddr: o.metricsAddr}

	fmt.Fprintf(stdout, "artifactstore demo: %d worker processes x %d operations, %s per upload, on %s\n",
		p.Workers, p.Ops, humanBytes(int64(p.Size)), describe(opened.Config))
	if metricsURL != "" {
		fmt.Fprintf(stdout, "metrics at %s; worker i at port +1+i\n", metricsURL)
	}

	start := time.Now()
	workerErrs := runWorkers(ctx, p, stderr)
	elapsed := time.Since(start)

	if os.Getenv(envFault) == "drop-blob" {
		if err := dropBlob(ctx, opened, p); err != nil {
			return fail("inject fault: %v", err)
		}
	}
	// The checks run even when the run was cut short: what was
	// acknowledged must be there.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer ccancel()
	rep := check(cctx, opened, p)
	rep.small = measureSmall(cctx, opened, p.Spec+"-small")
	rep.elapsed = elapsed
	rep.workerErrs = workerErrs
	rep.print(stdout)
	switch {
	case !rep.ok():
		return exitInvariant
	case len(workerErrs) > 0:
		return exitWorker
	}
	return exitOK
}

// describe names the backend and the lock of c (no credentials).
func describe(c setup.Config) string {
	var b string
	switch c.Backend {
	case setup.BackendFile:
		b = "file backend " + c.FileDir
	case setup.BackendS3:
		b = "S3 " + c.S3.Endpoint + "/" + c.S3.Bucket
	default:
		b = c.Backend + " backend"
	}
	var l string
	switch c.Lock {
	case setup.LockFile:
		l = "file locks"
	case setup.LockRedis:
		addrs := c.Redis.WithDefaults().Addrs
		l = fmt.Sprintf("Redis locks on %d master(s) %s", len(addrs), strings.Join(addrs, ","))
	case setup.LockNone:
		l = "no locks (optimistic)"
	default:
		l = c.Lock + " locks"
	}
	return b + ", " + l + ", versioning on"
}

// runWorkers starts the worker processes, shows their progress, waits for
// them and returns one error per failed worker.
func runWorkers(ctx context.Context, p plan, stderr io.Writer) []error {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	planJSON, _ := json.Marshal(p)
	total := int64(p.Workers * p.Ops)
	var done atomic.Int64
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range p.Workers {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), envWorker+"="+strconv.Itoa(w), envPlan+"="+string(planJSON))
		cmd.SysProcAttr = workerProcAttr()
		var errOut strings.Builder
		cmd.Stderr = &limitedWriter{w: &errOut, n: 16 << 10}
		out, err := cmd.StdoutPipe()
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", w, err))
			continue
		}
		if err := cmd.Start(); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: start: %w", w, err))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if n, ok := strings.CutPrefix(sc.Text(), "progress "); ok {
					if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > last {
						done.Add(v - last)
						last = v
					}
				}
			}
			waitErr := make(chan error, 1)
			go func() { waitErr <- cmd.Wait() }()
			var err error
			select {
			case err = <-waitErr:
			case <-ctx.Done():
				_ = cmd.Process.Kill() // by PID
				err = fmt.Errorf("%w (killed)", ctx.Err())
				<-waitErr
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("worker %d (pid %d): %v\n%s", w, cmd.Process.Pid, err, strings.TrimSpace(errOut.String())))
				mu.Unlock()
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	showProgress(ctx, stderr, &done, total, finished)
	return errs
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// showProgress reports done/total until finished is closed: a line
// rewritten in place (\r) on a terminal, a plain line every two seconds
// and one at the end otherwise.
func showProgress(ctx context.Context, w io.Writer, done *atomic.Int64, total int64, finished <-chan struct{}) {
	tty := isTerminal(w)
	interval := 2 * time.Second
	if tty {
		interval = 100 * time.Millisecond
	}
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	line := func() string {
		n := done.Load()
		const width = 30
		bar := strings.Repeat("=", int(int64(width)*n/max(total, 1)))
		return fmt.Sprintf("[%-*s] %d/%d operations, %.1fs", width, bar, n, total, time.Since(start).Seconds())
	}
	for {
		select {
		case <-finished:
			if tty {
				fmt.Fprintf(w, "\r%s\n", line())
			} else {
				fmt.Fprintf(w, "progress: %s\n", line())
			}
			return
		case <-ctx.Done():
			// Keep reporting until the workers are reaped.
			<-finished
			return
		case <-t.C:
			if tty {
				fmt.Fprintf(w, "\r%s", line())
			} else {
				fmt.Fprintf(w, "progress: %s\n", line())
			}
		}
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// dropBlob deletes the blob of one acknowledged version: the fault the
// tests inject to prove that the checks catch a lost upload.
func dropBlob(ctx context.Context, o *setup.Opened, p plan) error {
	vs, err := o.Store.Versions(ctx, p.sharedURI(0))
	if err != nil {
		return err
	}
	switch {
	case len(vs) == 0:
		return errors.New("no version to drop")
	case vs[0].BlobKey == "":
		return errors.New("the first version's content is in its manifest, not in a blob: use a -size over ARTIFACTSTORE_INLINE_MAX_BYTES")
	}
	return o.Backend.Delete(ctx, vs[0].BlobKey)
}

// preflight takes and releases a scratch lock once, so that unreachable
// lock servers are reported at once rather than after every worker's lock
// timeout.
func preflight(ctx context.Context, o *setup.Opened) error {
	if o.Locker == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lease, err := o.Locker.Acquire(pctx, "demo-preflight-"+newRunID())
	if err != nil {
		return fmt.Errorf("the lock service does not answer: %w", err)
	}
	return lease.Release(pctx)
}
