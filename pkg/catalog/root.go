package catalog

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
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
// also those below its First), and the object of the usage totals by spec
// and type.
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
	// Usage names the object holding the totals by spec and type (read by
	// usage reports and compactions only, so that the root stays small).
	Usage UsageRef `json:"usage"`
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
	if r.Usage.Key != "" && !strings.HasPrefix(r.Usage.Key, SegmentPrefix) {
		return nil, fmt.Errorf("%w: root: usage object %q outside %s", ErrCorrupt, r.Usage.Key, SegmentPrefix)
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

// UsageRef names the usage object (the usage rows, gzip-compressed JSON,
// sorted by spec and type) and how to check it. Zero: no usage (an empty
// store).
type UsageRef struct {
	Key    string `json:"key,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// EncodeUsage encodes m's rows (those counting something) as a usage
// object; the returned UsageRef's Key is left to the caller.
func EncodeUsage(m map[UsageKey]Totals) ([]byte, UsageRef, error) {
	rows := make([]UsageRow, 0, len(m))
	for k, t := range m {
		if t != (Totals{}) {
			rows = append(rows, UsageRow{Spec: k.Spec, Type: k.Type, Totals: t})
		}
	}
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(strings.Compare(a.Spec, b.Spec), strings.Compare(a.Type, b.Type))
	})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(rows); err != nil {
		return nil, UsageRef{}, err
	}
	if err := zw.Close(); err != nil {
		return nil, UsageRef{}, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), UsageRef{Bytes: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:])}, nil
}

// DecodeUsage checks data against ref and returns its rows as a map
// (empty for a zero ref). Anything unexpected matches ErrCorrupt.
func DecodeUsage(data []byte, ref UsageRef) (map[UsageKey]Totals, error) {
	m := map[UsageKey]Totals{}
	if ref.Key == "" {
		return m, nil
	}
	if err := checkObject(data, ref.Key, ref.Bytes, ref.SHA256); err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	var rows []UsageRow
	if err == nil {
		err = json.NewDecoder(zr).Decode(&rows)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: usage %s: %v", ErrCorrupt, ref.Key, err)
	}
	for _, r := range rows {
		m[UsageKey{r.Spec, r.Type}] = r.Totals
	}
	return m, nil
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
