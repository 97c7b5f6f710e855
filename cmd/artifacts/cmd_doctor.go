package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/catalog"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func doctorCommand() *command {
	return &command{
		name:     "doctor",
		synopsis: []string{"doctor [flags]"},
		summary:  "check the configuration, backend, lock service, write checks, layout, catalog and tag index",
		help: `Checks, in order, and prints one line per check (ok, warn, FAIL, or - when
not checked): the configuration; the backend (a read and a listing with the
configured credentials); the lock service (Redis: a quorum of masters
answers PING; file locks: the directory is usable); the conditional-write
checks (when a writer last proved on this bucket that conditional writes
are enforced); the bucket layout; the catalog; and the tag index. It writes nothing, so
read-only credentials can run it, unless --write: then it also runs the
checks a store's first write runs (scratch objects under _probe/, deleted
afterwards), which proves write access and conditional writes now.

Exit status: 0 when no check failed (warnings included); otherwise the
status of the first failed check's kind: 2 invalid configuration, 3 store
directory missing, 7 permission denied, 10 lock service unavailable, 1
backend unreachable or anything else.`,
		run: runDoctor,
	}
}

// doctorCheck is one line of the report.
type doctorCheck struct {
	Check  string `json:"check"`
	Status string `json:"status"` // ok, warn, fail, skip
	Detail string `json:"detail"`
	err    error  // a failure's error: the exit status
}

type doctorJSON struct {
	OK     bool          `json:"ok"`
	Checks []doctorCheck `json:"checks"`
}

// doctorReport collects the checks.
type doctorReport struct{ checks []doctorCheck }

func (r *doctorReport) ok(check, detail string)   { r.add(check, "ok", detail, nil) }
func (r *doctorReport) warn(check, detail string) { r.add(check, "warn", detail, nil) }
func (r *doctorReport) skip(check, detail string) { r.add(check, "skip", detail, nil) }
func (r *doctorReport) fail(check string, err error) {
	r.add(check, "fail", oneLine(err), err)
}

func (r *doctorReport) add(check, status, detail string, err error) {
	r.checks = append(r.checks, doctorCheck{Check: check, Status: status, Detail: detail, err: err})
}

// failures are the errors of the failed checks, in order.
func (r *doctorReport) failures() []error {
	var errs []error
	for _, c := range r.checks {
		if c.err != nil {
			errs = append(errs, c.err)
		}
	}
	return errs
}

func runDoctor(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var asJSON, write bool
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&write, "write", false, "also run the write checks of a first write (writes scratch objects under _probe/)")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrf(c.name, "unexpected arguments %q", pos)
	}
	r := &doctorReport{}
	a.diagnose(ctx, r, write)
	if asJSON {
		if err := writeJSON(a.stdout, doctorJSON{OK: len(r.failures()) == 0, Checks: r.checks}); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout)
		for _, ch := range r.checks {
			status := map[string]string{"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "-"}[ch.Status]
			t.row(ch.Check, status, ch.Detail)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	failed := r.failures()
	if len(failed) == 0 {
		return nil
	}
	code := exitCode(ctx, failed[0])
	if code == exitOK {
		code = exitFailure
	}
	return &exitError{code: code, msg: fmt.Sprintf("doctor: %d of %d checks failed", len(failed), len(r.checks))}
}

// diagnose runs the checks into r; a check that cannot run because an
// earlier one failed is not reported.
func (a *app) diagnose(ctx context.Context, r *doctorReport, write bool) {
	cfg, err := a.config()
	if err != nil {
		r.fail("configuration", err)
		return
	}
	r.ok("configuration", describeConfig(cfg))
	opened, err := a.open(ctx, openOpts{})
	if err != nil {
		r.fail("backend", err)
		return
	}
	defer opened.Close()
	s := opened.Store
	h, err := s.Ping(ctx)
	if err != nil && !errors.Is(err, store.ErrUnhealthy) {
		r.fail("backend", err) // cancelled, closed
		return
	}
	if h.Backend != nil {
		r.fail("backend", h.Backend)
	} else {
		r.ok("backend", "read and listed with the configured credentials")
	}
	switch {
	case opened.Locker == nil:
		r.skip("lock service", "locking is off (--lock none): writers are not serialized")
	case !h.LockChecked:
		r.skip("lock service", fmt.Sprintf("the %s locker has no health check", opened.Config.Lock))
	case h.Lock != nil:
		r.fail("lock service", h.Lock)
	default:
		r.ok("lock service", lockDetail(opened.Config))
	}
	if h.Backend != nil {
		return
	}
	a.diagnoseWrites(ctx, r, s, h, write)
	diagnoseLayout(ctx, r, opened, h)
}

// diagnoseWrites reports what is known of conditional writes, running the
// write checks with write.
func (a *app) diagnoseWrites(ctx context.Context, r *doctorReport, s *store.Store, h store.Health, write bool) {
	const check = "conditional writes"
	if write {
		if err := s.PrepareWrites(ctx); err != nil {
			if errors.Is(err, backend.ErrUnfencedWrites) {
				err = fmt.Errorf("%w (writers refuse this backend; ARTIFACTSTORE_ALLOW_UNFENCED_WRITES=true accepts the risk of lost updates)", err)
			}
			r.fail(check, err)
			return
		}
		st := s.ProbeStatus()
		switch {
		case st.State == store.ProbeUnfencedAccepted:
			r.warn(check, "not enforced by the backend, accepted by ARTIFACTSTORE_ALLOW_UNFENCED_WRITES: concurrent writers may lose updates")
		case st.FromRecord:
			r.ok(check, fmt.Sprintf("verified now (sequential checks; the race probe passed %s)", ago(st.RacesCheckedAt, a.now())))
		default:
			r.ok(check, "verified now (sequential checks and the race probe); write access works")
		}
		return
	}
	if h.ProbeRecord.IsZero() {
		r.skip(check, "not verified on this bucket yet: the first write runs the probe (about 70 requests); doctor --write runs it now")
		return
	}
	r.ok(check, fmt.Sprintf("a writer verified them %s (re-checked by each store's first write; the race probe daily)", ago(h.ProbeRecord, a.now())))
}

// diagnoseLayout looks at the first object of each area of the bucket.
func diagnoseLayout(ctx context.Context, r *doctorReport, opened *setup.Opened, h store.Health) {
	present := map[string]bool{}
	for _, area := range []string{"manifests/", "blobs/"} {
		for _, err := range opened.Backend.List(ctx, area) {
			if err != nil {
				r.fail("layout", fmt.Errorf("list %s: %w", area, err))
				return
			}
			present[area] = true
			break
		}
	}
	switch {
	case !present["manifests/"] && present["blobs/"]:
		r.warn("layout", "blobs without any manifest: interrupted uploads or a damaged bucket; 'artifacts reconcile' reports them")
	case !present["manifests/"]:
		r.ok("layout", "no artifacts yet")
	default:
		r.ok("layout", "manifests/ and blobs/ present")
	}
	_, err := opened.Backend.Stat(ctx, catalog.RootKey)
	switch {
	case err == nil:
		r.ok("catalog", "built: searches without a spec, usage and retention read it")
	case !errors.Is(err, backend.ErrNotFound):
		r.fail("catalog", fmt.Errorf("stat %s: %w", catalog.RootKey, err))
	case present["manifests/"]:
		r.warn("catalog", "not built: searches without a spec, usage and retention read every manifest until 'artifacts compact' builds it")
	default:
		r.skip("catalog", "built after the first write")
	}
	switch {
	case h.TagIndexReady:
		r.ok("tag index", "complete: searches by tag read only the tagged artifacts")
	case present["manifests/"]:
		r.warn("tag index", "not built: searches by tag read every manifest until 'artifacts reconcile --apply' builds it")
	default:
		r.skip("tag index", "marked complete by the first write")
	}
}

// describeConfig says where the store is, without credentials.
func describeConfig(cfg setup.Config) string {
	d := cfg.WithDefaults()
	var where string
	switch d.Backend {
	case setup.BackendFile:
		where = fmt.Sprintf("file backend in %s", d.FileDir)
	case setup.BackendS3:
		where = fmt.Sprintf("s3 bucket %q at %s", d.S3.Bucket, d.S3.Endpoint)
		if d.S3.Prefix != "" {
			where += fmt.Sprintf(" under %q", d.S3.Prefix)
		}
	default:
		where = string(d.Backend) + " backend"
	}
	return where + ", " + lockDetail(d)
}

// lockDetail describes the configured locks.
func lockDetail(cfg setup.Config) string {
	d := cfg.WithDefaults()
	switch d.Lock {
	case setup.LockFile:
		return "file locks in " + d.LockDir
	case setup.LockRedis:
		n := len(d.Redis.Addrs)
		return fmt.Sprintf("redis locks on %d master(s) (%s), quorum %d", n, strings.Join(d.Redis.Addrs, ", "), n/2+1)
	case setup.LockNone:
		return "no locks"
	}
	return string(d.Lock) + " locks"
}
