package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// ---- usage ----

func usageCommand() *command {
	return &command{
		name:     "usage",
		synopsis: []string{"usage [flags]"},
		summary:  "show storage used, by spec and by type, and the quota state",
		help: `Reads every manifest and prints the usage of the store: artifacts, versions,
content bytes and stored bytes (after compression), in total, by spec and by
type, then the quota state: none, ok, warning (at or above the warning
threshold) or full. The quota counts stored bytes; it is the store's
configured quota unless --quota is given. --recount also resets the usage
counter that uploads check the quota against (after a crash, or after
enabling the quota on an existing bucket). The quota is
ARTIFACTSTORE_QUOTA_MAX_BYTES and ARTIFACTSTORE_QUOTA_WARN_RATIO (or the
config file) unless --quota and --warn-ratio are given.`,
		vars: []string{store.EnvPrefix + "QUOTA_MAX_BYTES", store.EnvPrefix + "QUOTA_WARN_RATIO"},
		run:  runUsage,
	}
}

// quotaJSON is the quota part of usage --json.
type quotaJSON struct {
	MaxBytes    int64   `json:"max_bytes"` // 0: no quota
	WarnRatio   float64 `json:"warn_ratio,omitempty"`
	StoredBytes int64   `json:"stored_bytes"`
	Ratio       float64 `json:"ratio,omitempty"`
	State       string  `json:"state"` // none, ok, warning, full
}

type usageJSON struct {
	Total  store.UsageTotals            `json:"total"`
	BySpec map[string]store.UsageTotals `json:"by_spec"`
	ByType map[string]store.UsageTotals `json:"by_type"`
	// BySpecType is by spec, then by type.
	BySpecType map[string]map[string]store.UsageTotals `json:"by_spec_type"`
	Quota      quotaJSON                               `json:"quota"`
}

func runUsage(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		asJSON, recount bool
		quota           string
		warnRatio       float64
	)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&recount, "recount", false, "also reset the quota's usage counter to the exact usage (needs a quota)")
	fs.StringVar(&quota, "quota", "", "the quota, `SIZE` stored bytes (10GiB, 500MB, ...): the store has no environment variable for it")
	fs.Float64Var(&warnRatio, "warn-ratio", 0, "warning threshold as a `fraction` of the quota (default the store's, 0.8)")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrf(c.name, "unexpected arguments %q", pos)
	}
	var maxBytes int64
	if quota != "" {
		if maxBytes, err = parseSize(quota); err != nil {
			return usageErrf(c.name, "--quota: %v", err)
		}
	}
	if warnRatio < 0 || warnRatio > 1 || math.IsNaN(warnRatio) {
		return usageErrf(c.name, "--warn-ratio %v: want a fraction in (0, 1]", warnRatio)
	}
	adjust := func(cfg *setup.Config) {
		if maxBytes > 0 {
			cfg.Store.Quota.MaxBytes = maxBytes
		}
		if warnRatio > 0 {
			cfg.Store.Quota.WarnRatio = warnRatio
		}
	}
	return a.withStore(ctx, openOpts{adjust: adjust}, func(s *store.Store, _ *setup.Opened) error {
		q := s.Config().Quota
		if recount && q.MaxBytes <= 0 {
			// A counter written without a quota would be stale by the
			// time a quota is enabled, and uploads would trust it.
			return usageErr(c.name, "--recount resets the quota's usage counter: give the quota with --quota")
		}
		var rep store.UsageReport
		var err error
		if recount {
			rep, err = s.RecountUsage(ctx)
		} else {
			rep, err = s.Usage(ctx)
		}
		if err != nil {
			return err
		}
		qs := quotaState(q, rep.Total.StoredBytes)
		if asJSON {
			return writeJSON(a.stdout, usageJSON{Total: rep.Total, BySpec: rep.BySpec, ByType: rep.ByType, BySpecType: rep.BySpecType, Quota: qs})
		}
		w := a.stdout
		t := rep.Total
		fmt.Fprintf(w, "total: %d artifacts, %d versions, %s (stored %s)\n\n", t.Artifacts, t.Versions, humanSize(t.Bytes), humanSize(t.StoredBytes))
		for _, part := range []struct {
			title string
			m     map[string]store.UsageTotals
		}{{"SPEC", rep.BySpec}, {"TYPE", rep.ByType}} {
			tb := newTable(w, part.title, "ARTIFACTS", "VERSIONS", "SIZE", "STORED")
			for _, k := range slices.Sorted(maps.Keys(part.m)) {
				u := part.m[k]
				tb.row(k, strconv.FormatInt(u.Artifacts, 10), strconv.FormatInt(u.Versions, 10), humanSize(u.Bytes), humanSize(u.StoredBytes))
			}
			if err := tb.flush(); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
		if qs.State == "none" {
			_, err = fmt.Fprintf(w, "quota: none (unlimited)\n")
			return err
		}
		_, err = fmt.Fprintf(w, "quota: %s of %s stored (%.1f%%), warning at %.0f%%: %s\n",
			humanSize(qs.StoredBytes), humanSize(qs.MaxBytes), qs.Ratio*100, qs.WarnRatio*100, qs.State)
		return err
	})
}

// quotaState judges stored bytes against q.
func quotaState(q store.QuotaConfig, stored int64) quotaJSON {
	q = q.WithDefaults()
	out := quotaJSON{MaxBytes: q.MaxBytes, StoredBytes: stored, State: "none"}
	if q.MaxBytes <= 0 {
		return out
	}
	out.WarnRatio = q.WarnRatio
	out.Ratio = float64(stored) / float64(q.MaxBytes)
	switch {
	case stored >= q.MaxBytes:
		out.State = "full"
	case out.Ratio >= q.WarnRatio:
		out.State = "warning"
	default:
		out.State = "ok"
	}
	return out
}

// ---- verify ----

func verifyCommand() *command {
	return &command{
		name:     "verify",
		synopsis: []string{"verify [flags] [URI...]", "verify [flags] [--spec NAME] [--task ID] [--type TYPE] [--tag TAG]..."},
		summary:  "check stored content against its SHA-256; exit status 4 when something is corrupt or missing",
		help: `Reads every version of the artifacts given by URI (or only the version named
by ?version=N), or of every artifact that matches the filters (all of them
when none is given), and checks it against its recorded SHA-256 and size.
Prints each problem (CORRUPT, MISSING blob, or UNCHECKED when it could not
be read) and a summary. Exit status 4 when something is corrupt or missing,
1 when something could not be checked, 0 when all is well.

Filters: as for search, except that --after/--before bound each version's
creation time.`,
		run: runVerify,
	}
}

// problemJSON is one problem of verify --json.
type problemJSON struct {
	URI     string `json:"uri"`
	Version int    `json:"version,omitempty"`
	BlobKey string `json:"blob_key,omitempty"`
	Error   string `json:"error"`
}

type verifyJSON struct {
	OK        bool          `json:"ok"`
	Checked   int           `json:"checked"`
	Corrupt   []problemJSON `json:"corrupt"`
	Missing   []problemJSON `json:"missing"`
	Unchecked []problemJSON `json:"unchecked"`
}

func problemsJSON(ps []store.VerifyProblem) []problemJSON {
	out := make([]problemJSON, 0, len(ps))
	for _, p := range ps {
		e := ""
		if p.Err != nil {
			e = oneLine(p.Err)
		}
		out = append(out, problemJSON{URI: p.URI, Version: p.Version, BlobKey: p.BlobKey, Error: e})
	}
	return out
}

func runVerify(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		ff          filterFlags
		asJSON      bool
		concurrency int
	)
	ff.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.IntVar(&concurrency, "concurrency", store.DefaultVerifyConcurrency, "how many blobs to read at once")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	f, err := ff.filter(c.name, a.now())
	if err != nil {
		return err
	}
	if concurrency < 1 {
		return usageErrf(c.name, "--concurrency %d: want at least 1", concurrency)
	}
	var uris []store.URI
	for _, p := range pos {
		u, err := store.ParseURI(p)
		if err != nil {
			return usageErr(c.name, err.Error())
		}
		uris = append(uris, u)
	}
	if len(uris) > 0 && !matchesAll(f) {
		return usageErr(c.name, "give URIs or filters, not both")
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		var rep store.VerifyReport
		if len(uris) > 0 {
			rep, err = verifyURIs(ctx, s, uris)
		} else {
			rep, err = s.VerifyAll(ctx, store.VerifyOptions{Filter: f, Concurrency: concurrency})
		}
		if err != nil {
			return err
		}
		if asJSON {
			if err := writeJSON(a.stdout, verifyJSON{OK: rep.OK(), Checked: rep.Checked,
				Corrupt: problemsJSON(rep.Corrupt), Missing: problemsJSON(rep.Missing), Unchecked: problemsJSON(rep.Failed)}); err != nil {
				return err
			}
		} else {
			for _, l := range []struct {
				label string
				ps    []store.VerifyProblem
			}{{"CORRUPT", rep.Corrupt}, {"MISSING", rep.Missing}, {"UNCHECKED", rep.Failed}} {
				for _, p := range l.ps {
					// The error may start with the artifact's URI: name it once.
					msg := strings.TrimPrefix(oneLine(p.Err), artifactURI(store.Metadata{URI: p.URI})+": ")
					fmt.Fprintf(a.stdout, "%-9s %s: %s\n", l.label, p.URI, msg)
				}
			}
			fmt.Fprintf(a.stdout, "checked %d versions: %d corrupt, %d missing, %d unchecked\n",
				rep.Checked, len(rep.Corrupt), len(rep.Missing), len(rep.Failed))
		}
		switch {
		case len(rep.Corrupt) > 0 || len(rep.Missing) > 0:
			return &exitError{code: exitIntegrity, msg: fmt.Sprintf("verify: %d corrupt, %d missing", len(rep.Corrupt), len(rep.Missing))}
		case len(rep.Failed) > 0:
			return &exitError{code: exitFailure, msg: fmt.Sprintf("verify: %d versions could not be checked", len(rep.Failed))}
		}
		return nil
	})
}

// matchesAll reports whether f selects everything.
func matchesAll(f store.Filter) bool {
	return f.Spec == "" && f.Task == "" && f.Type == "" && len(f.Tags) == 0 && f.CreatedAfter.IsZero() && f.CreatedBefore.IsZero()
}

// verifyURIs checks each URI with VerifyChecksum and builds a report like
// VerifyAll's.
func verifyURIs(ctx context.Context, s *store.Store, uris []store.URI) (store.VerifyReport, error) {
	var rep store.VerifyReport
	for _, u := range uris {
		mds, err := s.Versions(ctx, u.Artifact().String())
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			rep.Failed = append(rep.Failed, store.VerifyProblem{URI: u.String(), Version: u.Version, Err: err})
			continue
		}
		for _, md := range mds {
			if u.Version != 0 && md.Version != u.Version {
				continue
			}
			err := s.VerifyChecksum(ctx, md.URI)
			p := store.VerifyProblem{URI: md.URI, Version: md.Version, BlobKey: md.BlobKey, Err: err}
			switch {
			case err == nil:
				rep.Checked++
			case ctx.Err() != nil:
				return rep, err
			case errors.Is(err, store.ErrIntegrity) && errors.Is(err, store.ErrNotFound):
				rep.Checked++
				rep.Missing = append(rep.Missing, p)
			case errors.Is(err, store.ErrIntegrity):
				rep.Checked++
				rep.Corrupt = append(rep.Corrupt, p)
			default:
				rep.Failed = append(rep.Failed, p)
			}
		}
		if u.Version != 0 && !slices.ContainsFunc(mds, func(md store.Metadata) bool { return md.Version == u.Version }) {
			rep.Failed = append(rep.Failed, store.VerifyProblem{URI: u.String(), Version: u.Version,
				Err: fmt.Errorf("%s: version %d: %w", u.Artifact(), u.Version, store.ErrNotFound)})
		}
	}
	return rep, nil
}

// ---- cleanup ----

func cleanupCommand() *command {
	return &command{
		name:     "cleanup",
		synopsis: []string{"cleanup [flags]"},
		summary:  "delete expired artifacts by retention period (dry run unless --apply)",
		help: `Lists the versions older than their type's retention period (defaults: diff
30d, log 7d, test 14d, custom types never; artifacts tagged "retain" never
expire) and, with --apply, deletes them: an artifact whose versions all
expired is deleted whole. Without --apply nothing changes. The periods come
from ARTIFACTSTORE_RETENTION_PERIODS, ARTIFACTSTORE_RETENTION_DEFAULT and
ARTIFACTSTORE_RETENTION_EXEMPT_TAG (or the config file); --retention,
--default-retention and --exempt-tag override them for this run.

Filters restrict the cleanup, as for verify.`,
		vars: retentionVars(),
		run:  runCleanup,
	}
}

// retentionFlag is a repeatable TYPE=DURATION flag.
type retentionFlag map[string]time.Duration

func (r retentionFlag) String() string {
	parts := make([]string, 0, len(r))
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, k+"="+formatPeriod(r[k]))
	}
	return strings.Join(parts, ",")
}

func (r retentionFlag) Set(v string) error {
	typ, ds, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want TYPE=DURATION (log=3d, test=forever), got %q", v)
	}
	if err := store.ValidateName("type", typ); err != nil {
		return err
	}
	d, err := parsePeriod(ds)
	if err != nil {
		return err
	}
	r[typ] = d
	return nil
}

// parsePeriod is parseDuration plus "forever"; it must be positive.
func parsePeriod(s string) (time.Duration, error) {
	if s == "forever" {
		return store.RetainForever, nil
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (36h, 7d, 2w or forever)", s)
	}
	return d, nil
}

type cleanupJSON struct {
	DryRun      bool             `json:"dry_run"`
	Artifacts   int              `json:"artifacts"`
	Versions    int              `json:"versions"`
	Bytes       int64            `json:"bytes"`
	StoredBytes int64            `json:"stored_bytes"`
	Failed      int              `json:"failed"`
	Deleted     []store.Metadata `json:"deleted"`
}

// retentionVars are the variables of the retention periods, which cleanup
// and expires read.
func retentionVars() []string {
	return []string{store.EnvPrefix + "RETENTION_PERIODS", store.EnvPrefix + "RETENTION_DEFAULT", store.EnvPrefix + "RETENTION_EXEMPT_TAG"}
}

// retentionFlags are the retention overrides of cleanup and expires.
type retentionFlags struct {
	periods               retentionFlag
	defaultPeriod, exempt string
}

func (r *retentionFlags) register(fs *flag.FlagSet) {
	r.periods = retentionFlag{}
	fs.Var(r.periods, "retention", "retention period of a type for this run, `TYPE=DURATION` (repeatable; 36h, 7d, 2w, forever)")
	fs.StringVar(&r.defaultPeriod, "default-retention", "", "retention `DURATION` of custom types without --retention (default forever)")
	fs.StringVar(&r.exempt, "exempt-tag", "", "artifacts with `TAG` never expire (default \"retain\")")
}

// adjust checks the flags and returns the change they make to the
// configuration.
func (r *retentionFlags) adjust(cmd string) (func(cfg *setup.Config), error) {
	var def time.Duration
	if r.defaultPeriod != "" {
		var err error
		if def, err = parsePeriod(r.defaultPeriod); err != nil {
			return nil, usageErrf(cmd, "--default-retention: %v", err)
		}
	}
	if r.exempt != "" {
		if err := store.ValidateTag(r.exempt); err != nil {
			return nil, usageErrf(cmd, "--exempt-tag: %v", err)
		}
	}
	return func(cfg *setup.Config) {
		rc := &cfg.Store.Retention
		if len(r.periods) > 0 {
			merged := maps.Clone(rc.Periods)
			if merged == nil {
				merged = map[string]time.Duration{}
			}
			maps.Copy(merged, r.periods)
			rc.Periods = merged
		}
		if def != 0 {
			rc.Default = def
		}
		if r.exempt != "" {
			rc.ExemptTag = r.exempt
		}
	}, nil
}

func runCleanup(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		ff            filterFlags
		rf            retentionFlags
		apply, asJSON bool
	)
	ff.register(fs)
	fs.BoolVar(&apply, "apply", false, "delete (default: dry run, report only)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	rf.register(fs)
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrf(c.name, "unexpected arguments %q (filters are flags)", pos)
	}
	f, err := ff.filter(c.name, a.now())
	if err != nil {
		return err
	}
	adjust, err := rf.adjust(c.name)
	if err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{adjust: adjust}, func(s *store.Store, _ *setup.Opened) error {
		rep, runErr := s.CleanupExpired(ctx, store.CleanupOptions{DryRun: !apply, Filter: f})
		if runErr != nil && ctx.Err() != nil {
			return runErr
		}
		if asJSON {
			deleted := rep.Deleted
			if deleted == nil {
				deleted = []store.Metadata{}
			}
			if err := writeJSON(a.stdout, cleanupJSON{DryRun: rep.DryRun, Artifacts: rep.Artifacts, Versions: rep.Versions,
				Bytes: rep.Bytes, StoredBytes: rep.StoredBytes, Failed: rep.Failed, Deleted: deleted}); err != nil {
				return err
			}
			return runErr
		}
		verb := "deleted"
		if !apply {
			verb = "would delete"
		}
		now := a.now()
		ret := s.Config().Retention
		for _, md := range rep.Deleted {
			fmt.Fprintf(a.stdout, "%s %s (%s, created %s, retention %s)\n", verb, md.URI, humanSize(md.Size),
				ago(md.CreatedAt, now), formatPeriod(ret.Period(md.Type)))
		}
		fmt.Fprintf(a.stdout, "%s %d versions (%d whole artifacts), %s (stored %s)", verb, rep.Versions, rep.Artifacts,
			humanSize(rep.Bytes), humanSize(rep.StoredBytes))
		if rep.Failed > 0 {
			fmt.Fprintf(a.stdout, "; %d artifacts failed", rep.Failed)
		}
		fmt.Fprintln(a.stdout)
		if !apply && rep.Versions > 0 {
			fmt.Fprintln(a.stdout, "dry run: nothing was deleted; run again with --apply to delete")
		}
		return runErr
	})
}

// ---- reconcile ----

func reconcileCommand() *command {
	return &command{
		name:     "reconcile",
		synopsis: []string{"reconcile [flags]"},
		summary:  "find orphan blobs and missing blobs (dry run unless --apply)",
		help: `Compares the blobs with the manifests: blobs no manifest references (left by a
writer killed between its upload and its commit) older than the grace
period are orphans, deleted with --apply; versions whose blob is missing,
manifests that are not valid records and keys outside the layout are
reported. With --apply and a quota, the usage counter is reset. Exit status
4 when missing blobs or invalid manifests are found.`,
		run: runReconcile,
	}
}

type reconcileJSON struct {
	Applied          bool          `json:"applied"`
	Manifests        int           `json:"manifests"`
	Blobs            int           `json:"blobs"`
	OrphanBlobs      []string      `json:"orphan_blobs"`
	OrphanBytes      int64         `json:"orphan_bytes"`
	Pending          int           `json:"pending"`
	MissingBlobs     []problemJSON `json:"missing_blobs"`
	InvalidManifests []string      `json:"invalid_manifests"`
	Strays           []string      `json:"strays"`
	Deleted          int           `json:"deleted"`
	DeletedBytes     int64         `json:"deleted_bytes"`
	UsageReset       bool          `json:"usage_reset"`
	// UsageDriftBytes is what the quota's usage counter held beyond the
	// stored bytes the manifests add up to (negative: below).
	UsageDriftBytes   int64 `json:"usage_drift_stored_bytes"`
	Tombstones        int   `json:"tombstones"`
	TombstonesRemoved int   `json:"tombstones_removed"`

	TagMarkers        int             `json:"tag_markers"`
	MissingTagMarkers []tagMarkerJSON `json:"missing_tag_markers"`
	StaleTagMarkers   []tagMarkerJSON `json:"stale_tag_markers"`
	TagMarkersCreated int             `json:"tag_markers_created"`
	TagMarkersDeleted int             `json:"tag_markers_deleted"`
	TagIndexReady     bool            `json:"tag_index_ready"`
}

type tagMarkerJSON struct {
	Tag string `json:"tag"`
	URI string `json:"uri"`
}

func tagMarkersJSON(ms []store.TagMarker) []tagMarkerJSON {
	out := make([]tagMarkerJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, tagMarkerJSON{Tag: m.Tag, URI: m.URI})
	}
	return out
}

func runReconcile(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		apply, asJSON bool
		grace         string
	)
	fs.BoolVar(&apply, "apply", false, "delete the orphan blobs (default: dry run)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.StringVar(&grace, "grace", "", "only blobs (and tombstones) older than `DURATION` are reclaimed (default 1h; an upload slower than that between its transfer and its commit fails with a conflict)")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrf(c.name, "unexpected arguments %q", pos)
	}
	var gp time.Duration
	if grace != "" {
		if gp, err = parseDuration(grace); err != nil || gp <= 0 {
			return usageErrf(c.name, "--grace %q: want a positive duration (30m, 2h, 1d)", grace)
		}
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		rep, runErr := s.Reconcile(ctx, store.ReconcileOptions{Apply: apply, GracePeriod: gp})
		if runErr != nil && ctx.Err() != nil {
			return runErr
		}
		if asJSON {
			if err := writeJSON(a.stdout, reconcileJSON{Applied: rep.Applied, Manifests: rep.Manifests, Blobs: rep.Blobs,
				OrphanBlobs: nonNil(rep.OrphanBlobs), OrphanBytes: rep.OrphanBytes, Pending: rep.Pending,
				MissingBlobs: missingJSON(rep.MissingBlobs), InvalidManifests: nonNil(rep.InvalidManifests), Strays: nonNil(rep.Strays),
				Deleted: rep.Deleted, DeletedBytes: rep.DeletedBytes, UsageReset: rep.UsageReset,
				UsageDriftBytes: rep.UsageDrift.StoredBytes, Tombstones: rep.Tombstones, TombstonesRemoved: rep.TombstonesRemoved,
				TagMarkers: rep.TagMarkers, MissingTagMarkers: tagMarkersJSON(rep.MissingTagMarkers),
				StaleTagMarkers: tagMarkersJSON(rep.StaleTagMarkers), TagMarkersCreated: rep.TagMarkersCreated,
				TagMarkersDeleted: rep.TagMarkersDeleted, TagIndexReady: rep.TagIndexReady}); err != nil {
				return err
			}
		} else {
			w := a.stdout
			mode := "dry run"
			if apply {
				mode = "applied"
			}
			fmt.Fprintf(w, "reconcile (%s): %d manifests, %d blobs\n", mode, rep.Manifests, rep.Blobs)
			verb := "would delete"
			if apply {
				verb = "deleted"
			}
			for _, b := range rep.OrphanBlobs {
				fmt.Fprintf(w, "ORPHAN    %s\n", b)
			}
			for _, m := range rep.MissingBlobs {
				fmt.Fprintf(w, "MISSING   %s (blob %s)\n", m.URI, m.BlobKey)
			}
			for _, m := range rep.InvalidManifests {
				fmt.Fprintf(w, "INVALID   %s\n", m)
			}
			for _, k := range rep.Strays {
				fmt.Fprintf(w, "STRAY     %s\n", k)
			}
			for _, m := range rep.MissingTagMarkers {
				fmt.Fprintf(w, "NO-INDEX  %s (tag %s)\n", m.URI, m.Tag)
			}
			for _, m := range rep.StaleTagMarkers {
				fmt.Fprintf(w, "STALE-TAG %s (tag %s)\n", m.URI, m.Tag)
			}
			fmt.Fprintf(w, "orphan blobs: %d (%s), %s %d (%s); %d younger than the grace period left alone\n",
				len(rep.OrphanBlobs), humanSize(rep.OrphanBytes), verb, deletedOr(apply, rep.Deleted, len(rep.OrphanBlobs)),
				humanSize(deletedBytesOr(apply, rep.DeletedBytes, rep.OrphanBytes)), rep.Pending)
			fmt.Fprintf(w, "missing blobs: %d, invalid manifests: %d, stray keys: %d\n",
				len(rep.MissingBlobs), len(rep.InvalidManifests), len(rep.Strays))
			fmt.Fprintf(w, "tag index: %d markers, %d missing (%d created), %d stale (%d deleted), complete: %v\n",
				rep.TagMarkers, len(rep.MissingTagMarkers), rep.TagMarkersCreated,
				len(rep.StaleTagMarkers), rep.TagMarkersDeleted, rep.TagIndexReady)
			fmt.Fprintf(w, "tombstones of deleted artifacts: %d, removed %d\n", rep.Tombstones, rep.TombstonesRemoved)
			if d := rep.UsageDrift.StoredBytes; d != 0 {
				fmt.Fprintf(w, "usage counter was off by %+d stored bytes\n", d)
			}
			if rep.UsageReset {
				fmt.Fprintln(w, "usage counter reset")
			}
			if !apply && len(rep.OrphanBlobs) > 0 {
				fmt.Fprintln(w, "dry run: nothing was deleted; run again with --apply to delete the orphans")
			}
		}
		if runErr != nil {
			return runErr
		}
		if n := len(rep.MissingBlobs) + len(rep.InvalidManifests); n > 0 {
			return &exitError{code: exitIntegrity, msg: fmt.Sprintf("reconcile: %d missing blobs, %d invalid manifests",
				len(rep.MissingBlobs), len(rep.InvalidManifests))}
		}
		return nil
	})
}

func missingJSON(ms []store.MissingBlob) []problemJSON {
	out := make([]problemJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, problemJSON{URI: m.URI, Version: m.Version, BlobKey: m.BlobKey, Error: "blob is missing"})
	}
	return out
}

func deletedOr(apply bool, deleted, would int) int {
	if apply {
		return deleted
	}
	return would
}

func deletedBytesOr(apply bool, deleted, would int64) int64 {
	if apply {
		return deleted
	}
	return would
}

// nonNil makes JSON print [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
