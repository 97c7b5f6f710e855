package catalog

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The catalog's objects, under the backend's prefix.
const (
	// RootKey is the root: the list of segments and the usage totals. The
	// only mutable catalog object, written by conditional Puts.
	RootKey = "_catalog/root.json"
	// SegmentPrefix holds the segments, immutable (a compaction writes new
	// ones and deletes those the root no longer lists).
	SegmentPrefix = "_catalog/segments/"
	// LogPrefix holds the log: one empty object per write, immutable.
	LogPrefix = "_catalog/log/"
)

// Schema is the version of the root and segment format this package
// writes; a root with another is not trusted (the catalog is rebuilt).
const Schema = 1

// Root is the catalog's root object: the segments, which partition the
// artifact keys in order (segment i holds the records whose keys are at
// least Segments[i].First and below Segments[i+1].First; the first one
// also those below its First), and the usage totals by spec and type.
type Root struct {
	Schema int `json:"schema"`
	// Generation counts the commits of the root.
	Generation int64 `json:"generation"`
	// Built is when this root was committed (the committer's clock); the
	// Writer and Fence of its committer (Fence 0 without locking).
	Built  time.Time `json:"built"`
	Writer string    `json:"writer"`
	Fence  uint64    `json:"fence"`
	// ExemptTag is the tag whose artifacts SegmentInfo.Oldest leaves out.
	ExemptTag string        `json:"exempt_tag"`
	Segments  []SegmentInfo `json:"segments"`
	// Usage is the totals by spec and type, sorted.
	Usage []UsageRow `json:"usage"`
}

// UsageRow is the usage of one type of artifact in one spec.
type UsageRow struct {
	Spec string `json:"spec"`
	Type string `json:"type"`
	Totals
}

// UsageKey names a UsageRow.
type UsageKey struct{ Spec, Type string }

// Encode returns the root's JSON.
func (r *Root) Encode() ([]byte, error) { return json.Marshal(r) }

// DecodeRoot decodes and checks a root: a root that does not decode, has
// another schema or whose segments are not in key order matches
// ErrCorrupt.
func DecodeRoot(data []byte) (*Root, error) {
	var r Root
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrCorrupt, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%w: root has schema %d, this version reads %d", ErrCorrupt, r.Schema, Schema)
	}
	for i, s := range r.Segments {
		if !strings.HasPrefix(s.Key, SegmentPrefix) || s.Records <= 0 || s.First > s.Last ||
			i > 0 && r.Segments[i-1].Last >= s.First {
			return nil, fmt.Errorf("%w: root: segment %d (%s) is out of order or empty", ErrCorrupt, i, s.Key)
		}
	}
	return &r, nil
}

// Locate returns the index of the segment whose range covers key (-1 when
// there are no segments).
func (r *Root) Locate(key string) int {
	if len(r.Segments) == 0 {
		return -1
	}
	i, found := slices.BinarySearchFunc(r.Segments, key, func(s SegmentInfo, k string) int { return strings.Compare(s.First, k) })
	if found || i == 0 {
		return i
	}
	return i - 1
}

// UsageMap returns the usage rows as a map.
func (r *Root) UsageMap() map[UsageKey]Totals {
	m := make(map[UsageKey]Totals, len(r.Usage))
	for _, u := range r.Usage {
		m[UsageKey{u.Spec, u.Type}] = u.Totals
	}
	return m
}

// SetUsage replaces the usage rows by m (rows counting no artifact are
// dropped), sorted by spec and type.
func (r *Root) SetUsage(m map[UsageKey]Totals) {
	r.Usage = r.Usage[:0]
	for k, t := range m {
		if t != (Totals{}) {
			r.Usage = append(r.Usage, UsageRow{Spec: k.Spec, Type: k.Type, Totals: t})
		}
	}
	slices.SortFunc(r.Usage, func(a, b UsageRow) int {
		return cmp.Or(strings.Compare(a.Spec, b.Spec), strings.Compare(a.Type, b.Type))
	})
}

// AddUsage adds (sign 1) or subtracts (sign -1) rec's totals to m.
func AddUsage(m map[UsageKey]Totals, rec *Record, sign int) {
	if rec == nil {
		return
	}
	k := UsageKey{rec.Spec, rec.Type}
	t := TotalsOf(rec)
	if sign < 0 {
		m[k] = m[k].Minus(t)
	} else {
		m[k] = m[k].Plus(t)
	}
}

// Change is the new state of one artifact for Apply: Record nil removes
// it.
type Change struct {
	Key    string
	Record *Record
}

// Apply merges changes (sorted by key, one per key) into recs (sorted by
// key) and returns the result, sorted.
func Apply(recs []Record, changes []Change) []Record {
	out := make([]Record, 0, len(recs)+len(changes))
	i := 0
	for _, c := range changes {
		for i < len(recs) && recs[i].Key() < c.Key {
			out = append(out, recs[i])
			i++
		}
		if i < len(recs) && recs[i].Key() == c.Key {
			i++
		}
		if c.Record != nil {
			out = append(out, *c.Record)
		}
	}
	return append(out, recs[i:]...)
}

// Chunk cuts recs into runs of at most target records, of even sizes.
func Chunk(recs []Record, target int) [][]Record {
	if len(recs) == 0 {
		return nil
	}
	n := (len(recs) + target - 1) / target
	out := make([][]Record, 0, n)
	for i := range n {
		out = append(out, recs[i*len(recs)/n:(i+1)*len(recs)/n])
	}
	return out
}
