package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// report is what the parent found.
type report struct {
	elapsed    time.Duration
	workerErrs []error

	stats     entry // the workers' stats, summed
	acks      int
	artifacts int
	versions  int
	verified  int
	manifests int
	blobs     int
	orphans   int // blobs no manifest references (left by failed writes)
	unacked   int // versions no journal names (a worker died after the commit)
	small     smallRates

	failures []string
}

func (r *report) failf(format string, a ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, a...))
}

func (r *report) ok() bool { return len(r.failures) == 0 }

// maxFailures bounds the failures listed in the report.
const maxFailures = 20

// readJournals returns every acknowledged upload of the run and sums the
// workers' stats. A journal cut short by a dead worker still counts for the
// acknowledgements it holds.
func readJournals(p plan, r *report) []entry {
	var acks []entry
	for w := range p.Workers {
		f, err := os.Open(p.journalPath(w))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				r.failf("journal of worker %d: %v", w, err)
			}
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var e entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				r.failf("journal of worker %d: %v", w, err)
				continue
			}
			switch e.Kind {
			case "ack":
				acks = append(acks, e)
			case "stats":
				s := &r.stats
				s.Ops += e.Ops
				s.Uploads += e.Uploads
				s.Reuploads += e.Reuploads
				s.Idempotent += e.Idempotent
				s.Tags += e.Tags
				s.Downloads += e.Downloads
				s.Conflicts += e.Conflicts
				s.BytesUp += e.BytesUp
				s.BytesDown += e.BytesDown
				s.LockWaitNS = append(s.LockWaitNS, e.LockWaitNS...)
			}
		}
		if err := sc.Err(); err != nil {
			r.failf("journal of worker %d: %v", w, err)
		}
		f.Close()
	}
	return acks
}

// check verifies the invariants of the run p on the store.
func check(ctx context.Context, o *setup.Opened, p plan) *report {
	r := &report{}
	acks := readJournals(p, r)
	r.acks = len(acks)

	// Versions of every artifact: numbered 1..n without a gap.
	type key struct {
		uri     string
		version int
	}
	stored := map[key]string{} // sha256 by version
	for _, uri := range p.artifacts() {
		vs, err := o.Store.Versions(ctx, uri)
		if errors.Is(err, store.ErrNotFound) {
			continue // never written (a worker that failed early)
		}
		if err != nil {
			r.failf("versions of %s: %v", uri, err)
			continue
		}
		r.artifacts++
		r.versions += len(vs)
		for i, v := range vs {
			if v.Version != i+1 {
				r.failf("%s: version #%d is numbered %d: a gap in the version numbers", uri, i+1, v.Version)
				break
			}
			stored[key{uri, v.Version}] = v.SHA256
		}
	}

	// Every checksum verifies: every version of every artifact of the run
	// read to its end through the verifying reader.
	vrep, err := o.Store.VerifyAll(ctx, store.VerifyOptions{Filter: store.Filter{Spec: p.Spec}})
	if err != nil {
		r.failf("verify-all: %v", err)
	} else {
		r.verified = vrep.Checked
		for _, list := range [][]store.VerifyProblem{vrep.Corrupt, vrep.Missing, vrep.Failed} {
			for _, pr := range list {
				r.failf("verify %s: %v", pr.URI, pr.Err)
			}
		}
		if vrep.Checked != r.versions {
			r.failf("verify-all checked %d versions, the artifacts list %d", vrep.Checked, r.versions)
		}
	}

	// Every acknowledged upload is present as a version with its content.
	acked := map[key]bool{}
	for _, a := range acks {
		acked[key{a.URI, a.Version}] = true
		got, ok := stored[key{a.URI, a.Version}]
		switch {
		case !ok:
			r.failf("acknowledged upload lost: %s version %d (sha256 %.12s) is not stored", a.URI, a.Version, a.SHA256)
		case got != a.SHA256:
			r.failf("acknowledged upload overwritten: %s version %d has sha256 %.12s, acknowledged %.12s", a.URI, a.Version, got, a.SHA256)
		}
	}
	for k := range stored {
		if !acked[k] {
			r.unacked++
		}
	}

	checkRaw(ctx, o, p, r)
	return r
}

// rawManifest is the part of the manifest JSON (see package store, "Layout")
// the checks read: a plain S3 tool could read it the same way.
type rawManifest struct {
	URI      string `json:"uri"`
	Versions []struct {
		Version int    `json:"version"`
		Blob    string `json:"blob"`
		SHA256  string `json:"sha256"`
		Size    int64  `json:"size"`
		Inline  []byte `json:"inline"`
	} `json:"versions"`
}

// checkRaw looks at the objects under the run's spec: every manifest
// parses, every blob it references exists; blobs that no manifest
// references are counted.
func checkRaw(ctx context.Context, o *setup.Opened, p plan, r *report) {
	referenced := map[string]bool{}
	for info, err := range o.Backend.List(ctx, "manifests/"+p.Spec+"/") {
		if err != nil {
			r.failf("list manifests: %v", err)
			return
		}
		r.manifests++
		rc, _, err := o.Backend.Get(ctx, info.Key)
		if err != nil {
			r.failf("read manifest %s: %v", info.Key, err)
			continue
		}
		data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			r.failf("read manifest %s: %v", info.Key, err)
			continue
		}
		var m rawManifest
		if err := json.Unmarshal(data, &m); err != nil || m.URI == "" || len(m.Versions) == 0 {
			r.failf("half-written manifest %s: %v (%d bytes)", info.Key, err, len(data))
			continue
		}
		for _, v := range m.Versions {
			if v.Blob == "" { // the content is in the manifest
				if sum := sha256.Sum256(v.Inline); int64(len(v.Inline)) != v.Size || hex.EncodeToString(sum[:]) != v.SHA256 {
					r.failf("%s version %d: the content in the manifest does not match its size and sha256", m.URI, v.Version)
				}
				continue
			}
			referenced[v.Blob] = true
			if _, err := o.Backend.Stat(ctx, v.Blob); err != nil {
				r.failf("%s version %d: blob %s: %v", m.URI, v.Version, v.Blob, err)
			}
		}
	}
	for info, err := range o.Backend.List(ctx, "blobs/"+p.Spec+"/") {
		if err != nil {
			r.failf("list blobs: %v", err)
			return
		}
		r.blobs++
		if !referenced[info.Key] {
			r.orphans++
		}
	}
}

// percentile returns the q-quantile (0..1) of samples, nearest rank.
func percentile(samples []int64, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return time.Duration(s[i])
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (r *report) print(w io.Writer) {
	s := r.stats
	secs := max(r.elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "operations      %d in %.1fs (%d uploads, %d re-uploads of which %d idempotent, %d tag changes, %d verified downloads)\n",
		s.Ops, r.elapsed.Seconds(), s.Uploads, s.Reuploads, s.Idempotent, s.Tags, s.Downloads)
	fmt.Fprintf(w, "versions        %d in %d artifacts (%d acknowledged uploads)\n", r.versions, r.artifacts, r.acks)
	fmt.Fprintf(w, "conflicts       %d retried\n", s.Conflicts)
	fmt.Fprintf(w, "lock wait       p50 %v  p99 %v  (%d acquisitions)\n",
		percentile(s.LockWaitNS, 0.50).Round(time.Microsecond), percentile(s.LockWaitNS, 0.99).Round(time.Microsecond), len(s.LockWaitNS))
	fmt.Fprintf(w, "throughput      %.2f MiB/s (%s uploaded, %s downloaded)\n",
		float64(s.BytesUp+s.BytesDown)/(1<<20)/secs, humanBytes(s.BytesUp), humanBytes(s.BytesDown))
	fmt.Fprintf(w, "storage         %d manifests, %d blobs, %d unreferenced blobs, %d versions not in a journal\n",
		r.manifests, r.blobs, r.orphans, r.unacked)
	r.small.print(w)
	for _, err := range r.workerErrs {
		fmt.Fprintf(w, "worker failed   %s\n", strings.ReplaceAll(err.Error(), "\n", "\n                "))
	}
	if r.ok() {
		fmt.Fprintf(w, "invariants      OK: %d acknowledged uploads present, versions gapless, %d versions verified, manifests whole\n", r.acks, r.verified)
		if len(r.workerErrs) > 0 {
			fmt.Fprintf(w, "                (but %d worker(s) failed: see above)\n", len(r.workerErrs))
		}
		return
	}
	fmt.Fprintf(w, "invariants      FAILED: %d violation(s)\n", len(r.failures))
	for i, f := range r.failures {
		if i == maxFailures {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.failures)-maxFailures)
			break
		}
		fmt.Fprintf(w, "  - %s\n", f)
	}
}
