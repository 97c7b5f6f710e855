// Command artifacts operates an artifact store from a shell: the same
// store (package store, opened by package setup) that worker nodes use as a
// library, over a local directory with file locks or over S3 with Redis
// locks.
//
// Usage:
//
//	artifacts [global flags] COMMAND [flags] [arguments]
//	artifacts help COMMAND
//	artifacts COMMAND --help
//	artifacts --version
//
// Commands:
//
//	put       upload a file (or stdin with -) as artifact://SPEC/TASK/TYPE,
//	          with --tag (repeatable), --meta KEY=VALUE (repeatable),
//	          --content-type; prints the stored version's URI
//	get       download an artifact (or ?version=N, --version N) to stdout
//	          or -o FILE (written atomically)
//	ls        list artifacts (current versions) [SPEC[/TASK]] with filters
//	search    find artifacts: --spec --task --type --tag (all of)
//	          --after --before (RFC3339, 2006-01-02, or a duration ago:
//	          24h, 7d); a table by default, --json for scripts
//	stat      metadata of an artifact or version (--json)
//	versions  the stored versions of an artifact (--json)
//	tag       tag add URI TAG..., tag rm URI TAG..., tag set URI [TAG...]
//	rm        delete URIs, or --spec NAME [--task ID]; asks for
//	          confirmation on a terminal unless --yes, and refuses without
//	          a terminal unless --yes
//	export    ZIP of a spec or task (-o FILE, or stdout when it is not a
//	          terminal); progress on stderr: a bar on a terminal, plain
//	          lines otherwise
//	usage     usage by spec and type (human-readable sizes) and quota state
//	verify    check content against SHA-256, all or by URI or filter
//	cleanup   retention: list expired versions; --apply deletes them
//	reconcile orphan and missing blobs; --apply deletes the orphans
//	lock      lock status URI; lock break URI (asks unless --yes, prints
//	          the holder it broke)
//	doctor    one line per check: configuration, backend, lock service,
//	          conditional writes, layout, catalog, tag index; --write also runs the
//	          checks of a first write; --json
//	completion bash|zsh|fish: a shell completion script of the commands,
//	          subcommands and flags, generated from the tool's own command
//	          table (zsh runs it through bashcompinit)
//
// The read commands (get, ls, search, stat, versions, export, usage,
// verify, cleanup and reconcile without --apply, expires, lock status,
// doctor) write nothing to the store or the lock service, so they work
// with read-only credentials or a read-only store directory.
//
// artifacts --version prints the module version, the VCS revision and
// commit time (with +dirty for a modified tree) and the Go version, from
// the build information the Go toolchain embeds (runtime/debug); a binary
// built from a checkout says "(devel)".
//
// Flags and arguments may come in any order; "--" ends the flags. Global
// flags (--config, --backend, --dir, --lock, --lock-dir, --lock-timeout,
// --versioning, --compression, --s3-endpoint, --s3-bucket, --s3-prefix,
// --redis, --verbose, --metrics-addr) are accepted before or after the
// command.
//
// --metrics-addr HOST:PORT serves the store's Prometheus metrics (package
// telemetry), with the Go runtime and process metrics, at
// http://HOST:PORT/metrics while the command runs: for long commands
// (export, verify, cleanup, reconcile). HOST must be a loopback address
// (127.0.0.1, [::1], localhost); another is a usage error (exit 2).
//
// # Configuration
//
// Every store setting is an ARTIFACTSTORE_* variable, read by
// setup.FromEnv through one lookup function layered from three sources,
// first match wins:
//
//  1. flags: each global flag sets the variable it names (--dir sets
//     ARTIFACTSTORE_DIR, --backend ARTIFACTSTORE_BACKEND, --redis
//     ARTIFACTSTORE_REDIS_ADDRS, ...);
//  2. the environment (an empty variable counts as unset);
//  3. the config file given by --config FILE or ARTIFACTSTORE_CONFIG: one
//     KEY=VALUE per line, KEY an ARTIFACTSTORE_* variable, # comments and
//     blank lines ignored, an optional "export " prefix and quotes around
//     VALUE allowed, so the same file can be sourced by a shell.
//
// The defaults are package setup's: the file backend (ARTIFACTSTORE_DIR
// is then required) with file locks in DIR/locks. Only put creates a
// missing directory; the other commands report it as not found (exit 3),
// so that a mistyped path does not look like an empty store. The memory
// backend lasts one invocation. Credentials (S3 keys, Redis password) are
// read from the environment or the config file, never from flags, and are
// never printed. --verbose logs the store's operations to stderr;
// otherwise the only output on stderr is progress, prompts and the error.
//
// # Progress
//
// When stdout and stderr are both terminals, put and get -o FILE draw a
// progress bar (github.com/schollz/progressbar) on stderr once a transfer
// passes 4 MiB: bytes done of the total (a byte counter for stdin), rate
// and time left. With --json (put), when the content goes to stdout (get),
// or when either stream is not a terminal (scripts, CI logs), nothing is
// drawn. export has its own progress (--quiet turns it off).
//
// The retention periods (ARTIFACTSTORE_RETENTION_*) and the quota
// (ARTIFACTSTORE_QUOTA_*) are variables like the others; cleanup and
// expires take --retention TYPE=DURATION, --default-retention and
// --exempt-tag, and usage --quota and --warn-ratio, to override them for
// one run. Each command's --help lists the variables that matter to it;
// the top-level --help lists them all (from setup.Variables, the table of
// the README). An ARTIFACTSTORE_* variable, in the environment or the
// config file, that nothing reads is a usage error (exit 2) that names the
// closest known variable: "unknown variable ARTIFACTSTORE_VERSIONNG (did
// you mean ARTIFACTSTORE_VERSIONING?)".
//
// # Exit status
//
// A failure prints one line on stderr, "artifacts: COMMAND: message", and
// exits with the status of its kind (matched with errors.Is on the
// store's sentinel errors):
//
//	0    success
//	1    failure: I/O, backend unreachable, confirmation declined,
//	     cleanup failures, verify could not read something
//	2    usage error: bad flags or arguments, malformed URI
//	     (store.ErrInvalidArgument), invalid configuration, a destructive
//	     command without --yes and without a terminal
//	3    not found: artifact, version, input file, store directory
//	     (store.ErrNotFound)
//	4    integrity: content does not match its SHA-256
//	     (store.ErrIntegrity); verify found corrupt or missing blobs;
//	     reconcile found missing blobs or invalid manifests
//	5    storage full: quota or backend (store.ErrStorageFull)
//	6    lock: timed out waiting (store.ErrLockTimeout), held
//	     (store.ErrLocked), lease lost (store.ErrLeaseLost), conflicting
//	     concurrent write (store.ErrConflict)
//	7    permission denied (store.ErrPermissionDenied, or a local file)
//	8    unsupported by the configured lock (lock status/break with
//	     --lock none): store.ErrUnsupported
//	9    outcome unknown: the write reached the store but whether it took
//	     effect could not be learned (store.ErrUnknownOutcome); read the
//	     artifact to find out
//	10   lock service unavailable: too few Redis masters could be reached
//	     (lock.ErrUnavailable; nothing listening, a host that does not
//	     answer, TLS refused). A write gives up after about the Redis dial
//	     timeout (ARTIFACTSTORE_REDIS_DIAL_TIMEOUT, 2s), not after the lock
//	     timeout; reads take no lock and still work. A refused Redis
//	     password or ACL is a permission error (7), at once.
//	130  interrupted: SIGINT (Ctrl-C) or SIGTERM cancels the operation's
//	     context, also while put - waits for stdin; the message is
//	     "artifacts: COMMAND: interrupted"
//
// doctor exits 0 when no check failed (warnings included), otherwise with
// the status of the first failed check's kind from the table above.
//
// A failed get to stdout may already have written part of the content:
// discard it when the status is not 0 (with -o FILE nothing is written).
package main
