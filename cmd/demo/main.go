package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/internal/metricsserver"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// Environment variables of the worker mode (set by the parent, hidden from
// users) and of the fault the tests inject.
const (
	envWorker = "ARTIFACTSTORE_DEMO_WORKER" // worker number; set: run as a worker
	envPlan   = "ARTIFACTSTORE_DEMO_PLAN"   // JSON plan of the run
	envFault  = "ARTIFACTSTORE_DEMO_FAULT"  // "drop-blob": delete a blob before the checks
)

// Exit statuses.
const (
	exitOK        = 0
	exitInvariant = 1
	exitSetup     = 2
	exitWorker    = 3 // a worker failed; the invariants held
)

func main() {
	// go-redis has one logger per process, stderr by default: its lines
	// (a master that went away) go where the demo's own go.
	redis.SetLogger(redislock.GoRedisLogger{Logger: logger(os.Stderr)})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if id, ok := os.LookupEnv(envWorker); ok {
		return runWorker(ctx, id, os.Getenv(envPlan), stdout, stderr)
	}
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitSetup
	}
	return runParent(ctx, opts, stdout, stderr)
}

// options are the parent's flags.
type options struct {
	workers, ops, size, shared int
	dir                        string
	keep                       bool
	backend, lock, redis       string
	s3Endpoint, s3Bucket       string
	timeout                    time.Duration
	verbose                    bool
	metricsAddr                string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.workers, "workers", 4, "number of worker `processes` (1-32)")
	fs.IntVar(&o.ops, "ops", 50, "operations per worker; each uploads, re-uploads, tags, downloads and verifies")
	fs.IntVar(&o.size, "size", 16<<10, "content size of each upload, in `bytes`")
	fs.IntVar(&o.shared, "shared", 2, "number of artifacts all workers write to (the others are private to one worker)")
	fs.StringVar(&o.dir, "dir", "", "`directory` of the file backend (default: a temporary directory, removed at the end)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	fs.StringVar(&o.backend, "backend", "", "`file` or s3 (default $ARTIFACTSTORE_BACKEND, else file)")
	fs.StringVar(&o.lock, "lock", "", "`kind` of lock: file, redis or none (default: file with the file backend, redis with s3)")
	fs.StringVar(&o.redis, "redis", "", "comma-separated Redis master `addresses` (sets ARTIFACTSTORE_REDIS_ADDRS; implies -lock redis)")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 `host:port` (sets ARTIFACTSTORE_S3_ENDPOINT; implies -backend s3); credentials come from ARTIFACTSTORE_S3_ACCESS_KEY and ARTIFACTSTORE_S3_SECRET_KEY")
	fs.StringVar(&o.s3Bucket, "s3-bucket", "", "S3 `bucket` (sets ARTIFACTSTORE_S3_BUCKET; created when missing)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.verbose, "v", false, "log the store's warnings and errors to stderr")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics during the run (a loopback address); worker i serves on PORT+1+i")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: demo [flags]\n\nRuns worker processes against one artifact store and checks that nothing was lost.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	bad := func(format string, a ...any) (options, error) {
		fmt.Fprintf(stderr, "demo: "+format+"\n", a...)
		fs.Usage()
		return o, fmt.Errorf(format, a...)
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected arguments %q", fs.Args())
	case o.workers < 1 || o.workers > 32:
		return bad("-workers %d: want 1 to 32", o.workers)
	case o.ops < 1:
		return bad("-ops %d: want at least 1", o.ops)
	case o.size < 64 || o.size > 64<<20:
		return bad("-size %d: want 64 bytes to 64 MiB", o.size)
	case o.shared < 1 || o.shared > 16:
		return bad("-shared %d: want 1 to 16", o.shared)
	case o.timeout <= 0:
		return bad("-timeout %v: want a positive duration", o.timeout)
	}
	if o.metricsAddr != "" {
		if err := metricsserver.CheckAddr(o.metricsAddr); err != nil {
			return bad("%v", err)
		}
		if _, err := metricsAddr(o.metricsAddr, o.workers-1); err != nil {
			return bad("%v", err)
		}
	}
	return o, nil
}
