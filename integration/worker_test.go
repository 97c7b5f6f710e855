package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// envWorker, when set (to a JSON workerJob), makes the test binary a worker
// process instead of running tests.
const envWorker = "ARTIFACTSTORE_IT_WORKER"

// workerJob is what a worker process does.
type workerJob struct {
	// Mode is "hammer" (N uploads of distinct content, round robin over
	// URIs, printing an ack line per acknowledged upload) or "gated" (one
	// upload to URIs[0] that stops right before its manifest Put: it prints
	// "blob <key>" once its blob is stored, then "hold", then waits until
	// HoldFile exists, then commits and prints its "result") or "soak"
	// (uploads and deletes until HoldFile exists, see runSoakWorker).
	Mode     string   `json:"mode"`
	Name     string   `json:"name"`
	URIs     []string `json:"uris"`
	N        int      `json:"n"`
	HoldFile string   `json:"hold_file"`
}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial on its process-wide logger; the
	// fault tests kill masters on purpose and check the errors the store
	// returns, so those lines are only noise here.
	redis.SetLogger(quietRedis{})
	if job, ok := os.LookupEnv(envWorker); ok {
		os.Exit(runWorker(job))
	}
	os.Exit(m.Run())
}

// quietRedis discards go-redis's log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// out prints whole lines to stdout from any goroutine.
type out struct{ mu sync.Mutex }

func (o *out) println(format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", a...)
}

func runWorker(spec string) int {
	var job workerJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		fmt.Fprintln(os.Stderr, "worker: bad job:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg, err := setup.FromEnv(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	o := &out{}
	if job.Mode == "gated" {
		cfg.WrapBackend = func(b backend.Backend) backend.Backend {
			var once sync.Once
			return &hookBackend{
				Backend: b,
				afterPut: func(key string, err error) {
					if err == nil && strings.HasPrefix(key, "blobs/") {
						o.println("blob %s", key)
					}
				},
				beforePut: func(ctx context.Context, key string) error {
					if !strings.HasPrefix(key, "manifests/") {
						return nil
					}
					var err error
					once.Do(func() { err = holdUntilFile(ctx, o, job.HoldFile) })
					return err
				},
			}
		}
	}
	if job.Mode == "soak" {
		cfg.WrapBackend = soakBackend // soak_test.go
	}
	opened, err := setup.Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker: open:", err)
		return 2
	}
	defer opened.Close()
	s := opened.Store

	switch job.Mode {
	case "hammer":
		for i := range job.N {
			uri := job.URIs[i%len(job.URIs)]
			data := payload(job.Name, i)
			md, err := uploadRetrying(ctx, s, uri, data)
			if err != nil {
				fmt.Fprintf(os.Stderr, "worker %s: upload %d: %v\n", job.Name, i, err)
				return 1
			}
			a, _ := json.Marshal(ack{URI: uri, Version: md.Version, SHA256: md.SHA256})
			o.println("ack %s", a)
		}
		o.println("done")
		return 0
	case "soak": // soak_test.go
		return runSoakWorker(s, job, o)
	case "gated":
		// Read the artifact first (when it exists): the store then knows
		// its manifest, so the first manifest put of the upload, where the
		// worker holds, is the conditional commit itself.
		if _, err := s.Versions(ctx, job.URIs[0]); err != nil && !errors.Is(err, store.ErrNotFound) {
			fmt.Fprintln(os.Stderr, "worker: versions:", err)
			return 2
		}
		md, err := s.UploadBytes(ctx, job.URIs[0], payload(job.Name, 0), store.UploadOptions{})
		if err != nil {
			o.println("result err conflict=%t leaselost=%t precondition=%t: %v", errors.Is(err, store.ErrConflict),
				errors.Is(err, store.ErrLeaseLost), errors.Is(err, backend.ErrPreconditionFailed), err)
			return 0
		}
		a, _ := json.Marshal(ack{URI: job.URIs[0], Version: md.Version, SHA256: md.SHA256})
		o.println("result ok %s", a)
		return 0
	}
	fmt.Fprintln(os.Stderr, "worker: unknown mode", job.Mode)
	return 2
}

// holdUntilFile prints "hold" and waits until path exists: the worker is
// then inside its critical section (lock held, manifest read, commit not
// sent), where the test stops or kills it.
func holdUntilFile(ctx context.Context, o *out, path string) error {
	o.println("hold")
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// uploadRetrying uploads data, retrying a conflict or a lock timeout (what
// other writers cause) a bounded number of times.
func uploadRetrying(ctx context.Context, s *store.Store, uri string, data []byte) (store.Metadata, error) {
	for attempt := 1; ; attempt++ {
		md, err := s.UploadBytes(ctx, uri, data, store.UploadOptions{})
		if err == nil || attempt == 20 || ctx.Err() != nil ||
			!(errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrLockTimeout)) {
			return md, err
		}
	}
}
