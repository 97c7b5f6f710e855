package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// DefaultVerifyConcurrency is the default of VerifyOptions.Concurrency.
const DefaultVerifyConcurrency = 8

// VerifyOptions are the parameters of VerifyAll.
type VerifyOptions struct {
	// Filter restricts the check: Spec, Task, Type and Tags select
	// artifacts, CreatedAfter and CreatedBefore bound each version's
	// creation time. Default: every version of every artifact.
	Filter Filter
	// Concurrency is how many blobs are read at once. Default 8.
	Concurrency int
}

// VerifyProblem is one version that failed verification.
type VerifyProblem struct {
	// URI names the version (artifact://<spec>/<task>/<type>?version=<n>),
	// or the artifact when its manifest itself is not a valid record.
	URI     string
	Version int
	// BlobKey is the version's blob ("" for an invalid manifest).
	BlobKey string
	Err     error
}

// VerifyReport is the result of VerifyAll. Its lists are sorted by URI.
type VerifyReport struct {
	// Checked counts the versions read to their end or found missing.
	Checked int
	// Corrupt lists versions whose content does not match its recorded
	// SHA-256 or size (or does not decompress), and manifests that are not
	// valid records (Version 0, no BlobKey). Their errors match
	// ErrIntegrity.
	Corrupt []VerifyProblem
	// Missing lists versions whose blob does not exist. Their errors match
	// ErrIntegrity and ErrNotFound.
	Missing []VerifyProblem
	// Failed lists versions that could not be checked: a backend failure
	// other than not found, after retries. Checked does not count them.
	Failed []VerifyProblem
}

// OK reports whether nothing was corrupt, missing or unchecked.
func (r VerifyReport) OK() bool {
	return len(r.Corrupt) == 0 && len(r.Missing) == 0 && len(r.Failed) == 0
}

// VerifyAll reads every version of every artifact that opts.Filter selects
// through the same verifying reader as VerifyChecksum (SHA-256 and size,
// whatever Config.DisableVerify says), opts.Concurrency blobs at a time,
// and reports what is corrupt, missing or could not be read. A blob found
// missing is confirmed against a fresh read of its manifest, so a version
// pruned or replaced during the run is not reported. The error is non-nil
// only when the run itself stopped: a cancelled context, an invalid
// filter, a failed listing; the report then covers what was checked.
func (s *Store) VerifyAll(ctx context.Context, opts VerifyOptions) (rep VerifyReport, err error) {
	ctx, end := s.begin(ctx, "verify-all", "")
	defer func() { end(err) }()
	if err := opts.Filter.validate(); err != nil {
		return VerifyReport{}, err
	}
	switch {
	case opts.Concurrency < 0:
		return VerifyReport{}, invalidf("verify: negative concurrency %d", opts.Concurrency)
	case opts.Concurrency == 0:
		opts.Concurrency = DefaultVerifyConcurrency
	}
	sc := scope{opts.Filter}
	sem := make(chan struct{}, opts.Concurrency)
	var mu sync.Mutex
	add := func(list *[]VerifyProblem, p VerifyProblem) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, p)
	}
	f := opts.Filter
	err = s.forEachManifest(ctx, manifestPrefix(f.Spec, f.Task), f.matchURI, func(ctx context.Context, r record) error {
		if r.err != nil {
			add(&rep.Corrupt, VerifyProblem{URI: r.uri.String(), Err: r.err})
			return nil
		}
		if !sc.artifact(r.m) {
			return nil
		}
		for i := range r.m.Versions {
			v := &r.m.Versions[i]
			if !sc.version(v) {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			verr := s.verifyVersion(ctx, r.m, v)
			<-sem
			p := VerifyProblem{URI: r.m.artifactURI().WithVersion(v.Version).String(), Version: v.Version, BlobKey: v.Blob, Err: verr}
			switch {
			case verr == nil:
				mu.Lock()
				rep.Checked++
				mu.Unlock()
			case isContextErr(verr) && ctx.Err() != nil:
				return verr
			case errors.Is(verr, ErrIntegrity) && errors.Is(verr, ErrNotFound):
				still, cerr := s.stillReferenced(ctx, r.uri, v)
				switch {
				case cerr != nil:
					add(&rep.Failed, VerifyProblem{URI: p.URI, Version: p.Version, BlobKey: p.BlobKey, Err: cerr})
				case still:
					mu.Lock()
					rep.Checked++
					mu.Unlock()
					add(&rep.Missing, p)
				}
			case errors.Is(verr, ErrIntegrity):
				mu.Lock()
				rep.Checked++
				mu.Unlock()
				add(&rep.Corrupt, p)
			default:
				add(&rep.Failed, p)
			}
		}
		return nil
	})
	for _, list := range []*[]VerifyProblem{&rep.Corrupt, &rep.Missing, &rep.Failed} {
		slices.SortFunc(*list, func(a, b VerifyProblem) int {
			ua, _, _ := strings.Cut(a.URI, "?")
			ub, _, _ := strings.Cut(b.URI, "?")
			if c := strings.Compare(ua, ub); c != 0 {
				return c
			}
			return a.Version - b.Version
		})
	}
	for _, p := range rep.Corrupt {
		s.log.Error("store: verify: corrupt", "uri", p.URI, "blob", p.BlobKey, "err", p.Err)
	}
	for _, p := range rep.Missing {
		s.log.Error("store: verify: missing blob", "uri", p.URI, "blob", p.BlobKey, "err", p.Err)
	}
	for _, p := range rep.Failed {
		s.log.Warn("store: verify: could not check", "uri", p.URI, "blob", p.BlobKey, "err", p.Err)
	}
	s.log.Info("store: verify-all done", "checked", rep.Checked, "corrupt", len(rep.Corrupt),
		"missing", len(rep.Missing), "failed", len(rep.Failed))
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	return rep, nil
}

// stillReferenced reads u's manifest afresh and reports whether it still
// has version v with the same blob (so a missing blob is really missing,
// not pruned or replaced since the manifest was first read).
func (s *Store) stillReferenced(ctx context.Context, u URI, v *version) (bool, error) {
	m, _, err := s.readManifest(ctx, u)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
		return false, nil
	case err != nil:
		return false, err
	}
	cur := m.find(v.Version)
	return cur != nil && cur.Blob == v.Blob, nil
}
